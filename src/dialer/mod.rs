//! The dialer runtime: the I/O shell (tokio) around the sans-IO campaign decisions of
//! `tongdai_domain::dialer` — the campaigns table, the claims, the INVITEs and the
//! attempts' ends.

pub mod runtime;

pub use runtime::{CallEnd, Dialer, DialerConfig, DialerHandle, Placer};
