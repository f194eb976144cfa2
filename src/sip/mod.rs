//! SIP: the only module naming the SIP crate (`rsipstack::sip`, the maintained successor
//! of rsip). The socket edge (`edge`, `framing`, `transport`) pre-checks and frames raw
//! bytes; `endpoint` holds the sans-IO transactions and dialogs and hands the rest of the
//! service plain leg events.

pub use rsipstack::sip as rsip;

pub mod edge;
pub mod endpoint;
pub mod framing;
pub mod message;
pub mod transport;

pub use endpoint::{
    Command, EndReason, Endpoint, EndpointConfig, Flow, IncomingCall, LegEvent, LegId, Output,
    Timers,
};
