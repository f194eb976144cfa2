//! SIP: the only module naming the SIP crate (`rsipstack::sip`, the maintained successor
//! of rsip). The socket edge (`edge`, `framing`, `transport`) pre-checks and frames raw
//! bytes; `endpoint` holds the sans-IO transactions and dialogs and hands the rest of the
//! service plain leg events.
//!
//! # Outbound calls, for the call layer
//!
//! ```no_run
//! # async fn example(sip: tongdai::sip::transport::SipHandle) {
//! use tongdai::sip::{Command, DialRequest, FailCause, LegEvent};
//! let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
//! let request = DialRequest {
//!     target: "0903123678".into(),          // → sip:0903123678@<trunk>
//!     offer_sdp: b"v=0\r\n...".to_vec(),  // rendered by media::sdp
//!     call_id: Some("attempt-42@tongdai".into()),
//!     ..Default::default()
//! };
//! let dialed = sip.dial(request, tx).await.expect("refused before sending");
//! while let Some(ev) = events.recv().await {
//!     match ev {
//!         LegEvent::Progress { status, .. } => { /* 180/183: ringing */ }
//!         LegEvent::Answered { sdp, .. } => { /* ACK sent: start media, run the plan */ }
//!         LegEvent::Failed { status, cause, .. } => {
//!             // cause: Rejected (far-end final: 486, 603 …), Cancelled (ours: 487),
//!             // NoAnswer (Timer C), Timeout (408, no response), Transport (503).
//!             let _ = (status, cause == FailCause::Rejected);
//!             break;
//!         }
//!         LegEvent::Terminated { .. } | LegEvent::ByeCompleted { .. } => break,
//!         _ => {} // Info, Reoffer … as for inbound legs
//!     }
//! }
//! // Ring timeout before an answer: CANCEL (an answered leg gets a BYE).
//! sip.command(Command::Cancel { leg: dialed.leg });
//! # }
//! ```

pub use rsipstack::sip as rsip;

pub mod acl;
pub mod auth;
pub mod edge;
pub mod endpoint;
pub mod framing;
pub mod message;
pub mod transport;
pub mod trunk;

pub use acl::Acl;
pub use endpoint::{
    AccessConfig, Command, DialError, DialRequest, Dialed, EndReason, Endpoint, EndpointConfig,
    FailCause, Flow, IncomingCall, LegEvent, LegId, Output, Timers,
};
pub use trunk::{TrunkConfig, TrunkState, TrunkStatus, TrunkTransport};
