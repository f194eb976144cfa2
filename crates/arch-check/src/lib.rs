//! Architecture checks for tongdai, run as a test in the suite so a regression fails
//! the build instead of waiting for a review:
//!
//! - **No module cycles, at any level of any crate.** Cargo already keeps crates
//!   looking only down; inside a crate nothing does. For every module, its direct
//!   children must form an acyclic graph ([`layers`]), judged on the references of
//!   non-test code resolved to their defining module ([`refs`]).
//! - **Sans-IO lower crates.** `crates/*` must not depend on an I/O runtime, socket,
//!   database or HTTP library ([`workspace::FORBIDDEN`]).
//!
//! Plus [`sizes`]: the biggest files and functions, for before/after tables in the
//! docs.
//!
//! Modules, bottom to top: `error`, `attrs`, `tree` (module discovery), `refs`
//! (path resolution), `layers` (the rule), `workspace` (crates and manifests),
//! `sizes`, `render` (graph output).

pub mod attrs;
pub mod error;
pub mod layers;
pub mod refs;
pub mod render;
pub mod sizes;
pub mod tree;
pub mod workspace;

pub use error::Error;
pub use workspace::{Report, check, check_crate};
