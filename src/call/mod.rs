//! Calls: where a leg, a media session and the call flow meet.
//!
//! `session` decides, sans-IO, everything about one call (ringing, prompts and their
//! epochs, digits, actions, transfer, hang-up, the record's content); `runner` is the
//! call task around it (channels, media handle, action tasks, clock, store); `router`
//! decides synchronously (inside the SIP driver) which dialplan answers a new INVITE,
//! negotiates its SDP and hands the call over to be run; `outbound` is the other
//! direction (the dialer's campaign calls: INVITE, ringing, answer, then the same
//! session); `actions` are the program's dialplan actions against the store; `record`
//! keeps what happened.

pub mod actions;
pub mod outbound;
pub mod ports;
pub mod record;
pub mod router;
pub mod runner;
pub mod session;

pub use record::{CallLog, CallObserver, CallRecord, DigitMethod, DigitMethods, PromptPlay};
pub use runner::{CallContext, CallSetup, file_record, run_answered};
pub use session::{CallSession, DialplanStart};
