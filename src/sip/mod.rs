//! The SIP driver: the I/O shell around the sans-IO `tongdai_sip` crate. One task owns
//! the `Endpoint`, the UDP socket and the TCP connections (`transport`), feeds it bytes
//! and `now`, sends what it outputs, sleeps until its next timeout, and routes leg events
//! to the call tasks.
//!
//! # Outbound calls, for the call layer
//!
//! ```no_run
//! # async fn example(sip: tongdai::sip::SipHandle) {
//! use tongdai_sip::{Command, DialRequest, FailCause, LegEvent};
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

pub mod transport;

pub use transport::SipHandle;
