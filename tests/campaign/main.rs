//! Campaigns end to end against SIPp as the trunk and every subscriber: the dialer in
//! the service in-process (invitation and survey flows, SIGTERM, an unreachable trunk,
//! two instances on one PostgreSQL) and the real binary killed with SIGKILL mid-campaign.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod campaign_crash;
mod campaign_e2e;
mod campaign_service;
