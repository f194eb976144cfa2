//! Calls: where a leg, a media session and the call flow meet.
//!
//! `router` decides synchronously (inside the SIP driver) which dialplan answers a new
//! INVITE, negotiates its SDP and spawns the call task; `runner` is that task, driving
//! the sans-IO IVR engine and media session; `outbound` is the other direction (the
//! dialer's campaign calls: INVITE, ringing, answer, then the same answered phase);
//! `actions` are the program's dialplan actions against the store; `record` keeps what
//! happened.

pub mod actions;
pub mod outbound;
pub mod ports;
pub mod record;
pub mod router;
pub mod runner;

pub use record::{CallLog, CallObserver, CallRecord, DigitMethod, DigitMethods, PromptPlay};
pub use runner::{AnsweredCall, CallContext, DialplanStart, file_record, run_answered};
