//! Outbound campaigns (placeholder doc, replaced below).
pub mod policy;
pub mod retry;
pub mod window;
