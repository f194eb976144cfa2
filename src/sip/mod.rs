//! SIP: the only module naming the SIP crate (`rsipstack::sip`).

/// The SIP message model and parser, under the name the rest of the crate uses.
pub use rsipstack::sip as rsip;

pub mod edge;
pub mod framing;
