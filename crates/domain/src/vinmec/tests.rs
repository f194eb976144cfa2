use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

fn item(status: Status, queue: QueueStatus) -> QueueState {
    QueueState {
        status,
        entry: QueueEntry {
            status: queue,
            claimed_by: None,
            lease_until: None,
            prescreen_note: None,
            routed_specialty: None,
            appointment_at: None,
            appointment_minutes: None,
            appointment_method: None,
            video_reason: None,
            consultation_report: None,
            consulted_at: None,
            unreachable_count: 0,
        },
    }
}

fn claimed(mut i: QueueState, by: &str, until: &str) -> QueueState {
    i.entry.status = QueueStatus::Claimed;
    i.entry.claimed_by = Some(by.into());
    i.entry.lease_until = Some(ts(until));
    i
}

const NOW: &str = "2021-11-27T04:00:00Z";
const LEASE: Duration = Duration::from_secs(600);

fn booking() -> Booking {
    Booking {
        at: ts("2021-11-29T02:00:00Z"),
        minutes: 30,
        method: AppointmentMethod::Phone,
        video_reason: None,
    }
}

fn refusal(r: Result<Transition, Refusal>) -> String {
    match r {
        Ok(d) => panic!("expected a refusal, got {d:?}"),
        Err(Refusal::Queue(q)) => format!("{q:?}"),
        Err(Refusal::InvalidTransition { from, to }) => {
            format!("InvalidTransition({from}->{to})")
        }
        Err(e) => panic!("unexpected refusal {e}"),
    }
}

#[test]
fn claim_moves_registered_to_sent_and_takes_the_lease() {
    let d = decide(
        &item(Status::Registered, QueueStatus::Waiting),
        &QueueAction::Claim { lease: LEASE },
        "lan",
        ts(NOW),
    )
    .expect("claims");
    assert_eq!(d.to, Status::SentToVinmec);
    assert_eq!(d.entry.status, QueueStatus::Claimed);
    assert_eq!(d.entry.claimed_by.as_deref(), Some("lan"));
    assert_eq!(d.entry.lease_until, Some(ts("2021-11-27T04:10:00Z")));
    // Unreachable customers are retried through a new claim.
    let d = decide(
        &item(Status::Unreachable, QueueStatus::Waiting),
        &QueueAction::Claim { lease: LEASE },
        "lan",
        ts(NOW),
    )
    .expect("claims");
    assert_eq!(d.to, Status::SentToVinmec);
}

#[test]
fn leases_exclude_others_until_they_run_out() {
    let held = claimed(
        item(Status::SentToVinmec, QueueStatus::Waiting),
        "lan",
        "2021-11-27T04:05:00Z",
    );
    let claim = QueueAction::Claim { lease: LEASE };
    assert!(refusal(decide(&held, &claim, "minh", ts(NOW))).starts_with("LeaseHeld"));
    // The holder claiming again keeps it (and extends it).
    let d = decide(&held, &claim, "lan", ts(NOW)).expect("own claim");
    assert_eq!(d.entry.lease_until, Some(ts("2021-11-27T04:10:00Z")));
    // At the lease's end it is anyone's.
    assert_eq!(
        effective(&held.entry, ts("2021-11-27T04:05:00Z")),
        QueueStatus::Waiting
    );
    let d = decide(&held, &claim, "minh", ts("2021-11-27T04:05:00Z")).expect("expired");
    assert_eq!(d.entry.claimed_by.as_deref(), Some("minh"));
    // The old holder learns that the lease ran out.
    let renew = QueueAction::Renew { lease: LEASE };
    assert!(
        refusal(decide(&held, &renew, "lan", ts("2021-11-27T04:06:00Z")))
            .starts_with("LeaseExpired")
    );
    assert!(
        refusal(decide(&held, &renew, "minh", ts(NOW))).starts_with("LeaseHeld"),
        "renewing someone else's lease"
    );
    let waiting = item(Status::Registered, QueueStatus::Waiting);
    assert!(refusal(decide(&waiting, &renew, "lan", ts(NOW))).starts_with("LeaseNotHeld"));
}

#[test]
fn booking_needs_lease_and_prescreen_and_ends_the_claim() {
    let held = claimed(
        item(Status::SentToVinmec, QueueStatus::Waiting),
        "lan",
        "2021-11-27T04:05:00Z",
    );
    let book = QueueAction::Book(booking());
    assert_eq!(
        refusal(decide(&held, &book, "lan", ts(NOW))),
        "PrescreenRequired"
    );
    let pre = decide(
        &held,
        &QueueAction::Prescreen {
            need: "đau lưng".into(),
            routed_specialty: 4,
        },
        "lan",
        ts(NOW),
    )
    .expect("prescreen");
    assert_eq!(pre.to, Status::SentToVinmec);
    let mut screened = held.clone();
    screened.entry = pre.entry;
    let d = decide(&screened, &book, "lan", ts(NOW)).expect("books");
    assert_eq!(d.to, Status::AppointmentBooked);
    assert_eq!(d.entry.status, QueueStatus::Done);
    assert_eq!(d.entry.claimed_by, None);
    assert_eq!(d.entry.appointment_minutes, Some(30));
    // Rescheduling a booked entry needs no lease and changes no status.
    let mut booked = screened.clone();
    booked.status = Status::AppointmentBooked;
    booked.entry = d.entry;
    let d = decide(&booked, &book, "minh", ts(NOW)).expect("reschedules");
    assert_eq!(d.to, Status::AppointmentBooked);
    // Booking without a claim.
    let waiting = item(Status::SentToVinmec, QueueStatus::Waiting);
    assert!(refusal(decide(&waiting, &book, "lan", ts(NOW))).starts_with("LeaseNotHeld"));
}

#[test]
fn each_action_refused_in_the_wrong_state() {
    let now = ts(NOW);
    let consulted = QueueAction::Consulted {
        report: "ổn".into(),
    };
    // No consulting before booking.
    let held = claimed(
        item(Status::SentToVinmec, QueueStatus::Waiting),
        "lan",
        "2021-11-27T05:00:00Z",
    );
    assert_eq!(
        refusal(decide(&held, &consulted, "lan", now)),
        "InvalidTransition(sent_to_vinmec->consulted)"
    );
    // Consulting a booked entry works once.
    let booked = item(Status::AppointmentBooked, QueueStatus::Done);
    let d = decide(&booked, &consulted, "bs-hoa", now).expect("consulted");
    assert_eq!(d.to, Status::Consulted);
    let done = item(Status::Consulted, QueueStatus::Done);
    assert!(refusal(decide(&done, &consulted, "bs-hoa", now)).starts_with("InvalidTransition"));
    // No booking, claiming or cancelling a cancelled registration.
    let cancelled = item(Status::Cancelled, QueueStatus::Cancelled);
    for action in [
        QueueAction::Claim { lease: LEASE },
        QueueAction::Book(booking()),
        QueueAction::Cancel { reason: "x".into() },
    ] {
        let r = refusal(decide(&cancelled, &action, "lan", now));
        assert!(
            r.starts_with("WrongState")
                || r.starts_with("InvalidTransition")
                || r.starts_with("LeaseNotHeld"),
            "{action:?}: {r}"
        );
    }
    // A consulted customer cannot be cancelled; a booked one can.
    assert!(
        refusal(decide(
            &done,
            &QueueAction::Cancel { reason: "x".into() },
            "lan",
            now
        ))
        .starts_with("InvalidTransition")
    );
    let d = decide(
        &booked,
        &QueueAction::Cancel {
            reason: "đổi ý".into(),
        },
        "lan",
        now,
    )
    .expect("cancel");
    assert_eq!(
        (d.to, d.entry.status),
        (Status::Cancelled, QueueStatus::Cancelled)
    );
    // Not while another scheduler is on the phone with the customer.
    assert!(
        refusal(decide(
            &held,
            &QueueAction::Cancel { reason: "x".into() },
            "minh",
            now
        ))
        .starts_with("LeaseHeld")
    );
    // A missed appointment: booked → unreachable without a lease, back to waiting.
    let d = decide(
        &booked,
        &QueueAction::Unreachable {
            note: "không nghe máy".into(),
        },
        "lan",
        now,
    )
    .expect("missed");
    assert_eq!(
        (d.to, d.entry.status),
        (Status::Unreachable, QueueStatus::Waiting)
    );
    assert_eq!(d.entry.unreachable_count, 1);
    // A first call needs the lease.
    let waiting = item(Status::SentToVinmec, QueueStatus::Waiting);
    assert!(
        refusal(decide(
            &waiting,
            &QueueAction::Unreachable {
                note: String::new()
            },
            "lan",
            now
        ))
        .starts_with("LeaseNotHeld")
    );
    // Prescreening a booked registration is not a thing.
    let booked_held = claimed(booked.clone(), "lan", "2021-11-27T05:00:00Z");
    assert!(
        refusal(decide(
            &booked_held,
            &QueueAction::Prescreen {
                need: "x".into(),
                routed_specialty: 1
            },
            "lan",
            now
        ))
        .starts_with("WrongState")
    );
    // Done entries are not claimable.
    assert!(
        refusal(decide(
            &booked,
            &QueueAction::Claim { lease: LEASE },
            "lan",
            now
        ))
        .starts_with("WrongState")
    );
}

/// The states a queue entry is found in, as scheduler "lan" sees them at `NOW`.
fn states() -> Vec<(&'static str, QueueState)> {
    let sent = || item(Status::SentToVinmec, QueueStatus::Waiting);
    let mut screened = claimed(sent(), "lan", "2021-11-27T04:05:00Z");
    screened.entry.prescreen_note = Some("đau đầu".into());
    screened.entry.routed_specialty = Some(1);
    let mut unreachable = item(Status::Unreachable, QueueStatus::Waiting);
    unreachable.entry.unreachable_count = 1;
    vec![
        ("registered", item(Status::Registered, QueueStatus::Waiting)),
        ("released", sent()),
        ("unreachable", unreachable),
        ("mine", claimed(sent(), "lan", "2021-11-27T04:05:00Z")),
        ("mine_screened", screened),
        ("theirs", claimed(sent(), "minh", "2021-11-27T04:05:00Z")),
        (
            "mine_lapsed",
            claimed(sent(), "lan", "2021-11-27T03:55:00Z"),
        ),
        (
            "theirs_lapsed",
            claimed(sent(), "minh", "2021-11-27T03:55:00Z"),
        ),
        ("booked", item(Status::AppointmentBooked, QueueStatus::Done)),
        ("consulted", item(Status::Consulted, QueueStatus::Done)),
        ("surveyed", item(Status::Surveyed, QueueStatus::Done)),
        ("cancelled", item(Status::Cancelled, QueueStatus::Cancelled)),
    ]
}

/// `"<registration status> <queue status>"` when allowed, else the refusal's name.
fn outcome(r: Result<Transition, Refusal>) -> String {
    match r {
        Ok(t) => format!("{} {}", t.to, t.entry.status),
        Err(Refusal::Queue(q)) => {
            let s = format!("{q:?}");
            s.split([' ', '{']).next().unwrap_or_default().to_owned()
        }
        Err(Refusal::InvalidTransition { from, to }) => format!("InvalidTransition({from}->{to})"),
        Err(e) => panic!("unexpected refusal {e}"),
    }
}

#[test]
fn every_action_in_every_state() {
    // One row per action, one column per state of `states()`, in that order.
    const SENT_CLAIMED: &str = "sent_to_vinmec claimed";
    const NOT_HELD: &str = "LeaseNotHeld";
    #[rustfmt::skip]
    let table: [(QueueAction, [&str; 12]); 8] = [
        //                         registered    released      unreachable   mine          mine_screened theirs        mine_lapsed     theirs_lapsed booked                    consulted     surveyed      cancelled
        (QueueAction::Claim { lease: LEASE },
                                  [SENT_CLAIMED, SENT_CLAIMED, SENT_CLAIMED, SENT_CLAIMED, SENT_CLAIMED, "LeaseHeld", SENT_CLAIMED,   SENT_CLAIMED, "WrongState",             "WrongState", "WrongState", "WrongState"]),
        (QueueAction::Renew { lease: LEASE },
                                  [NOT_HELD,     NOT_HELD,     NOT_HELD,     SENT_CLAIMED, SENT_CLAIMED, "LeaseHeld", "LeaseExpired", NOT_HELD,     NOT_HELD,                 NOT_HELD,     NOT_HELD,     NOT_HELD]),
        (QueueAction::Release,
                                  [NOT_HELD,     NOT_HELD,     NOT_HELD,     "sent_to_vinmec waiting", "sent_to_vinmec waiting", "LeaseHeld", "LeaseExpired", NOT_HELD, NOT_HELD, NOT_HELD, NOT_HELD, NOT_HELD]),
        (QueueAction::Prescreen { need: "ho".into(), routed_specialty: 2 },
                                  [NOT_HELD,     NOT_HELD,     NOT_HELD,     SENT_CLAIMED, SENT_CLAIMED, "LeaseHeld", "LeaseExpired", NOT_HELD,     NOT_HELD,                 NOT_HELD,     NOT_HELD,     NOT_HELD]),
        (QueueAction::Book(booking()),
                                  [NOT_HELD,     NOT_HELD,     NOT_HELD,     "PrescreenRequired", "appointment_booked done", "LeaseHeld", "LeaseExpired", NOT_HELD, "appointment_booked done", NOT_HELD, NOT_HELD, NOT_HELD]),
        (QueueAction::Unreachable { note: "tắt máy".into() },
                                  [NOT_HELD,     NOT_HELD,     NOT_HELD,     "unreachable waiting", "unreachable waiting", "LeaseHeld", "LeaseExpired", NOT_HELD, "unreachable waiting", NOT_HELD, NOT_HELD, NOT_HELD]),
        (QueueAction::Consulted { report: "ổn".into() },
                                  ["InvalidTransition(registered->consulted)", "InvalidTransition(sent_to_vinmec->consulted)",
                                   "InvalidTransition(unreachable->consulted)", "InvalidTransition(sent_to_vinmec->consulted)",
                                   "InvalidTransition(sent_to_vinmec->consulted)", "InvalidTransition(sent_to_vinmec->consulted)",
                                   "InvalidTransition(sent_to_vinmec->consulted)", "InvalidTransition(sent_to_vinmec->consulted)",
                                   "consulted done", "InvalidTransition(consulted->consulted)",
                                   "InvalidTransition(surveyed->consulted)", "InvalidTransition(cancelled->consulted)"]),
        (QueueAction::Cancel { reason: "đổi ý".into() },
                                  ["cancelled cancelled", "cancelled cancelled", "cancelled cancelled", "cancelled cancelled",
                                   "cancelled cancelled", "LeaseHeld", "cancelled cancelled", "cancelled cancelled",
                                   "cancelled cancelled", "InvalidTransition(consulted->cancelled)",
                                   "InvalidTransition(surveyed->cancelled)", "InvalidTransition(cancelled->cancelled)"]),
    ];
    let states = states();
    let mut wrong = Vec::new();
    for (action, row) in &table {
        for ((name, state), want) in states.iter().zip(row) {
            let got = outcome(decide(state, action, "lan", ts(NOW)));
            if got != *want {
                wrong.push(format!(
                    "{} on {name}: got {got}, want {want}",
                    action.name()
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn refusals_name_the_action_and_the_lease() {
    let now = ts(NOW);
    let theirs = claimed(
        item(Status::SentToVinmec, QueueStatus::Waiting),
        "minh",
        "2021-11-27T04:05:00Z",
    );
    assert_eq!(
        decide(&theirs, &QueueAction::Release, "lan", now),
        Err(Refusal::Queue(QueueRefusal::LeaseHeld {
            holder: "minh".into(),
            until: ts("2021-11-27T04:05:00Z"),
        }))
    );
    let lapsed = claimed(
        item(Status::SentToVinmec, QueueStatus::Waiting),
        "lan",
        "2021-11-27T03:55:00Z",
    );
    assert_eq!(
        decide(&lapsed, &QueueAction::Release, "lan", now),
        Err(Refusal::Queue(QueueRefusal::LeaseExpired {
            until: ts("2021-11-27T03:55:00Z"),
        }))
    );
    assert_eq!(
        decide(
            &item(Status::Registered, QueueStatus::Waiting),
            &QueueAction::Prescreen {
                need: "x".into(),
                routed_specialty: 1
            },
            "lan",
            now
        ),
        Err(Refusal::Queue(QueueRefusal::LeaseNotHeld {
            action: "prescreen"
        }))
    );
    assert_eq!(
        decide(
            &item(Status::Consulted, QueueStatus::Done),
            &QueueAction::Claim { lease: LEASE },
            "lan",
            now
        ),
        Err(Refusal::Queue(QueueRefusal::WrongState {
            action: "claim",
            status: Status::Consulted,
            queue: QueueStatus::Done,
        }))
    );
    // A lease past the end of time is a bad request, not a panic.
    assert!(matches!(
        decide(
            &item(Status::Registered, QueueStatus::Waiting),
            &QueueAction::Claim {
                lease: Duration::MAX
            },
            "lan",
            now
        ),
        Err(Refusal::InvalidLease(_))
    ));
}

#[test]
fn a_lease_is_live_until_its_end_exactly() {
    let held = claimed(
        item(Status::SentToVinmec, QueueStatus::Waiting),
        "lan",
        "2021-11-27T04:05:00Z",
    );
    let end = ts("2021-11-27T04:05:00Z");
    let before = end - SignedDuration::from_micros(1);
    assert_eq!(effective(&held.entry, before), QueueStatus::Claimed);
    assert_eq!(effective(&held.entry, end), QueueStatus::Waiting);
    // A claimed entry without an end (a hand-edited row) is nobody's.
    let mut open = held.clone();
    open.entry.lease_until = None;
    assert_eq!(effective(&open.entry, before), QueueStatus::Waiting);
    // Other states do not depend on the time.
    for s in [
        QueueStatus::Waiting,
        QueueStatus::Done,
        QueueStatus::Cancelled,
    ] {
        assert_eq!(effective_status(s, Some(end), before), s);
    }
    // Someone else may take it the instant it ends; its holder may not renew it then.
    let claim = QueueAction::Claim { lease: LEASE };
    assert!(refusal(decide(&held, &claim, "minh", before)).starts_with("LeaseHeld"));
    let t = decide(&held, &claim, "minh", end).expect("lapsed");
    assert_eq!(t.entry.lease_until, Some(ts("2021-11-27T04:15:00Z")));
    assert!(
        refusal(decide(
            &held,
            &QueueAction::Renew { lease: LEASE },
            "lan",
            end
        ))
        .starts_with("LeaseExpired")
    );
}

#[test]
fn what_each_action_writes() {
    let now = ts(NOW);
    let held = claimed(
        item(Status::SentToVinmec, QueueStatus::Waiting),
        "lan",
        "2021-11-27T04:05:00Z",
    );
    // Renewing moves only the lease's end; the event says where to.
    let t = decide(&held, &QueueAction::Renew { lease: LEASE }, "lan", now).expect("renew");
    assert_eq!(t.to, Status::SentToVinmec);
    assert_eq!(
        t.entry,
        QueueEntry {
            lease_until: Some(ts("2021-11-27T04:10:00Z")),
            ..held.entry.clone()
        }
    );
    assert_eq!(
        t.event,
        QueueEvent {
            action: "renew",
            actor: "vinmec:lan".into(),
            detail: EventDetail::LeaseUntil(Some(ts("2021-11-27T04:10:00Z"))),
        }
    );
    // Releasing gives the entry back to everyone.
    let t = decide(&held, &QueueAction::Release, "lan", now).expect("release");
    assert_eq!(
        (t.entry.status, t.entry.claimed_by, t.entry.lease_until),
        (QueueStatus::Waiting, None, None)
    );
    assert_eq!(t.event.detail, EventDetail::None);
    // Prescreening records the need and the specialty; the event only the specialty.
    let t = decide(
        &held,
        &QueueAction::Prescreen {
            need: "đau lưng".into(),
            routed_specialty: 4,
        },
        "lan",
        now,
    )
    .expect("prescreen");
    assert_eq!(t.entry.prescreen_note.as_deref(), Some("đau lưng"));
    assert_eq!(t.entry.routed_specialty, Some(4));
    assert_eq!(t.entry.claimed_by.as_deref(), Some("lan"), "still held");
    assert_eq!(t.event.detail, EventDetail::RoutedSpecialty(4));
    // A video booking keeps its reason; the event carries the appointment.
    let mut screened = held.clone();
    screened.entry = t.entry;
    let video = Booking {
        method: AppointmentMethod::Video,
        video_reason: Some("cần xem vết thương".into()),
        ..booking()
    };
    let t = decide(&screened, &QueueAction::Book(video.clone()), "lan", now).expect("book");
    assert_eq!(t.entry.appointment_at, Some(video.at));
    assert_eq!(t.entry.appointment_method, Some(AppointmentMethod::Video));
    assert_eq!(t.entry.video_reason, video.video_reason);
    assert_eq!(
        t.event.detail,
        EventDetail::Booked {
            at: video.at,
            minutes: 30,
            method: AppointmentMethod::Video
        }
    );
    // A reschedule by phone drops the video reason.
    let mut booked = screened.clone();
    booked.status = Status::AppointmentBooked;
    booked.entry = t.entry;
    let t = decide(&booked, &QueueAction::Book(booking()), "minh", now).expect("reschedule");
    assert_eq!(t.entry.video_reason, None);
    assert_eq!(t.entry.appointment_method, Some(AppointmentMethod::Phone));
    // The consultation's report stays on the entry, never in the history.
    let t = decide(
        &booked,
        &QueueAction::Consulted {
            report: "viêm họng".into(),
        },
        "bs-hoa",
        now,
    )
    .expect("consulted");
    assert_eq!(t.entry.consultation_report.as_deref(), Some("viêm họng"));
    assert_eq!(t.entry.consulted_at, Some(now));
    assert_eq!(t.event.detail, EventDetail::None);
    assert_eq!(t.event.actor, "vinmec:bs-hoa");
    // Unreachable and cancel keep the scheduler's words in the history.
    let t = decide(
        &held,
        &QueueAction::Unreachable {
            note: "tắt máy".into(),
        },
        "lan",
        now,
    )
    .expect("unreachable");
    assert_eq!(t.event.detail, EventDetail::Note("tắt máy".into()));
    let t = decide(
        &held,
        &QueueAction::Cancel {
            reason: "đổi ý".into(),
        },
        "lan",
        now,
    )
    .expect("cancel");
    assert_eq!(t.event.detail, EventDetail::Note("đổi ý".into()));
    assert_eq!(t.event.action, "cancel");
}
