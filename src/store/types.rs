//! Rows the store hands out and takes in. Plain data with domain types; the raw
//! database rows (`*Raw`) are converted with validation so a hand-edited database
//! surfaces as [`StoreError::Corrupt`] instead of a panic.

use jiff::Timestamp;

use super::error::{StoreError, corrupt};
use super::time;
use tongdai_domain::program::{
    Channel, Eligibility, Group, ParseEnumError, Plan, Status, Subscriber, Window,
};

/// Which database a [`super::Store`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// What the IVR (or staff) asks to register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewRegistration {
    /// Any form [`tongdai_domain::program::normalize_msisdn`] accepts; stored as E.164.
    pub msisdn: String,
    pub group: Group,
    pub channel: Channel,
    /// `None`: the caller is not sure yet (Vinmec routes them on its call).
    pub specialty: Option<u8>,
    /// SIP Call-ID of the registering call (hotline/outbound).
    pub call_id: Option<String>,
    pub name: Option<String>,
    /// Reference of the fanpage conversation (group 2).
    pub fanpage_ref: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    pub id: i64,
    /// E.164.
    pub msisdn: String,
    pub group: Group,
    pub channel: Channel,
    pub specialty: Option<u8>,
    pub status: Status,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub call_id: Option<String>,
    pub fanpage_ref: Option<String>,
    pub name: Option<String>,
    pub note: String,
}

/// The result of [`super::Store::register`]. Only `Registered` wrote anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterOutcome {
    Registered(Registration),
    /// The number already has a registration (whatever its status): the existing row.
    AlreadyRegistered(Registration),
    /// All places are taken.
    CapReached,
    OutsideWindow(Window),
    NotEligible(Eligibility),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistrationEvent {
    pub id: i64,
    pub registration_id: i64,
    pub at: Timestamp,
    /// `None` for the creating event.
    pub from_status: Option<Status>,
    pub to_status: Status,
    /// Who made the change: `ivr`, `outbound_call`, `fanpage_staff`, `vinmec:<user>`…
    pub actor: String,
    pub detail: String,
    /// The Vinmec queue action that wrote this event (`claim`, `book`, …); empty for
    /// events written outside the queue. Queue actions that change no status (claim
    /// of an already-sent entry, prescreen, reschedule, release) write `from == to`.
    pub action: String,
}

/// The queue entry's status and the appointment's method are the queue rules' words
/// (`tongdai_domain::vinmec`).
pub use tongdai_domain::vinmec::{AppointmentMethod, QueueEntry, QueueStatus};

/// One registration's entry in the Vinmec scheduling queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VinmecEntry {
    pub id: i64,
    pub registration_id: i64,
    /// What the queue rules read and write (`tongdai_domain::vinmec::decide`): status,
    /// claim and lease, prescreen, booking, consultation, unreachable count.
    pub queue: QueueEntry,
    pub enqueued_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallDirection {
    Inbound,
    Outbound,
}

impl CallDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            CallDirection::Inbound => "inbound",
            CallDirection::Outbound => "outbound",
        }
    }
}

impl std::str::FromStr for CallDirection {
    type Err = ParseEnumError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "inbound" => Ok(CallDirection::Inbound),
            "outbound" => Ok(CallDirection::Outbound),
            _ => Err(ParseEnumError {
                kind: "call direction",
                value: s.chars().take(40).collect(),
            }),
        }
    }
}

/// How a call ended, in the terms supervisors and campaign retries use: one
/// vocabulary and one SIP mapping for inbound call records and outbound attempts alike
/// (defined with the retry rules that depend on it).
pub use tongdai_domain::dialer::Disposition;

/// One call, as persisted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallRecordRow {
    /// SIP Call-ID; unique per call.
    pub call_id: String,
    pub direction: CallDirection,
    /// E.164 when it normalised, otherwise as received.
    pub caller: Option<String>,
    pub called: Option<String>,
    pub started_at: Timestamp,
    pub answered_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    /// Final SIP status of the INVITE.
    pub final_status: Option<u16>,
    pub disposition: Disposition,
    pub end_reason: String,
    /// The keys pressed, in order.
    pub digits: String,
    /// IVR nodes visited, in order.
    pub ivr_path: Vec<String>,
    /// Prompt ids played, in order.
    pub prompts: Vec<String>,
    pub campaign_id: Option<i64>,
    pub attempt_id: Option<i64>,
}

/// What [`super::Store::import_subscribers_csv`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportReport {
    /// Stored on every imported row (`import_batch`): file name and import time.
    pub batch: String,
    pub rows: usize,
    pub inserted: usize,
    pub updated: usize,
}

// ---- raw rows ------------------------------------------------------------------------

#[derive(sqlx::FromRow)]
pub(crate) struct SubscriberRaw {
    msisdn: String,
    plan: String,
    charge_per_cycle_vnd: i64,
    list_source: String,
    name: Option<String>,
    imported_at: String,
    import_batch: Option<String>,
}

impl TryFrom<SubscriberRaw> for Subscriber {
    type Error = StoreError;
    fn try_from(r: SubscriberRaw) -> Result<Self, StoreError> {
        const T: &str = "subscribers";
        Ok(Subscriber {
            plan: r.plan.parse::<Plan>().map_err(|e| corrupt(T, "plan", e))?,
            charge_per_cycle_vnd: u64::try_from(r.charge_per_cycle_vnd)
                .map_err(|e| corrupt(T, "charge_per_cycle_vnd", e))?,
            imported_at: time::from_db(T, "imported_at", &r.imported_at)?,
            msisdn: r.msisdn,
            list_source: r.list_source,
            name: r.name,
            import_batch: r.import_batch,
        })
    }
}

fn specialty_from_db(
    table: &'static str,
    column: &'static str,
    v: Option<i64>,
) -> Result<Option<u8>, StoreError> {
    v.map(|v| u8::try_from(v).map_err(|e| corrupt(table, column, e)))
        .transpose()
}

#[derive(sqlx::FromRow)]
pub(crate) struct RegistrationRaw {
    pub(crate) id: i64,
    pub(crate) msisdn: String,
    pub(crate) program_group: i64,
    pub(crate) channel: String,
    pub(crate) specialty: Option<i64>,
    pub(crate) status: String,
    pub(crate) created_at: String,
    pub(crate) updated_at: String,
    pub(crate) call_id: Option<String>,
    pub(crate) fanpage_ref: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) note: String,
}

impl TryFrom<RegistrationRaw> for Registration {
    type Error = StoreError;
    fn try_from(r: RegistrationRaw) -> Result<Self, StoreError> {
        const T: &str = "registrations";
        Ok(Registration {
            id: r.id,
            group: Group::from_number(r.program_group).ok_or_else(|| {
                corrupt(
                    T,
                    "program_group",
                    format!("{} is not 1 or 2", r.program_group),
                )
            })?,
            channel: r.channel.parse().map_err(|e| corrupt(T, "channel", e))?,
            specialty: specialty_from_db(T, "specialty", r.specialty)?,
            status: r.status.parse().map_err(|e| corrupt(T, "status", e))?,
            created_at: time::from_db(T, "created_at", &r.created_at)?,
            updated_at: time::from_db(T, "updated_at", &r.updated_at)?,
            msisdn: r.msisdn,
            call_id: r.call_id,
            fanpage_ref: r.fanpage_ref,
            name: r.name,
            note: r.note,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct EventRaw {
    id: i64,
    registration_id: i64,
    at: String,
    from_status: Option<String>,
    to_status: String,
    actor: String,
    detail: String,
    #[sqlx(default)]
    action: String,
}

impl TryFrom<EventRaw> for RegistrationEvent {
    type Error = StoreError;
    fn try_from(r: EventRaw) -> Result<Self, StoreError> {
        const T: &str = "registration_events";
        Ok(RegistrationEvent {
            id: r.id,
            registration_id: r.registration_id,
            at: time::from_db(T, "at", &r.at)?,
            from_status: r
                .from_status
                .map(|s| s.parse().map_err(|e| corrupt(T, "from_status", e)))
                .transpose()?,
            to_status: r
                .to_status
                .parse()
                .map_err(|e| corrupt(T, "to_status", e))?,
            actor: r.actor,
            detail: r.detail,
            action: r.action,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct VinmecRaw {
    pub(crate) id: i64,
    pub(crate) registration_id: i64,
    pub(crate) status: String,
    pub(crate) claimed_by: Option<String>,
    pub(crate) lease_until: Option<String>,
    pub(crate) prescreen_note: Option<String>,
    pub(crate) routed_specialty: Option<i64>,
    pub(crate) appointment_at: Option<String>,
    pub(crate) appointment_method: Option<String>,
    pub(crate) video_reason: Option<String>,
    pub(crate) consultation_report: Option<String>,
    pub(crate) enqueued_at: String,
    pub(crate) updated_at: String,
    // Columns of migration 0003; `default` keeps older SELECTs working.
    #[sqlx(default)]
    pub(crate) appointment_minutes: Option<i64>,
    #[sqlx(default)]
    pub(crate) consulted_at: Option<String>,
    #[sqlx(default)]
    pub(crate) unreachable_count: i64,
}

impl TryFrom<VinmecRaw> for VinmecEntry {
    type Error = StoreError;
    fn try_from(r: VinmecRaw) -> Result<Self, StoreError> {
        const T: &str = "vinmec_queue";
        Ok(VinmecEntry {
            id: r.id,
            registration_id: r.registration_id,
            queue: QueueEntry {
                status: r.status.parse().map_err(|e| corrupt(T, "status", e))?,
                claimed_by: r.claimed_by,
                lease_until: time::opt_from_db(T, "lease_until", r.lease_until.as_deref())?,
                prescreen_note: r.prescreen_note,
                routed_specialty: specialty_from_db(T, "routed_specialty", r.routed_specialty)?,
                appointment_at: time::opt_from_db(
                    T,
                    "appointment_at",
                    r.appointment_at.as_deref(),
                )?,
                appointment_minutes: r
                    .appointment_minutes
                    .map(|v| u32::try_from(v).map_err(|e| corrupt(T, "appointment_minutes", e)))
                    .transpose()?,
                appointment_method: r
                    .appointment_method
                    .map(|s| s.parse().map_err(|e| corrupt(T, "appointment_method", e)))
                    .transpose()?,
                video_reason: r.video_reason,
                consultation_report: r.consultation_report,
                consulted_at: time::opt_from_db(T, "consulted_at", r.consulted_at.as_deref())?,
                unreachable_count: u32::try_from(r.unreachable_count)
                    .map_err(|e| corrupt(T, "unreachable_count", e))?,
            },
            enqueued_at: time::from_db(T, "enqueued_at", &r.enqueued_at)?,
            updated_at: time::from_db(T, "updated_at", &r.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct CallRecordRaw {
    call_id: String,
    direction: String,
    caller: Option<String>,
    called: Option<String>,
    started_at: String,
    answered_at: Option<String>,
    ended_at: Option<String>,
    final_status: Option<i64>,
    disposition: String,
    end_reason: String,
    digits: String,
    ivr_path: String,
    prompts: String,
    campaign_id: Option<i64>,
    attempt_id: Option<i64>,
}

impl TryFrom<CallRecordRaw> for CallRecordRow {
    type Error = StoreError;
    fn try_from(r: CallRecordRaw) -> Result<Self, StoreError> {
        const T: &str = "call_records";
        Ok(CallRecordRow {
            direction: r
                .direction
                .parse()
                .map_err(|e| corrupt(T, "direction", e))?,
            started_at: time::from_db(T, "started_at", &r.started_at)?,
            answered_at: time::opt_from_db(T, "answered_at", r.answered_at.as_deref())?,
            ended_at: time::opt_from_db(T, "ended_at", r.ended_at.as_deref())?,
            final_status: r
                .final_status
                .map(|v| u16::try_from(v).map_err(|e| corrupt(T, "final_status", e)))
                .transpose()?,
            disposition: r
                .disposition
                .parse()
                .map_err(|e| corrupt(T, "disposition", e))?,
            ivr_path: serde_json::from_str(&r.ivr_path).map_err(|e| corrupt(T, "ivr_path", e))?,
            prompts: serde_json::from_str(&r.prompts).map_err(|e| corrupt(T, "prompts", e))?,
            call_id: r.call_id,
            caller: r.caller,
            called: r.called,
            end_reason: r.end_reason,
            digits: r.digits,
            campaign_id: r.campaign_id,
            attempt_id: r.attempt_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_strings_and_sip_codes() {
        for &d in Disposition::ALL {
            assert_eq!(d.as_str().parse::<Disposition>(), Ok(d));
        }
        let cases = [
            (200, Disposition::Answered),
            (486, Disposition::Busy),
            (600, Disposition::Busy),
            (480, Disposition::NoAnswer),
            (408, Disposition::NoAnswer),
            (603, Disposition::Rejected),
            (404, Disposition::InvalidNumber),
            (484, Disposition::InvalidNumber),
            (487, Disposition::Canceled),
            (503, Disposition::Congested),
            // The guide's vocabulary: 500 is the network, not the subscriber; a 403
            // is a trunk/policy refusal, not a subscriber's decline (603).
            (500, Disposition::Congested),
            (403, Disposition::Failed),
            (418, Disposition::Failed),
        ];
        for (code, want) in cases {
            assert_eq!(Disposition::from_sip_status(code), want, "{code}");
        }
        for s in ["waiting", "claimed", "done", "cancelled"] {
            assert_eq!(s.parse::<QueueStatus>().map(QueueStatus::as_str), Ok(s));
        }
        for s in ["phone", "video"] {
            assert_eq!(
                s.parse::<AppointmentMethod>()
                    .map(AppointmentMethod::as_str),
                Ok(s)
            );
        }
        assert!("fax".parse::<AppointmentMethod>().is_err());
    }
}
