//! In-process tests without the network: the registration and campaign store on SQLite
//! and PostgreSQL, the Vinmec queue's store operations under concurrency, the shipped
//! dialplans driven in virtual time against a real store, and the generated RFC 4733
//! pcaps checked with tshark. Nothing here measures real time: the tests run in
//! parallel freely.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod api_queue_store;
mod handbook_links;
mod ivr_campaign_scripts;
mod ivr_store_scripts;
mod pcap_selfcheck;
mod store_campaigns;
mod store_suite;
