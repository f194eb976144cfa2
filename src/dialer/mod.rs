//! Outbound campaigns (placeholder doc, replaced below).
pub mod campaign;
pub mod pacer;
pub mod policy;
pub mod retry;
pub mod window;
