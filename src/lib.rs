//! tongdai — the 9090 call-center service ("tổng đài": switchboard).
//!
//! See `ARCHITECTURE.md` for the bird's-eye view. This crate is the service: the edges
//! (sockets, tasks, timers, the database, HTTP) around the sans-IO crates below it —
//! `tongdai_sip` (transactions, dialogs, the trunk), `tongdai_media` (SDP, RTP, prompts,
//! DTMF, the media clock), `tongdai_ivr` (dialplans) and `tongdai_domain` (the program's
//! rules and the campaigns' decisions). `call` is the only place where a leg, a media
//! session and a dialplan meet.

pub mod api;
pub mod app;
pub mod call;
pub mod clock;
pub mod config;
pub mod dialer;
pub mod media;
pub mod metrics;
pub mod sip;
pub mod store;
pub mod telemetry;
