//! Routing of new inbound calls: called number → dialplan, offer → answer, or a
//! rejection code. Runs inside the SIP driver, so it only does quick, non-blocking work:
//! an accepted call is handed over on a channel to [`run_inbound_calls`], which starts
//! its call task. The channel is what lets the service be built in a straight line: the
//! router needs no `SipHandle` (nor anything holding one), so it exists before the SIP
//! driver, and the call tasks, which do need the handle, are started after it.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use super::ports::{RtpPort, RtpPorts};
use super::runner::{CallContext, media_overloaded, run_inbound};
use crate::media::MediaWorkers;
use crate::sip::transport::Router;
use tongdai_ivr::{CompiledPlan, Dialplans};
use tongdai_media::SdpError;
use tongdai_media::sdp::{self, Negotiated};
use tongdai_sip::{IncomingCall, LegEvent};

/// The dialplans in force. A reload swaps the `Arc`; calls keep the plan they started
/// with because each holds its own `Arc<CompiledPlan>`.
pub type SharedDialplans = Arc<RwLock<Arc<Dialplans>>>;

/// An inbound call the router accepted, on its way from the SIP driver to its task.
pub struct InboundCall {
    pub call: IncomingCall,
    pub plan: Arc<CompiledPlan>,
    pub negotiated: Negotiated,
    pub port: RtpPort,
    pub events: mpsc::UnboundedReceiver<LegEvent>,
}

/// What the router decides with.
pub struct RouterConfig {
    pub dialplans: SharedDialplans,
    pub ports: Arc<RtpPorts>,
    /// Their send lag against `max_send_lag` (`rtp.max_send_lag`) refuses calls (503)
    /// while media is overloaded.
    pub media: MediaWorkers,
    pub max_send_lag: Duration,
}

/// Builds the router closure the SIP driver calls for each new INVITE; accepted calls
/// go to `accepted`. Once its receiver is closed (the service drains), calls get 503.
pub fn router(cfg: RouterConfig, accepted: mpsc::UnboundedSender<InboundCall>) -> Router {
    Box::new(move |call: &IncomingCall| {
        let (plan, negotiated, port) = cfg.route(call)?;
        let (tx, rx) = mpsc::unbounded_channel::<LegEvent>();
        let accepted_call = InboundCall {
            call: call.clone(),
            plan,
            negotiated,
            port,
            events: rx,
        };
        if accepted.send(accepted_call).is_err() {
            tracing::info!("refusing call: 503 (the service is draining)");
            return Err(503);
        }
        Ok(tx)
    })
}

impl RouterConfig {
    /// The dialplan, the offer/answer outcome and the RTP port of a new call, or the
    /// status that refuses it.
    fn route(&self, call: &IncomingCall) -> Result<(Arc<CompiledPlan>, Negotiated, RtpPort), u16> {
        let called = call.called.as_deref().unwrap_or("");
        let plans = self
            .dialplans
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
        if let Some(lag) = media_overloaded(&self.media, self.max_send_lag) {
            tracing::info!(
                lag_ms = lag.as_secs_f64() * 1000.0,
                "refusing call: 503 (media is sending behind its frame slots)"
            );
            return Err(503);
        }
        let port = self.ports.allocate().map_err(|e| {
            tracing::warn!(error = %e, "refusing call: 503");
            503u16
        })?;
        Ok((plan, negotiated, port))
    }
}

/// Starts a call task (in `tracker`) for every call the router accepts, until the
/// service drains. Then it closes the channel, so the router refuses what comes after
/// with 503, and starts the tasks of the calls accepted before, which refuse them with
/// 503 themselves: no accepted call is left without an answer. Run it in `tracker`
/// too, so that waiting for the calls waits for it.
pub async fn run_inbound_calls(
    ctx: Arc<CallContext>,
    mut accepted: mpsc::UnboundedReceiver<InboundCall>,
    tracker: TaskTracker,
) {
    let start = |c: InboundCall| {
        tracker.spawn(run_inbound(
            ctx.clone(),
            c.call,
            c.plan,
            c.negotiated,
            c.port,
            c.events,
        ));
    };
    loop {
        tokio::select! {
            call = accepted.recv() => match call {
                Some(call) => start(call),
                None => return,
            },
            () = ctx.shutdown.cancelled() => break,
        }
    }
    accepted.close();
    while let Ok(call) = accepted.try_recv() {
        start(call);
    }
}
