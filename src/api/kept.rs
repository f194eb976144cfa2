//! The answers the API keeps under an `Idempotency-Key` (`store::KeyedAnswer`): the
//! JSON body it sent, so a retry with the same key gets the same bytes back.
//!
//! Before `api` kept its own answers, the store kept its rows there (a queue item as
//! `{"registration": …, "entry": …}`, a claim as a list of those, an intake as
//! `[registration, places_left]`) and the API built the body from them on every
//! replay. Keys never expire, so a retry may still find one of those: [`queue_item`],
//! [`claimed`] and [`intake`] tell an answer as sent from such a row, and
//! [`Kept::body`] builds the body from a row with the view the handler uses, as the
//! API did. Once no client can retry a request made before that change, the `Old*`
//! shapes can go.

use jiff::Timestamp;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::names::ByName;
use crate::store::{
    AppointmentMethod, QueueEntry, QueueItem, QueueStatus, Registration, VinmecEntry,
};
use tongdai_domain::program::{Channel, Group, Status};

/// The text kept for an answer: its JSON body, as sent.
pub fn text(body: &impl Serialize) -> Result<String, String> {
    serde_json::to_string(body).map_err(|e| e.to_string())
}

/// What a key held.
#[derive(Debug, PartialEq)]
pub enum Kept<T> {
    /// The body as it was sent.
    Sent(String),
    /// A store row kept before the API kept its own answers.
    Old(T),
}

impl<T> Kept<T> {
    /// The body to replay: as sent, or built from an old row with `view`.
    pub fn body<V: Serialize>(self, view: impl FnOnce(&T) -> V) -> Result<String, ApiError> {
        match self {
            Kept::Sent(body) => Ok(body),
            Kept::Old(row) => text(&view(&row)).map_err(ApiError::internal),
        }
    }
}

/// A kept text as the old shape `O` (the store's row as it was kept), or as sent.
fn read<O: DeserializeOwned, T: From<O>>(kept: String) -> Kept<T> {
    match serde_json::from_str::<O>(&kept) {
        Ok(old) => Kept::Old(old.into()),
        Err(_) => Kept::Sent(kept),
    }
}

/// A kept queue-item answer (`POST /api/v1/vinmec/queue/{id}/<action>`).
pub fn queue_item(kept: String) -> Kept<QueueItem> {
    read::<OldItem, QueueItem>(kept)
}

/// A kept claim answer (`POST /api/v1/vinmec/queue/claim`).
pub fn claimed(kept: String) -> Kept<Vec<QueueItem>> {
    read::<OldItems, Vec<QueueItem>>(kept)
}

/// A kept fanpage intake answer (`POST /api/v1/fanpage/registrations`): the
/// registration and the places left after it.
pub fn intake(kept: String) -> Kept<(Registration, u32)> {
    read::<OldIntake, (Registration, u32)>(kept)
}

/// `store::Registration` as it was kept (its derived serde shape).
#[derive(Deserialize)]
struct OldRegistration {
    id: i64,
    msisdn: String,
    group: ByName<Group>,
    channel: ByName<Channel>,
    specialty: Option<u8>,
    status: ByName<Status>,
    created_at: Timestamp,
    updated_at: Timestamp,
    call_id: Option<String>,
    fanpage_ref: Option<String>,
    name: Option<String>,
    note: String,
}

/// `store::VinmecEntry` as it was kept.
#[derive(Deserialize)]
struct OldEntry {
    id: i64,
    registration_id: i64,
    status: ByName<QueueStatus>,
    claimed_by: Option<String>,
    lease_until: Option<Timestamp>,
    prescreen_note: Option<String>,
    routed_specialty: Option<u8>,
    appointment_at: Option<Timestamp>,
    appointment_method: Option<ByName<AppointmentMethod>>,
    video_reason: Option<String>,
    consultation_report: Option<String>,
    enqueued_at: Timestamp,
    updated_at: Timestamp,
    appointment_minutes: Option<u32>,
    consulted_at: Option<Timestamp>,
    unreachable_count: u32,
}

/// `store::QueueItem` as it was kept.
#[derive(Deserialize)]
struct OldItem {
    registration: OldRegistration,
    entry: OldEntry,
}

/// An intake's `(store::Registration, places_left)` as it was kept.
#[derive(Deserialize)]
struct OldIntake(OldRegistration, u32);

/// A claim's `Vec<store::QueueItem>` as it was kept.
#[derive(Deserialize)]
#[serde(transparent)]
struct OldItems(Vec<OldItem>);

impl From<OldRegistration> for Registration {
    fn from(r: OldRegistration) -> Self {
        Registration {
            id: r.id,
            msisdn: r.msisdn,
            group: r.group.0,
            channel: r.channel.0,
            specialty: r.specialty,
            status: r.status.0,
            created_at: r.created_at,
            updated_at: r.updated_at,
            call_id: r.call_id,
            fanpage_ref: r.fanpage_ref,
            name: r.name,
            note: r.note,
        }
    }
}

impl From<OldEntry> for VinmecEntry {
    fn from(e: OldEntry) -> Self {
        VinmecEntry {
            id: e.id,
            registration_id: e.registration_id,
            queue: QueueEntry {
                status: e.status.0,
                claimed_by: e.claimed_by,
                lease_until: e.lease_until,
                prescreen_note: e.prescreen_note,
                routed_specialty: e.routed_specialty,
                appointment_at: e.appointment_at,
                appointment_method: e.appointment_method.map(|m| m.0),
                video_reason: e.video_reason,
                consultation_report: e.consultation_report,
                appointment_minutes: e.appointment_minutes,
                consulted_at: e.consulted_at,
                unreachable_count: e.unreachable_count,
            },
            enqueued_at: e.enqueued_at,
            updated_at: e.updated_at,
        }
    }
}

impl From<OldItem> for QueueItem {
    fn from(i: OldItem) -> Self {
        QueueItem {
            registration: i.registration.into(),
            entry: i.entry.into(),
        }
    }
}

impl From<OldItems> for Vec<QueueItem> {
    fn from(items: OldItems) -> Self {
        items.0.into_iter().map(QueueItem::from).collect()
    }
}

impl From<OldIntake> for (Registration, u32) {
    fn from(OldIntake(registration, places_left): OldIntake) -> Self {
        (registration.into(), places_left)
    }
}
