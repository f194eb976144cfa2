//! Outbound campaigns (placeholder doc, replaced below).
pub mod policy;
pub mod window;
