//! tongdai — the 9090 call-center service ("tổng đài": switchboard).
//!
//! See `ARCHITECTURE.md` for the bird's-eye view. In short: `sip` owns the socket edge,
//! transactions and dialogs and hands plain leg events to `call`; `media` owns SDP,
//! RTP, G.711, prompts and DTMF; `call` is the only place where a leg and a media
//! session meet. Decision logic is sans-IO (fed input and `now`); sockets and timers
//! live at the edge (`app`, `sip::transport`, `call::runner`).

pub mod api;
pub mod app;
pub mod call;
pub mod capacity;
pub mod config;
pub mod dialer;
pub mod ivr;
pub mod media;
pub mod metrics;
pub mod program;
pub mod sip;
pub mod store;
pub mod telemetry;
