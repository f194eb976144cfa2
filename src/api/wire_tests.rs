//! The API's JSON, frozen: every object the API sends that is built from a value of
//! another layer (call records, store rows and reports, domain enums), serialised for
//! representative values and compared as text with what the API sent before `api`
//! owned its views — so a renamed field, a changed order, `null` turned absent, another
//! number or timestamp format or enum name fails here. Also the request-side messages
//! for names the API reads (query parameters, body fields).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use jiff::Timestamp;
use jiff::civil::{Time, date};
use serde::Serialize;

use super::auth::{Caller, Role};
use super::calls::CallRecordView;
use super::campaigns::{
    CampaignSatisfaction, CampaignSummary, CampaignView, CampaignsSection, CreatedView,
    ProgressView, QueueCounts, SatisfactionSection,
};
use super::vinmec::{EventView, QueueItemView};
use crate::call::{CallRecord, DigitMethod, DigitMethods, PromptPlay};
use crate::store::{
    AppointmentMethod, CallDirection, CallRecordRow, CampaignHoldRow, CampaignProgress,
    CampaignRow, ContactEnd, DncEntry, DncSource, FlowOutcome, QueueEntry, QueueItem, QueueStatus,
    Registration, RegistrationEvent, SatisfactionReport, ScaleSummary, VinmecEntry, YesNoSummary,
};
use tongdai_domain::dialer::{
    CallingWindow, CampaignKind, CampaignPolicy, CampaignState, Day, Disposition,
};
use tongdai_domain::program::{Channel, Group, ProgramConfig, Status};

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn pretty(v: &impl Serialize) -> String {
    serde_json::to_string_pretty(v).expect("serialises")
}

/// Compares the JSON text (member order included) with what the API sent before.
#[track_caller]
fn frozen(v: &impl Serialize, want: &str) {
    let got = pretty(v);
    assert_eq!(got, want.trim(), "JSON changed; now:\n{got}");
}

fn json(v: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(v).expect("serialises")
}

// ---- call records (`GET /calls`) --------------------------------------------------------

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::new(1_638_000_000, 123_456_789)
}

fn full_record() -> CallRecord {
    CallRecord {
        call_id: "a84b4c76e66710@pc33.example".into(),
        leg: 7,
        direction: "outbound",
        caller: Some("9090".into()),
        called: Some("+84903123678".into()),
        started_at: t0(),
        answered_at: Some(t0() + Duration::from_secs(2)),
        ended_at: Some(t0() + Duration::from_millis(65_500)),
        final_status: Some(200),
        end_reason: "remote_bye".into(),
        digits: "1#".into(),
        dialplan: Some("invite".into()),
        ivr_path: vec!["welcome".into(), "menu".into()],
        ivr_node: Some("menu".into()),
        digit_methods: DigitMethods {
            rfc4733: 1,
            info: 1,
        },
        prompts: vec![
            PromptPlay {
                id: "welcome".into(),
                frames_sent: 150,
                completed: true,
            },
            PromptPlay {
                id: "menu".into(),
                frames_sent: 20,
                completed: false,
            },
        ],
        codec: Some("PCMU".into()),
        telephone_event_pt: Some(101),
        reoffers: 1,
        rtp_packets_sent: 3000,
        rtp_prompt_packets_sent: 170,
        rtp_packets_received: 2990,
        dtmf_digits: 2,
        rtp_late_frames: 3,
        campaign_id: Some(4),
        attempt_id: Some(17),
        disposition: Some("answered"),
    }
}

fn bare_record() -> CallRecord {
    CallRecord::new(
        "c-1".into(),
        1,
        None,
        None,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_638_000_000),
    )
}

#[test]
fn call_log() {
    let mut inbound = full_record();
    inbound.call_id = "in-1".into();
    inbound.direction = "inbound";
    inbound.caller = Some("+84912345678".into());
    inbound.called = Some("9090".into());
    let view = super::calls::calls_view(vec![bare_record()], vec![inbound, full_record()]);
    frozen(
        &view,
        r#"
{
  "active": [
    {
      "call_id": "c-1",
      "leg": 1,
      "direction": "inbound",
      "caller": null,
      "called": null,
      "started_at": "2021-11-27T08:00:00Z",
      "answered_at": null,
      "ended_at": null,
      "final_status": null,
      "end_reason": "",
      "digits": "",
      "dialplan": null,
      "ivr_path": [],
      "ivr_node": null,
      "digit_methods": {
        "rfc4733": 0,
        "info": 0
      },
      "prompts": [],
      "codec": null,
      "telephone_event_pt": null,
      "reoffers": 0,
      "rtp_packets_sent": 0,
      "rtp_prompt_packets_sent": 0,
      "rtp_packets_received": 0,
      "dtmf_digits": 0,
      "rtp_late_frames": 0,
      "campaign_id": null,
      "attempt_id": null,
      "disposition": null
    }
  ],
  "recent": [
    {
      "call_id": "a84b4c76e66710@pc33.example",
      "leg": 7,
      "direction": "outbound",
      "caller": "9090",
      "called": "+849***678",
      "started_at": "2021-11-27T08:00:00.123456789Z",
      "answered_at": "2021-11-27T08:00:02.123456789Z",
      "ended_at": "2021-11-27T08:01:05.623456789Z",
      "final_status": 200,
      "end_reason": "remote_bye",
      "digits": "1#",
      "dialplan": "invite",
      "ivr_path": [
        "welcome",
        "menu"
      ],
      "ivr_node": "menu",
      "digit_methods": {
        "rfc4733": 1,
        "info": 1
      },
      "prompts": [
        {
          "id": "welcome",
          "frames_sent": 150,
          "completed": true
        },
        {
          "id": "menu",
          "frames_sent": 20,
          "completed": false
        }
      ],
      "codec": "PCMU",
      "telephone_event_pt": 101,
      "reoffers": 1,
      "rtp_packets_sent": 3000,
      "rtp_prompt_packets_sent": 170,
      "rtp_packets_received": 2990,
      "dtmf_digits": 2,
      "rtp_late_frames": 3,
      "campaign_id": 4,
      "attempt_id": 17,
      "disposition": "answered"
    },
    {
      "call_id": "in-1",
      "leg": 7,
      "direction": "inbound",
      "caller": "+849***678",
      "called": "9090",
      "started_at": "2021-11-27T08:00:00.123456789Z",
      "answered_at": "2021-11-27T08:00:02.123456789Z",
      "ended_at": "2021-11-27T08:01:05.623456789Z",
      "final_status": 200,
      "end_reason": "remote_bye",
      "digits": "1#",
      "dialplan": "invite",
      "ivr_path": [
        "welcome",
        "menu"
      ],
      "ivr_node": "menu",
      "digit_methods": {
        "rfc4733": 1,
        "info": 1
      },
      "prompts": [
        {
          "id": "welcome",
          "frames_sent": 150,
          "completed": true
        },
        {
          "id": "menu",
          "frames_sent": 20,
          "completed": false
        }
      ],
      "codec": "PCMU",
      "telephone_event_pt": 101,
      "reoffers": 1,
      "rtp_packets_sent": 3000,
      "rtp_prompt_packets_sent": 170,
      "rtp_packets_received": 2990,
      "dtmf_digits": 2,
      "rtp_late_frames": 3,
      "campaign_id": 4,
      "attempt_id": 17,
      "disposition": "answered"
    }
  ]
}
"#,
    );
}

/// The JSON half of `call::record`'s `digits_are_counted_by_method`, which moved here
/// with the record's JSON.
#[test]
fn digits_are_counted_by_method() {
    let mut r = CallRecord::new("c".into(), 1, None, None, SystemTime::UNIX_EPOCH);
    r.push_digit('1', DigitMethod::Rfc4733);
    r.push_digit('#', DigitMethod::Info);
    r.push_digit('2', DigitMethod::Rfc4733);
    let json = serde_json::to_value(CallRecordView::from(r)).expect("serialises");
    assert_eq!(json["digit_methods"]["rfc4733"], 2);
    assert_eq!(json["ivr_node"], serde_json::Value::Null);
}

#[test]
fn call_log_keeps_the_last_hundred_newest_first() {
    let finished: Vec<CallRecord> = (0..130)
        .map(|i| CallRecord::new(format!("c{i}"), i, None, None, SystemTime::UNIX_EPOCH))
        .collect();
    let j = json(&super::calls::calls_view(Vec::new(), finished));
    let recent = j["recent"].as_array().expect("array");
    assert_eq!(recent.len(), 100);
    assert_eq!(recent[0]["call_id"], "c129");
    assert_eq!(recent[99]["call_id"], "c30");
}

// ---- the Vinmec queue, its events, the fanpage intake, the webhook -------------------

fn booked_item() -> QueueItem {
    QueueItem {
        registration: Registration {
            id: 12,
            msisdn: "+84903123678".into(),
            group: Group::One,
            channel: Channel::OutboundCall,
            specialty: Some(2),
            status: Status::AppointmentBooked,
            created_at: ts("2021-11-26T02:15:00Z"),
            updated_at: ts("2021-11-27T03:00:00.5Z"),
            call_id: Some("out-1@tongdai".into()),
            fanpage_ref: None,
            name: Some("Nguyễn Văn An".into()),
            note: "gọi sau 17h".into(),
        },
        entry: VinmecEntry {
            id: 3,
            registration_id: 12,
            queue: QueueEntry {
                status: QueueStatus::Done,
                claimed_by: Some("vinmec1".into()),
                lease_until: Some(ts("2021-11-27T03:15:00Z")),
                prescreen_note: Some("đau lưng".into()),
                routed_specialty: Some(1),
                appointment_at: Some(ts("2021-11-29T02:00:00Z")),
                appointment_method: Some(AppointmentMethod::Video),
                video_reason: Some("cần xem vết thương".into()),
                consultation_report: Some("ổn".into()),
                appointment_minutes: Some(30),
                consulted_at: Some(ts("2021-11-29T02:30:00Z")),
                unreachable_count: 1,
            },
            enqueued_at: ts("2021-11-26T02:15:00Z"),
            updated_at: ts("2021-11-27T03:00:00.5Z"),
        },
    }
}

fn waiting_item() -> QueueItem {
    QueueItem {
        registration: Registration {
            id: 13,
            msisdn: "+84912345678".into(),
            group: Group::Two,
            channel: Channel::Fanpage,
            specialty: None,
            status: Status::Registered,
            created_at: ts("2021-11-27T01:00:00Z"),
            updated_at: ts("2021-11-27T01:00:00Z"),
            call_id: None,
            fanpage_ref: Some("msg-77".into()),
            name: None,
            note: String::new(),
        },
        entry: VinmecEntry {
            id: 4,
            registration_id: 13,
            queue: QueueEntry {
                status: QueueStatus::Waiting,
                claimed_by: None,
                lease_until: None,
                prescreen_note: None,
                routed_specialty: None,
                appointment_at: None,
                appointment_method: None,
                video_reason: None,
                consultation_report: None,
                appointment_minutes: None,
                consulted_at: None,
                unreachable_count: 0,
            },
            enqueued_at: ts("2021-11-27T01:00:00Z"),
            updated_at: ts("2021-11-27T01:00:00Z"),
        },
    }
}

const BOOKED_VIEW: &str = r#"
{
  "registration_id": 12,
  "msisdn": "+84903123678",
  "msisdn_national": "0903123678",
  "name": "Nguyễn Văn An",
  "group": 1,
  "channel": "outbound_call",
  "specialty": 2,
  "status": "appointment_booked",
  "registered_at": "2021-11-26T02:15:00Z",
  "fanpage_ref": null,
  "queue_status": "done",
  "claimed_by": "vinmec1",
  "lease_until": "2021-11-27T03:15:00Z",
  "need": "đau lưng",
  "routed_specialty": 1,
  "appointment_at": "2021-11-29T02:00:00Z",
  "appointment_local": "2021-11-29 09:00",
  "appointment_minutes": 30,
  "appointment_method": "video",
  "video_reason": "cần xem vết thương",
  "consultation_report": "ổn",
  "consulted_at": "2021-11-29T02:30:00Z",
  "unreachable_count": 1,
  "enqueued_at": "2021-11-26T02:15:00Z",
  "updated_at": "2021-11-27T03:00:00.5Z"
}
"#;

const WAITING_VIEW: &str = r#"
{
  "registration_id": 13,
  "msisdn": "+84912345678",
  "msisdn_national": "0912345678",
  "name": null,
  "group": 2,
  "channel": "fanpage",
  "specialty": null,
  "status": "registered",
  "registered_at": "2021-11-27T01:00:00Z",
  "fanpage_ref": "msg-77",
  "queue_status": "waiting",
  "claimed_by": null,
  "lease_until": null,
  "need": null,
  "routed_specialty": null,
  "appointment_at": null,
  "appointment_local": null,
  "appointment_minutes": null,
  "appointment_method": null,
  "video_reason": null,
  "consultation_report": null,
  "consulted_at": null,
  "unreachable_count": 0,
  "enqueued_at": "2021-11-27T01:00:00Z",
  "updated_at": "2021-11-27T01:00:00Z"
}
"#;

#[test]
fn queue_items() {
    let cfg = ProgramConfig::default();
    frozen(&QueueItemView::new(&booked_item(), &cfg), BOOKED_VIEW);
    frozen(&QueueItemView::new(&waiting_item(), &cfg), WAITING_VIEW);
}

#[test]
fn every_name_in_a_queue_item_is_the_stored_name() {
    let cfg = ProgramConfig::default();
    let mut item = booked_item();
    for &s in Status::ALL {
        item.registration.status = s;
        assert_eq!(json(&QueueItemView::new(&item, &cfg))["status"], s.as_str());
    }
    for &c in Channel::ALL {
        item.registration.channel = c;
        assert_eq!(
            json(&QueueItemView::new(&item, &cfg))["channel"],
            c.as_str()
        );
    }
    for &q in QueueStatus::ALL {
        item.entry.queue.status = q;
        let j = json(&QueueItemView::new(&item, &cfg));
        assert_eq!(j["queue_status"], q.as_str());
    }
    for m in [AppointmentMethod::Phone, AppointmentMethod::Video] {
        item.entry.queue.appointment_method = Some(m);
        let j = json(&QueueItemView::new(&item, &cfg));
        assert_eq!(j["appointment_method"], m.as_str());
    }
}

#[test]
fn webhook_delivery() {
    let view = QueueItemView::new(&waiting_item(), &ProgramConfig::default());
    let body = super::webhook::Delivery {
        id: "registration-13".into(),
        event: "registration.created",
        registration: &view,
    };
    let want = format!(
        "{{\n  \"id\": \"registration-13\",\n  \"event\": \"registration.created\",\n  \"registration\": {}\n}}",
        WAITING_VIEW.trim().replace('\n', "\n  ")
    );
    frozen(&body, &want);
}

#[test]
fn registration_events() {
    let created = RegistrationEvent {
        id: 1,
        registration_id: 12,
        at: ts("2021-11-26T02:15:00Z"),
        from_status: None,
        to_status: Status::Registered,
        actor: "ivr".into(),
        detail: String::new(),
        action: String::new(),
    };
    let claimed = RegistrationEvent {
        id: 2,
        registration_id: 12,
        at: ts("2021-11-27T03:00:00.5Z"),
        from_status: Some(Status::Registered),
        to_status: Status::SentToVinmec,
        actor: "vinmec:vinmec1".into(),
        detail: "lease_until=2021-11-27T03:15:00Z".into(),
        action: "claim".into(),
    };
    let events: Vec<EventView> = vec![created.into(), claimed.into()];
    frozen(
        &events,
        r#"
[
  {
    "at": "2021-11-26T02:15:00Z",
    "from_status": null,
    "to_status": "registered",
    "action": "",
    "actor": "ivr",
    "detail": ""
  },
  {
    "at": "2021-11-27T03:00:00.5Z",
    "from_status": "registered",
    "to_status": "sent_to_vinmec",
    "action": "claim",
    "actor": "vinmec:vinmec1",
    "detail": "lease_until=2021-11-27T03:15:00Z"
  }
]
"#,
    );
    for &s in Status::ALL {
        let e = RegistrationEvent {
            id: 3,
            registration_id: 12,
            at: ts("2021-11-27T03:00:00Z"),
            from_status: Some(s),
            to_status: s,
            actor: String::new(),
            detail: String::new(),
            action: String::new(),
        };
        let j = json(&EventView::from(e));
        assert_eq!(j["from_status"], s.as_str());
        assert_eq!(j["to_status"], s.as_str());
    }
}

#[test]
fn fanpage_registration() {
    let item = waiting_item();
    frozen(
        &super::fanpage::view(&item.registration, 417),
        r#"
{
  "registration_id": 13,
  "msisdn": "+84912345678",
  "msisdn_national": "0912345678",
  "name": null,
  "group": 2,
  "channel": "fanpage",
  "specialty": null,
  "status": "registered",
  "registered_at": "2021-11-27T01:00:00Z",
  "fanpage_ref": "msg-77",
  "places_left": 417
}
"#,
    );
    let named = booked_item();
    let j = json(&super::fanpage::view(&named.registration, 0));
    assert_eq!(
        (&j["name"], &j["specialty"], &j["channel"], &j["status"]),
        (
            &"Nguyễn Văn An".into(),
            &2.into(),
            &"outbound_call".into(),
            &"appointment_booked".into()
        )
    );
}

// ---- do-not-call ---------------------------------------------------------------------

#[test]
fn do_not_call_entries() {
    let entry = DncEntry {
        msisdn: "+84903123678".into(),
        source: DncSource::Keypad,
        at: ts("2021-11-28T09:30:00Z"),
        campaign_id: Some(2),
        attempt_id: Some(9),
        note: String::new(),
    };
    let imported = DncEntry {
        source: DncSource::Import,
        campaign_id: None,
        attempt_id: None,
        note: "MobiFone DNC 2021-11".into(),
        ..entry.clone()
    };
    let views = vec![
        super::dnc::view(entry, Role::Admin),
        super::dnc::view(imported, Role::Supervisor),
    ];
    frozen(
        &views,
        r#"
[
  {
    "msisdn": "+84903123678",
    "source": "keypad",
    "at": "2021-11-28T09:30:00Z",
    "campaign_id": 2,
    "attempt_id": 9,
    "note": ""
  },
  {
    "msisdn": "0903***678",
    "source": "import",
    "at": "2021-11-28T09:30:00Z",
    "campaign_id": null,
    "attempt_id": null,
    "note": "MobiFone DNC 2021-11"
  }
]
"#,
    );
    for &source in DncSource::ALL {
        let e = DncEntry {
            msisdn: "+84903123678".into(),
            source,
            at: ts("2021-11-28T09:30:00Z"),
            campaign_id: None,
            attempt_id: None,
            note: String::new(),
        };
        assert_eq!(
            json(&super::dnc::view(e, Role::Admin))["source"],
            source.as_str()
        );
    }
}

// ---- recent calls from the store -------------------------------------------------------

fn row(direction: CallDirection, disposition: Disposition) -> CallRecordRow {
    CallRecordRow {
        call_id: "r-1".into(),
        direction,
        caller: Some("+84903123678".into()),
        called: Some("9090".into()),
        started_at: ts("2021-11-27T03:00:00Z"),
        answered_at: Some(ts("2021-11-27T03:00:02Z")),
        ended_at: Some(ts("2021-11-27T03:01:05.25Z")),
        final_status: Some(200),
        disposition,
        end_reason: "remote_bye".into(),
        digits: "1".into(),
        ivr_path: vec!["welcome".into(), "menu".into()],
        prompts: vec!["welcome".into()],
        campaign_id: None,
        attempt_id: None,
    }
}

#[test]
fn recent_calls() {
    let outbound = CallRecordRow {
        caller: Some("9090".into()),
        called: Some("+84912345678".into()),
        answered_at: None,
        ended_at: None,
        final_status: None,
        ivr_path: Vec::new(),
        campaign_id: Some(1),
        attempt_id: Some(2),
        ..row(CallDirection::Outbound, Disposition::NoAnswer)
    };
    let views = vec![
        super::supervisor::recent_view(row(CallDirection::Inbound, Disposition::Answered)),
        super::supervisor::recent_view(outbound),
    ];
    frozen(
        &views,
        r#"
[
  {
    "call_id": "r-1",
    "direction": "inbound",
    "number": "+849***678",
    "line": "9090",
    "started_at": "2021-11-27T03:00:00Z",
    "answered_at": "2021-11-27T03:00:02Z",
    "ended_at": "2021-11-27T03:01:05.25Z",
    "duration_seconds": 65,
    "final_status": 200,
    "disposition": "answered",
    "end_reason": "remote_bye",
    "ivr_path": [
      "welcome",
      "menu"
    ]
  },
  {
    "call_id": "r-1",
    "direction": "outbound",
    "number": "+849***678",
    "line": "9090",
    "started_at": "2021-11-27T03:00:00Z",
    "answered_at": null,
    "ended_at": null,
    "duration_seconds": null,
    "final_status": null,
    "disposition": "no_answer",
    "end_reason": "remote_bye",
    "ivr_path": []
  }
]
"#,
    );
    for &d in Disposition::ALL {
        let j = json(&super::supervisor::recent_view(row(
            CallDirection::Inbound,
            d,
        )));
        assert_eq!(j["disposition"], d.as_str());
    }
}

// ---- campaigns -------------------------------------------------------------------------

fn invitation() -> CampaignRow {
    CampaignRow {
        id: 5,
        name: "Mời đăng ký đợt 1".into(),
        kind: CampaignKind::Invitation,
        dialplan: "invite".into(),
        policy: CampaignPolicy {
            max_cps: 2.5,
            calling_windows: vec![
                CallingWindow::new(Time::constant(8, 0, 0, 0), Time::constant(11, 30, 0, 0)),
                CallingWindow::new(Time::constant(13, 30, 0, 0), Time::MAX),
            ],
            days: vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri],
            excluded_dates: vec![date(2021, 12, 24)],
            ..CampaignPolicy::default()
        },
        state: CampaignState::Running,
        created_at: ts("2021-11-26T01:00:00Z"),
        updated_at: ts("2021-11-26T01:05:00Z"),
        started_at: Some(ts("2021-11-26T01:05:00Z")),
        ended_at: None,
    }
}

fn survey() -> CampaignRow {
    CampaignRow {
        id: 6,
        name: "Khảo sát".into(),
        kind: CampaignKind::Survey,
        dialplan: "survey".into(),
        policy: CampaignPolicy::for_kind(CampaignKind::Survey),
        state: CampaignState::Stopped,
        created_at: ts("2021-12-01T01:00:00Z"),
        updated_at: ts("2021-12-02T01:00:00Z"),
        started_at: Some(ts("2021-12-01T02:00:00Z")),
        ended_at: Some(ts("2021-12-02T01:00:00Z")),
    }
}

fn progress() -> CampaignProgress {
    CampaignProgress {
        contacts: 10,
        waiting: 3,
        dialing: 1,
        in_call: 1,
        retry_pending: 2,
        done: 3,
        done_by_reason: BTreeMap::from([(ContactEnd::Completed, 2), (ContactEnd::OptedOut, 1)]),
        done_by_disposition: BTreeMap::from([(Disposition::Answered, 3)]),
        attempts: 8,
        attempts_by_disposition: BTreeMap::from([
            (Disposition::Answered, 4),
            (Disposition::Busy, 2),
            (Disposition::NoAnswer, 2),
        ]),
        outcomes: BTreeMap::from([(FlowOutcome::Registered, 2), (FlowOutcome::OptedOut, 1)]),
        answer_rate: Some(0.5),
        next_due: Some(ts("2021-11-27T03:10:00Z")),
        hold: Some(CampaignHoldRow {
            code: "outside_calling_window".into(),
            detail: "outside_calling_window: opens 2021-11-27T06:30:00Z".into(),
            instance: "tongdai-1".into(),
            since: ts("2021-11-27T04:30:00Z"),
        }),
    }
}

const PROGRESS: &str = r#"{
    "contacts": 10,
    "waiting": 3,
    "dialing": 1,
    "in_call": 1,
    "retry_pending": 2,
    "done": 3,
    "done_by_reason": {
      "already_registered": 0,
      "already_surveyed": 0,
      "completed": 2,
      "duplicate": 0,
      "invalid_number": 0,
      "max_attempts": 0,
      "no_calling_window": 0,
      "opted_out": 1,
      "rejected": 0
    },
    "done_by_disposition": {
      "answered": 3,
      "busy": 0,
      "canceled": 0,
      "congested": 0,
      "failed": 0,
      "invalid_number": 0,
      "no_answer": 0,
      "rejected": 0
    },
    "attempts": 8,
    "attempts_by_disposition": {
      "answered": 4,
      "busy": 2,
      "canceled": 0,
      "congested": 0,
      "failed": 0,
      "invalid_number": 0,
      "no_answer": 2,
      "rejected": 0
    },
    "outcomes": {
      "already_registered": 0,
      "call_later": 0,
      "cap_full": 0,
      "not_eligible": 0,
      "not_interested": 0,
      "opted_out": 1,
      "registered": 2,
      "registration_closed": 0,
      "survey_completed": 0,
      "survey_partial": 0
    },
    "answer_rate": 0.5,
    "next_due": "2021-11-27T03:10:00Z",
    "hold": {
      "code": "outside_calling_window",
      "detail": "outside_calling_window: opens 2021-11-27T06:30:00Z",
      "instance": "tongdai-1",
      "since": "2021-11-27T04:30:00Z"
    }
  }"#;

#[test]
fn campaign_with_policy_and_progress() {
    let want = r#"
{
  "id": 5,
  "name": "Mời đăng ký đợt 1",
  "kind": "invitation",
  "dialplan": "invite",
  "state": "running",
  "created_at": "2021-11-26T01:00:00Z",
  "updated_at": "2021-11-26T01:05:00Z",
  "started_at": "2021-11-26T01:05:00Z",
  "ended_at": null,
  "policy": {
    "kind": "invitation",
    "dialplan": "invite",
    "max_concurrent": 20,
    "max_cps": 2.5,
    "ring_timeout": "30s",
    "calling_windows": [
      "08:00-11:30",
      "13:30-24:00"
    ],
    "days": [
      "mon",
      "tue",
      "wed",
      "thu",
      "fri"
    ],
    "excluded_dates": [
      "2021-12-24"
    ],
    "timezone": "Asia/Ho_Chi_Minh",
    "max_attempts": 3,
    "retry": {
      "busy": "10m",
      "no_answer": "2h",
      "congested": {
        "base": "5m",
        "factor": 2.0,
        "cap": "1h"
      },
      "failed": "30m",
      "incomplete": "1h",
      "throttled": "2m"
    }
  },
  "progress": PROGRESS
}
"#
    .replace("PROGRESS", PROGRESS);
    frozen(&CampaignView::new(&invitation(), &progress()), &want);
}

const EMPTY_PROGRESS: &str = r#"{
    "contacts": 0,
    "waiting": 0,
    "dialing": 0,
    "in_call": 0,
    "retry_pending": 0,
    "done": 0,
    "done_by_reason": {
      "already_registered": 0,
      "already_surveyed": 0,
      "completed": 0,
      "duplicate": 0,
      "invalid_number": 0,
      "max_attempts": 0,
      "no_calling_window": 0,
      "opted_out": 0,
      "rejected": 0
    },
    "done_by_disposition": {
      "answered": 0,
      "busy": 0,
      "canceled": 0,
      "congested": 0,
      "failed": 0,
      "invalid_number": 0,
      "no_answer": 0,
      "rejected": 0
    },
    "attempts": 0,
    "attempts_by_disposition": {
      "answered": 0,
      "busy": 0,
      "canceled": 0,
      "congested": 0,
      "failed": 0,
      "invalid_number": 0,
      "no_answer": 0,
      "rejected": 0
    },
    "outcomes": {
      "already_registered": 0,
      "call_later": 0,
      "cap_full": 0,
      "not_eligible": 0,
      "not_interested": 0,
      "opted_out": 0,
      "registered": 0,
      "registration_closed": 0,
      "survey_completed": 0,
      "survey_partial": 0
    },
    "answer_rate": null,
    "next_due": null,
    "hold": null
  }"#;

#[test]
fn campaign_created() {
    let created = CreatedView {
        campaign: CampaignView::new(&survey(), &CampaignProgress::default()),
        contacts: 4,
        skipped: BTreeMap::from([("do_not_call", 1), ("registered", 0)]),
    };
    let want = r#"
{
  "campaign": {
    "id": 6,
    "name": "Khảo sát",
    "kind": "survey",
    "dialplan": "survey",
    "state": "stopped",
    "created_at": "2021-12-01T01:00:00Z",
    "updated_at": "2021-12-02T01:00:00Z",
    "started_at": "2021-12-01T02:00:00Z",
    "ended_at": "2021-12-02T01:00:00Z",
    "policy": {
      "kind": "survey",
      "dialplan": "survey",
      "max_concurrent": 20,
      "max_cps": 5.0,
      "ring_timeout": "30s",
      "calling_windows": [
        "08:00-20:00"
      ],
      "days": [
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
        "sat",
        "sun"
      ],
      "excluded_dates": [],
      "timezone": "Asia/Ho_Chi_Minh",
      "max_attempts": 3,
      "retry": {
        "busy": "10m",
        "no_answer": "2h",
        "congested": {
          "base": "5m",
          "factor": 2.0,
          "cap": "1h"
        },
        "failed": "30m",
        "incomplete": "1h",
        "throttled": "2m"
      }
    },
    "progress": PROGRESS
  },
  "contacts": 4,
  "skipped": {
    "do_not_call": 1,
    "registered": 0
  }
}
"#
    .replace("PROGRESS", &EMPTY_PROGRESS.replace("\n", "\n  "));
    frozen(&created, &want);
}

#[test]
fn every_campaign_state_and_kind_by_name() {
    for state in super::campaigns::STATES {
        for kind in [CampaignKind::Invitation, CampaignKind::Survey] {
            let c = CampaignRow {
                state,
                kind,
                ..invitation()
            };
            let p = CampaignProgress::default();
            let j = json(&CampaignView::new(&c, &p));
            assert_eq!(
                (&j["state"], &j["kind"]),
                (&state.as_str().into(), &kind.as_str().into())
            );
            let s = json(&CampaignSummary::new(&c, ProgressView::from(&p)));
            assert_eq!((&s["state"], &s["kind"]), (&j["state"], &j["kind"]));
        }
    }
}

#[test]
fn snapshot_campaigns_section() {
    let progress = ProgressView::from(&progress());
    let section = CampaignsSection {
        running: 1,
        queue: QueueCounts {
            campaigns: 1,
            waiting: 3,
            dialing: 1,
            in_call: 1,
            retry_pending: 2,
            done: 3,
            done_by_disposition: BTreeMap::from([("answered", 3), ("busy", 0)]),
        },
        campaigns: vec![CampaignSummary::new(&invitation(), progress)],
    };
    let want = r#"
{
  "running": 1,
  "queue": {
    "campaigns": 1,
    "waiting": 3,
    "dialing": 1,
    "in_call": 1,
    "retry_pending": 2,
    "done": 3,
    "done_by_disposition": {
      "answered": 3,
      "busy": 0
    }
  },
  "campaigns": [
    {
      "id": 5,
      "name": "Mời đăng ký đợt 1",
      "kind": "invitation",
      "state": "running",
      "started_at": "2021-11-26T01:05:00Z",
      "ended_at": null,
      "progress": PROGRESS
    }
  ]
}
"#
    .replace("PROGRESS", &PROGRESS.replace("\n", "\n    "));
    frozen(&section, &want);
}

// ---- satisfaction ----------------------------------------------------------------------

#[test]
fn satisfaction_section() {
    let report = SatisfactionReport {
        respondents: 4,
        completed: 3,
        partial: 1,
        satisfaction: ScaleSummary::from_values([5, 4, 2, 3]),
        resolved: YesNoSummary {
            answers: 3,
            yes: 2,
            no: 1,
            share_yes: Some(2.0 / 3.0),
        },
        recommend: ScaleSummary::from_values([5, 3, 2]),
    };
    let section = SatisfactionSection::new(
        &report,
        vec![
            CampaignSatisfaction::new(&survey(), &report),
            CampaignSatisfaction::new(
                &CampaignRow {
                    id: 7,
                    state: CampaignState::Draft,
                    ..survey()
                },
                &SatisfactionReport::default(),
            ),
        ],
    );
    frozen(
        &section,
        r#"
{
  "overall": {
    "respondents": 4,
    "completed": 3,
    "partial": 1,
    "satisfaction": {
      "answers": 4,
      "histogram": [
        0,
        1,
        1,
        1,
        1
      ],
      "mean": 3.5,
      "share_4_5": 0.5
    },
    "resolved": {
      "answers": 3,
      "yes": 2,
      "no": 1,
      "share_yes": 0.6666666666666666
    },
    "recommend": {
      "answers": 3,
      "histogram": [
        0,
        1,
        1,
        0,
        1
      ],
      "mean": 3.3333333333333335,
      "share_4_5": 0.3333333333333333
    }
  },
  "campaigns": [
    {
      "campaign_id": 6,
      "name": "Khảo sát",
      "state": "stopped",
      "report": {
        "respondents": 4,
        "completed": 3,
        "partial": 1,
        "satisfaction": {
          "answers": 4,
          "histogram": [
            0,
            1,
            1,
            1,
            1
          ],
          "mean": 3.5,
          "share_4_5": 0.5
        },
        "resolved": {
          "answers": 3,
          "yes": 2,
          "no": 1,
          "share_yes": 0.6666666666666666
        },
        "recommend": {
          "answers": 3,
          "histogram": [
            0,
            1,
            1,
            0,
            1
          ],
          "mean": 3.3333333333333335,
          "share_4_5": 0.3333333333333333
        }
      }
    },
    {
      "campaign_id": 7,
      "name": "Khảo sát",
      "state": "draft",
      "report": {
        "respondents": 0,
        "completed": 0,
        "partial": 0,
        "satisfaction": {
          "answers": 0,
          "histogram": [
            0,
            0,
            0,
            0,
            0
          ],
          "mean": null,
          "share_4_5": null
        },
        "resolved": {
          "answers": 0,
          "yes": 0,
          "no": 0,
          "share_yes": null
        },
        "recommend": {
          "answers": 0,
          "histogram": [
            0,
            0,
            0,
            0,
            0
          ],
          "mean": null,
          "share_4_5": null
        }
      }
    }
  ]
}
"#,
    );
}

// ---- who am I ----------------------------------------------------------------------------

#[test]
fn whoami() {
    for role in Role::ALL {
        let v = super::WhoAmI::from(Caller {
            name: "ops".into(),
            role,
        });
        frozen(
            &v,
            &format!(
                "{{\n  \"name\": \"ops\",\n  \"role\": \"{}\"\n}}",
                role.as_str()
            ),
        );
    }
}

// ---- names read from requests -----------------------------------------------------------

/// What a query string gives (the same path as `ApiQuery`).
fn query<T: serde::de::DeserializeOwned>(q: &str) -> Result<T, String> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(q.as_bytes()));
    serde_path_to_error::deserialize::<_, T>(de)
        .map_err(|e| format!("{} @ {}", e.inner(), e.path()))
}

/// What a JSON body gives (the same path as `JsonBody`).
fn body<T: serde::de::DeserializeOwned>(b: &str) -> Result<T, String> {
    let de = &mut serde_json::Deserializer::from_str(b);
    serde_path_to_error::deserialize::<_, T>(de)
        .map_err(|e| format!("{} @ {}", e.inner(), e.path()))
}

#[test]
fn names_in_queries_parse_and_fail_as_before() {
    use super::export::ExportQuery;
    use super::vinmec::ListQuery;
    assert!(query::<ListQuery>("").is_ok());
    assert!(
        query::<ListQuery>(
            "status=claimed&registration_status=sent_to_vinmec&channel=hotline&mine=true"
        )
        .is_ok()
    );
    for &q in QueueStatus::ALL {
        assert!(query::<ListQuery>(&format!("status={}", q.as_str())).is_ok());
    }
    for &s in Status::ALL {
        assert!(query::<ListQuery>(&format!("registration_status={s}")).is_ok());
        assert!(query::<ExportQuery>(&format!("status={s}")).is_ok());
    }
    for &c in Channel::ALL {
        assert!(query::<ListQuery>(&format!("channel={c}")).is_ok());
    }
    let cases = [
        (
            "status=bogus",
            "unknown variant `bogus`, expected one of `waiting`, `claimed`, `done`, `cancelled` @ status",
        ),
        (
            "status=",
            "unknown variant ``, expected one of `waiting`, `claimed`, `done`, `cancelled` @ status",
        ),
        (
            "status=Waiting",
            "unknown variant `Waiting`, expected one of `waiting`, `claimed`, `done`, `cancelled` @ status",
        ),
        (
            "registration_status=open",
            "unknown variant `open`, expected one of `registered`, `sent_to_vinmec`, `appointment_booked`, `consulted`, `surveyed`, `cancelled`, `unreachable` @ registration_status",
        ),
        (
            "channel=sms",
            "unknown variant `sms`, expected one of `hotline`, `outbound_call`, `fanpage` @ channel",
        ),
        (
            "channel=1",
            "unknown variant `1`, expected one of `hotline`, `outbound_call`, `fanpage` @ channel",
        ),
    ];
    for (q, want) in cases {
        assert_eq!(query::<ListQuery>(q).err().as_deref(), Some(want), "{q}");
    }
    assert_eq!(
        query::<ExportQuery>("status=gone").err().as_deref(),
        Some(
            "unknown variant `gone`, expected one of `registered`, `sent_to_vinmec`, `appointment_booked`, `consulted`, `surveyed`, `cancelled`, `unreachable` @ status"
        )
    );
}

#[test]
fn names_in_bodies_parse_and_fail_as_before() {
    use super::vinmec::BookBody;
    let book = |method: &str| {
        format!(r#"{{"date":"2021-11-29","time":"09:00","method":{method},"duration_minutes":30}}"#)
    };
    // serde's externally tagged form of a unit variant is accepted too.
    for m in ["\"phone\"", "\"video\"", "{\"phone\":null}"] {
        assert!(body::<BookBody>(&book(m)).is_ok(), "{m}");
    }
    let cases = [
        (
            "\"fax\"",
            "unknown variant `fax`, expected `phone` or `video` at line 1 column 50 @ method",
        ),
        (
            "\"Phone\"",
            "unknown variant `Phone`, expected `phone` or `video` at line 1 column 52 @ method",
        ),
        ("5", "expected value at line 1 column 46 @ method"),
        ("null", "expected value at line 1 column 46 @ method"),
        ("[\"phone\"]", "expected value at line 1 column 46 @ method"),
    ];
    for (m, want) in cases {
        assert_eq!(
            body::<BookBody>(&book(m)).err().as_deref(),
            Some(want),
            "{m}"
        );
    }
    assert_eq!(
        body::<BookBody>(r#"{"date":"2021-11-29","time":"09:00","duration_minutes":30}"#)
            .err()
            .as_deref(),
        Some("missing field `method` at line 1 column 58 @ .")
    );
}

// ---- answers kept under an Idempotency-Key ----------------------------------------------

/// The text kept in `idempotency_keys.response` for a body (compact, as sent).
fn kept(v: &impl Serialize) -> String {
    serde_json::to_string(v).expect("serialises")
}

#[test]
fn kept_answers() {
    let cfg = ProgramConfig::default();
    // What the API keeps now is the body it sent.
    let item = kept(&QueueItemView::new(&booked_item(), &cfg));
    assert_eq!(
        super::kept::text(&QueueItemView::new(&booked_item(), &cfg)).ok(),
        Some(item.clone())
    );
    let claimed = kept(&super::vinmec::ClaimedView::new(&[waiting_item()], &cfg));
    let intake = kept(&super::fanpage::view(&waiting_item().registration, 417));
    // A retry finds it and gets it back untouched.
    use super::kept::Kept;
    assert_eq!(
        super::kept::queue_item(item.clone()),
        Kept::Sent(item.clone())
    );
    assert_eq!(
        super::kept::claimed(claimed.clone()),
        Kept::Sent(claimed.clone())
    );
    assert_eq!(
        super::kept::intake(intake.clone()),
        Kept::Sent(intake.clone())
    );
    // The store's rows kept before (below, as the store wrote them) give the same body
    // the API built from them on a replay.
    let replayed = super::kept::queue_item(LEGACY_ITEM.into())
        .body(|i| QueueItemView::new(i, &cfg))
        .ok();
    assert_eq!(replayed, Some(item));
    let replayed = super::kept::claimed(LEGACY_CLAIMED.into())
        .body(|items| super::vinmec::ClaimedView::new(items, &cfg))
        .ok();
    assert_eq!(replayed, Some(claimed));
    let replayed = super::kept::intake(LEGACY_INTAKE.into())
        .body(|(r, left)| super::fanpage::view(r, *left))
        .ok();
    assert_eq!(replayed, Some(intake));
}

const LEGACY_ITEM: &str = r#"{"registration":{"id":12,"msisdn":"+84903123678","group":"one","channel":"outbound_call","specialty":2,"status":"appointment_booked","created_at":"2021-11-26T02:15:00Z","updated_at":"2021-11-27T03:00:00.5Z","call_id":"out-1@tongdai","fanpage_ref":null,"name":"Nguyễn Văn An","note":"gọi sau 17h"},"entry":{"id":3,"registration_id":12,"status":"done","claimed_by":"vinmec1","lease_until":"2021-11-27T03:15:00Z","prescreen_note":"đau lưng","routed_specialty":1,"appointment_at":"2021-11-29T02:00:00Z","appointment_method":"video","video_reason":"cần xem vết thương","consultation_report":"ổn","enqueued_at":"2021-11-26T02:15:00Z","updated_at":"2021-11-27T03:00:00.5Z","appointment_minutes":30,"consulted_at":"2021-11-29T02:30:00Z","unreachable_count":1}}"#;
const LEGACY_CLAIMED: &str = r#"[{"registration":{"id":13,"msisdn":"+84912345678","group":"two","channel":"fanpage","specialty":null,"status":"registered","created_at":"2021-11-27T01:00:00Z","updated_at":"2021-11-27T01:00:00Z","call_id":null,"fanpage_ref":"msg-77","name":null,"note":""},"entry":{"id":4,"registration_id":13,"status":"waiting","claimed_by":null,"lease_until":null,"prescreen_note":null,"routed_specialty":null,"appointment_at":null,"appointment_method":null,"video_reason":null,"consultation_report":null,"enqueued_at":"2021-11-27T01:00:00Z","updated_at":"2021-11-27T01:00:00Z","appointment_minutes":null,"consulted_at":null,"unreachable_count":0}}]"#;
const LEGACY_INTAKE: &str = r#"[{"id":13,"msisdn":"+84912345678","group":"two","channel":"fanpage","specialty":null,"status":"registered","created_at":"2021-11-27T01:00:00Z","updated_at":"2021-11-27T01:00:00Z","call_id":null,"fanpage_ref":"msg-77","name":null,"note":""},417]"#;
