//! SIP, sans-IO: the only crate naming the SIP crate (`rsipstack::sip`, the maintained
//! successor of rsip). Nothing here owns a socket, a task or a clock: the service's SIP
//! driver (`tongdai::sip`) feeds bytes and `now` in and carries the outputs out.
//!
//! Modules, bottom to top: `message`, `flow`, `auth`, `acl` (vocabulary and helpers);
//! `edge` and `framing` (the socket edge's checks on raw bytes); `transaction` (RFC 3261
//! §17 state machines); `trunk` (REGISTER and the OPTIONS keepalive, a user of the
//! transaction layer); `dialog` (legs and dialogs, the other user of it); `endpoint`
//! (the façade the driver talks to, routing between them).

pub use rsipstack::sip as rsip;

pub mod acl;
pub mod auth;
pub mod dialog;
pub mod edge;
pub mod endpoint;
pub mod flow;
pub mod framing;
pub mod message;
pub mod transaction;
pub mod trunk;

pub use acl::Acl;
pub use dialog::{
    Command, DialError, DialRequest, Dialed, EndReason, FailCause, IncomingCall, LegEvent, LegId,
};
pub use endpoint::{AccessConfig, Endpoint, EndpointConfig, Output};
pub use flow::{Flow, OUTBOUND_CONN};
pub use transaction::Timers;
pub use trunk::{TrunkConfig, TrunkState, TrunkTransport};
