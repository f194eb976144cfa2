//! The `tongdai` binary as operators run it: `check`, `serve` with SIGHUP/SIGTERM,
//! `token`, `campaign`/`dnc`, and two `serve` processes sharing one PostgreSQL cap.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod api_cli;
mod campaign_cli;
mod cap_two_processes;
mod cli;
