//! Who may be called: the contacts a campaign is created with, whether a claim may be
//! made at all, and the contacts closed at claim time instead of being dialled.

use jiff::Timestamp;

use super::contact::ContactEnd;
use crate::dialer::{CampaignKind, CampaignPolicy, CampaignState, is_allowed, next_allowed};
use crate::program::{
    self, Eligibility, ProgramConfig, ProgramConfigError, Status, Subscriber, Window,
};
use crate::string_enum;

string_enum! {
    /// Why a candidate was left out of a new campaign's contacts.
    Exclusion, "exclusion" {
        /// Not eligible by the program's rules (SMS list, postpaid, minimum charge).
        NotEligible = "not_eligible",
        /// Invitation: the number already holds a registration.
        Registered = "registered",
        /// On the do-not-call list.
        DoNotCall = "do_not_call",
    }
}

/// Whether a subscriber of the target list becomes a contact of an invitation
/// campaign: eligible by `program::eligibility`, holding no registration, not on the
/// do-not-call list (checked in that order: the first reason is the one counted).
pub fn invitation_exclusion(
    subscriber: &Subscriber,
    registered: bool,
    on_do_not_call: bool,
    program: &ProgramConfig,
) -> Option<Exclusion> {
    if program::eligibility(Some(subscriber), program) != Eligibility::Eligible {
        Some(Exclusion::NotEligible)
    } else if registered {
        Some(Exclusion::Registered)
    } else if on_do_not_call {
        Some(Exclusion::DoNotCall)
    } else {
        None
    }
}

/// Whether a consulted registration becomes a contact of a survey campaign: a survey
/// is a care call, but a number on the do-not-call list asked not to be called at all.
pub fn survey_exclusion(on_do_not_call: bool) -> Option<Exclusion> {
    on_do_not_call.then_some(Exclusion::DoNotCall)
}

/// Why a claim returned nothing although contacts may be waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimHold {
    /// The campaign is not running (draft, paused, stopped, completed).
    NotRunning(CampaignState),
    /// Outside the calling windows; `opens` is the next opening.
    OutsideCallingWindow { opens: Option<Timestamp> },
    /// Invitation: all places of the program are taken.
    CapReached,
    /// Invitation: outside the registration period (`today` before or after it).
    RegistrationClosed,
}

/// Whether a claim may be made at `now`, checked in this order: the campaign is
/// running, `now` is inside a calling window, and — for invitations — the program
/// still takes registrations (its period is open and `places_taken` is below the cap).
/// `Err` when the program's time zone is unusable.
pub fn claim_hold(
    state: CampaignState,
    kind: CampaignKind,
    policy: &CampaignPolicy,
    program: &ProgramConfig,
    places_taken: u64,
    now: Timestamp,
) -> Result<Option<ClaimHold>, ProgramConfigError> {
    if state != CampaignState::Running {
        return Ok(Some(ClaimHold::NotRunning(state)));
    }
    if !is_allowed(now, policy) {
        return Ok(Some(ClaimHold::OutsideCallingWindow {
            opens: next_allowed(now, policy),
        }));
    }
    if kind == CampaignKind::Invitation {
        let today = program::today(now, program)?;
        if program::registration_window(today, program) != Window::Open {
            return Ok(Some(ClaimHold::RegistrationClosed));
        }
        if places_taken >= u64::from(program.cap) {
            return Ok(Some(ClaimHold::CapReached));
        }
    }
    Ok(None)
}

/// Whether a due contact is closed at claim time instead of dialled, because the
/// subscriber moved on since the list was made: on the do-not-call list (any campaign),
/// registered meanwhile (invitations), or surveyed by another run (surveys).
/// `registration` is the status of the number's registration, if it has one.
pub fn closed_at_claim(
    kind: CampaignKind,
    on_do_not_call: bool,
    registration: Option<Status>,
) -> Option<ContactEnd> {
    if on_do_not_call {
        return Some(ContactEnd::OptedOut);
    }
    match (kind, registration) {
        (CampaignKind::Invitation, Some(_)) => Some(ContactEnd::AlreadyRegistered),
        (CampaignKind::Survey, Some(Status::Surveyed)) => Some(ContactEnd::AlreadySurveyed),
        _ => None,
    }
}
