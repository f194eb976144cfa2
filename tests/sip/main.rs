//! SIP and media interop on the whole service in-process: SIPp and the Rust test caller
//! call it (inbound, edge cases, RFC 4475, the ACL, registration by keypad, the one cap
//! shared with the fanpage, dialplan reload and transfer), and the SIP layer alone calls
//! SIPp (outbound). The tests run two at a time (the default test threads on the 2-core
//! CI box) as they did when each file was its own binary; nothing CPU-heavy (browser,
//! schemathesis, a 300-call campaign, a 600-request burst) runs in this binary.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod api_cap_sipp;
mod call_record_live;
mod inbound_edge;
mod inbound_sipp;
mod operations;
mod outbound_sip;
mod registration_e2e;
mod rfc4475;
mod sip_acl;
