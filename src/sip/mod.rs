//! SIP: the only module naming the SIP crate (`rsipstack::sip`, the maintained successor
//! of rsip). The socket edge (`edge`, `framing`, `transport`) pre-checks and frames raw
//! bytes; `endpoint` holds the sans-IO transactions and dialogs and hands the rest of the
//! service plain leg events.

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
