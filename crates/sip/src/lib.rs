//! SIP, sans-IO: the only crate naming the SIP crate (`rsipstack::sip`, the maintained
//! successor of rsip). The socket edge's checks (`edge`, `framing`) pre-check and frame
//! raw bytes; `endpoint` holds the transactions and dialogs and hands the rest of the
//! service plain leg events; `trunk` is the registration and keepalive client. Nothing
//! here owns a socket, a task or a clock: the service's SIP driver (`tongdai::sip`)
//! feeds bytes and `now` in and carries the outputs out.

pub use rsipstack::sip as rsip;

pub mod acl;
pub mod auth;
pub mod edge;
pub mod endpoint;
pub mod framing;
pub mod message;
pub mod trunk;

pub use acl::Acl;
pub use endpoint::{
    AccessConfig, Command, DialError, DialRequest, Dialed, EndReason, Endpoint, EndpointConfig,
    FailCause, Flow, IncomingCall, LegEvent, LegId, Output, Timers,
};
pub use trunk::{TrunkConfig, TrunkState, TrunkStatus, TrunkTransport};
