//! The 9090 program's rules (see `docs/program.md`), as pure functions.
//!
//! Nothing here does IO or reads a clock: callers pass `today`/`now`, so every rule can
//! be tested with dates in 2021 (when the program ran) and replayed deterministically.
//! `store` applies these rules inside its transactions; `ivr` and `call` use them to
//! decide what to tell a caller.

mod config;
mod eligibility;
mod msisdn;
mod status;

pub use config::{ConfigProblem, ProgramConfig, ProgramConfigError, Specialty};
pub use eligibility::{
    Eligibility, Plan, SMS_LIST_SOURCE, Subscriber, Window, consultation_window, eligibility,
    local_date, registration_window, today,
};
pub use msisdn::{MsisdnError, mask_msisdn, normalize_msisdn};
pub use status::{Channel, Group, ParseEnumError, Status, can_transition, channel_allowed};
