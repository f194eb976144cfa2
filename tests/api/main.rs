//! The HTTP API on the whole service in-process, on SQLite and PostgreSQL: campaigns,
//! roles, the Vinmec queue, the webhook, the OpenAPI document (with schemathesis). The
//! service's clock is the test's (`ManualClock`): leases, retries and dates move when the
//! test says, so these tests run in parallel freely.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod api_campaigns;
mod api_handbook;
mod api_openapi;
mod api_roles;
mod api_vinmec;
mod api_webhook;
