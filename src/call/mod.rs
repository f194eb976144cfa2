//! Calls: where a leg, a media session and the call flow meet.
//!
//! `router` decides synchronously (inside the SIP driver) whether a new INVITE is
//! for us, negotiates its SDP and spawns the call task; `runner` is that task; `flow`
//! is the sans-IO call flow; `record` keeps what happened.

pub mod flow;
pub mod ports;
pub mod record;
pub mod router;
pub mod runner;

pub use record::{CallLog, CallRecord, PromptPlay};
pub use runner::CallContext;
