//! SIP: the only module naming the SIP crate (`rsipstack::sip`).
