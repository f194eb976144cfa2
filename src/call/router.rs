//! Routing of new inbound calls: called number → dialplan, offer → answer, or a
//! rejection code. Runs inside the SIP driver, so it only does quick, non-blocking work.

use std::sync::{Arc, RwLock};

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use super::ports::RtpPorts;
use super::runner::{CallContext, run_inbound};
use crate::sip::transport::Router;
use tongdai_ivr::Dialplans;
use tongdai_media::SdpError;
use tongdai_media::sdp;
use tongdai_sip::{IncomingCall, LegEvent};

/// The dialplans in force. A reload swaps the `Arc`; calls keep the plan they started
/// with because each holds its own `Arc<CompiledPlan>`.
pub type SharedDialplans = Arc<RwLock<Arc<Dialplans>>>;

/// Builds the router closure the SIP driver calls for each new INVITE.
pub fn router(
    ctx: Arc<CallContext>,
    dialplans: SharedDialplans,
    ports: Arc<RtpPorts>,
    tracker: TaskTracker,
) -> Router {
    Box::new(move |call: &IncomingCall| {
        let called = call.called.as_deref().unwrap_or("");
        let plans = dialplans
            .read()
            .map(|p| p.clone())
            .unwrap_or_else(|e| e.into_inner().clone());
        let Some(plan) = plans.for_number(called) else {
            tracing::info!(called, "INVITE for a number no dialplan answers: 404");
            return Err(404);
        };
        let is_sdp = call
            .content_type
            .as_deref()
            .is_some_and(|ct| ct.to_ascii_lowercase().starts_with("application/sdp"));
        if call.sdp.is_empty() || !is_sdp {
            // Late offer (INVITE without SDP) is not supported by this IVR.
            return Err(488);
        }
        let negotiated = match sdp::negotiate(&call.sdp) {
            Ok(n) => n,
            Err(SdpError::Malformed(e)) => {
                tracing::info!(error = %e, "malformed SDP offer: 400");
                return Err(400);
            }
            Err(e) => {
                tracing::info!(error = %e, "no acceptable media: 488");
                return Err(488);
            }
        };
        if let Some(lag) = ctx.media_overloaded() {
            tracing::info!(
                lag_ms = lag.as_secs_f64() * 1000.0,
                "refusing call: 503 (media is sending behind its frame slots)"
            );
            return Err(503);
        }
        let port = match ports.allocate() {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "refusing call: 503");
                return Err(503);
            }
        };
        let (tx, rx) = mpsc::unbounded_channel::<LegEvent>();
        tracker.spawn(run_inbound(
            ctx.clone(),
            call.clone(),
            plan,
            negotiated,
            port,
            rx,
        ));
        Ok(tx)
    })
}
