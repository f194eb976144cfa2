//! Tests whose outcome depends on real time at the far end, each run alone (see
//! `support::serial`): campaign pacing measured from SIPp's own timestamps, the load
//! harness's smoke level, and the live page in a real browser while SIPp's calls are up.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod api_live_browser;
mod bench_smoke;
mod campaign_pacing;
mod handbook_browser;
