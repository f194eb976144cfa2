use std::time::Duration;

use jiff::Timestamp;

use super::*;
use crate::dialer::retry::MAX_UNCHARGED_RETRIES;
use crate::dialer::{
    CallOutcome, CampaignKind, CampaignPolicy, CampaignState, Disposition, DoneReason,
    RetryDecision,
};
use crate::program::{Plan, ProgramConfig, Status, Subscriber};

fn contact(charged: u32, uncharged: u32) -> ContactTally {
    ContactTally {
        state: ContactState::Dialing,
        done_reason: None,
        dials: charged + uncharged + 1,
        attempts_charged: charged,
        uncharged,
    }
}

fn attempt() -> AttemptFacts {
    AttemptFacts {
        attempt_no: 1,
        status: AttemptStatus::Dialing,
        started_at: Some(at("2021-11-29T02:59:00Z")),
        answered_at: None,
        disposition: None,
        outcome: None,
        call_later: None,
        charged: false,
    }
}

fn at(s: &str) -> Timestamp {
    s.parse().expect("timestamp")
}

/// Local Hanoi time (UTC+7) on a day of November 2021 as an instant.
fn vn(day: i8, h: i8, mi: i8) -> Timestamp {
    jiff::tz::TimeZone::fixed(jiff::tz::offset(7))
        .to_timestamp(jiff::civil::date(2021, 11, day).at(h, mi, 0, 0))
        .expect("valid")
}

fn retry(t: Timestamp) -> RetryDecision {
    RetryDecision::Retry { not_before: t }
}

fn done(reason: DoneReason) -> RetryDecision {
    RetryDecision::Done { reason }
}

#[test]
fn throttled_and_canceled_finals_are_not_charged() {
    let p = CampaignPolicy::default();
    // 2021-11-29 10:00 in Hanoi.
    let t = at("2021-11-29T03:00:00Z");
    let mut busy = AttemptEnd::from_sip(486, false, t);
    assert!(charge(&contact(0, 0), &busy, None, &p).charged);
    busy.throttled = true;
    let Charge {
        decision: d,
        charged,
    } = charge(&contact(0, 0), &busy, None, &p);
    assert!(!charged);
    assert_eq!(
        d,
        RetryDecision::Retry {
            not_before: at("2021-11-29T03:02:00Z")
        }
    );
    // Out of uncharged retries: charged after all.
    assert!(charge(&contact(0, MAX_UNCHARGED_RETRIES), &busy, None, &p).charged);
    let cancel = AttemptEnd::from_sip(487, false, t);
    assert!(!charge(&contact(2, 0), &cancel, None, &p).charged);
    // 603 and opt-out end the contact whatever the count.
    let Charge { decision: d, .. } = charge(
        &contact(0, 0),
        &AttemptEnd::from_sip(603, false, t),
        None,
        &p,
    );
    assert_eq!(
        d,
        RetryDecision::Done {
            reason: DoneReason::Rejected
        }
    );
    let Charge {
        decision: d,
        charged,
    } = charge(
        &contact(0, 0),
        &AttemptEnd::answered(t, t),
        Some(CallOutcome::OptOut),
        &p,
    );
    assert!(charged);
    assert_eq!(
        d,
        RetryDecision::Done {
            reason: DoneReason::OptedOut
        }
    );
}

#[test]
fn call_later_tomorrow_is_the_next_local_day() {
    let p = CampaignPolicy::default();
    // 23:30 on the 29th in Hanoi is 16:30Z: tomorrow = the 30th, whose local
    // midnight is 17:00Z on the 29th.
    let got = call_later_at(
        Some(CallLaterRequest::Tomorrow),
        at("2021-11-29T16:30:00Z"),
        &p,
    );
    assert_eq!(got, Some(at("2021-11-29T17:00:00Z")));
    let got = call_later_at(
        Some(CallLaterRequest::After(std::time::Duration::from_secs(
            7200,
        ))),
        at("2021-11-29T03:00:00Z"),
        &p,
    );
    assert_eq!(got, Some(at("2021-11-29T05:00:00Z")));
    assert_eq!(call_later_at(None, at("2021-11-29T03:00:00Z"), &p), None);
}

#[test]
fn call_later_requests() {
    assert_eq!(CallLaterRequest::parse_var(""), Ok(None));
    assert_eq!(
        CallLaterRequest::parse_var("2h"),
        Ok(Some(CallLaterRequest::After(Duration::from_secs(7200))))
    );
    assert_eq!(
        CallLaterRequest::parse_var("Tomorrow"),
        Ok(Some(CallLaterRequest::Tomorrow))
    );
    assert!(CallLaterRequest::parse_var("soon").is_err());
    assert!(CallLaterRequest::parse_var("30d").is_err());
}

/// A finished attempt of a fresh contact on Monday 29 November, 10:00 in Hanoi.
fn finish_plain(end: &AttemptEnd) -> Finish {
    finish(
        CampaignKind::Invitation,
        &CampaignPolicy::default(),
        &contact(0, 0),
        &attempt(),
        false,
        end,
    )
}

#[test]
fn each_final_retries_after_its_delay_or_ends_the_contact() {
    let t = vn(29, 10, 0);
    let ring_timeout = AttemptEnd::from_sip(487, true, t);
    #[rustfmt::skip]
    let cases = [
        ("486 busy", AttemptEnd::from_sip(486, false, t), retry(vn(29, 10, 10))),
        ("600 busy", AttemptEnd::from_sip(600, false, t), retry(vn(29, 10, 10))),
        ("480 no answer", AttemptEnd::from_sip(480, false, t), retry(vn(29, 12, 0))),
        ("our ring timeout", ring_timeout, retry(vn(29, 12, 0))),
        ("503 congested", AttemptEnd::from_sip(503, false, t), retry(vn(29, 10, 5))),
        ("403 failed", AttemptEnd::from_sip(403, false, t), retry(vn(29, 10, 30))),
        ("603 rejected", AttemptEnd::from_sip(603, false, t), done(DoneReason::Rejected)),
        ("404 invalid", AttemptEnd::from_sip(404, false, t), done(DoneReason::InvalidNumber)),
        ("484 invalid", AttemptEnd::from_sip(484, false, t), done(DoneReason::InvalidNumber)),
        // Answered without an outcome: the flow did not finish, call again later.
        ("answered", AttemptEnd::answered(t, t), retry(vn(29, 11, 0))),
    ];
    for (what, end, want) in cases {
        let f = finish_plain(&end);
        assert_eq!(f.decision, want, "{what}");
        assert!(f.charged, "{what} is charged");
        assert_eq!((f.attempts_charged, f.uncharged), (1, 0), "{what}");
        assert_eq!(f.contact, ContactUpdate::from(want), "{what}");
        assert!(!f.do_not_call, "{what}");
    }
    // Our own CANCEL (campaign stopped, shutting down) is not the subscriber's doing.
    let f = finish_plain(&AttemptEnd::from_sip(487, false, t));
    assert_eq!(f.decision, retry(vn(29, 10, 2)));
    assert!(!f.charged);
    assert_eq!((f.attempts_charged, f.uncharged), (0, 1));
}

#[test]
fn the_flow_outcome_decides_an_answered_call() {
    let t = vn(29, 10, 0);
    let end = AttemptEnd::answered(vn(29, 9, 58), t);
    let completed = done(DoneReason::Completed);
    let cases = [
        (FlowOutcome::Registered, None, completed),
        (FlowOutcome::NotInterested, None, completed),
        (FlowOutcome::AlreadyRegistered, None, completed),
        (FlowOutcome::NotEligible, None, completed),
        (FlowOutcome::CapFull, None, completed),
        (FlowOutcome::RegistrationClosed, None, completed),
        (FlowOutcome::SurveyCompleted, None, completed),
        (FlowOutcome::SurveyPartial, None, retry(vn(29, 11, 0))),
        (FlowOutcome::CallLater, None, retry(vn(29, 11, 0))),
        (
            FlowOutcome::CallLater,
            Some(CallLaterRequest::After(Duration::from_secs(2 * 3600))),
            retry(vn(29, 12, 0)),
        ),
        // Tomorrow is local midnight, moved to the first window of the 30th.
        (
            FlowOutcome::CallLater,
            Some(CallLaterRequest::Tomorrow),
            retry(vn(30, 8, 0)),
        ),
        (FlowOutcome::OptedOut, None, done(DoneReason::OptedOut)),
    ];
    for (outcome, call_later, want) in cases {
        let a = AttemptFacts {
            outcome: Some(outcome),
            call_later,
            answered_at: end.answered_at,
            ..attempt()
        };
        let f = finish(
            CampaignKind::Invitation,
            &CampaignPolicy::default(),
            &contact(0, 0),
            &a,
            false,
            &end,
        );
        assert_eq!(f.decision, want, "{outcome} {call_later:?}");
        assert_eq!(f.outcome, Some(outcome));
        assert!(f.charged);
        assert_eq!(f.do_not_call, outcome == FlowOutcome::OptedOut, "{outcome}");
    }
}

#[test]
fn call_later_outside_the_window_moves_to_the_next_window() {
    let p = CampaignPolicy::default();
    let t = vn(29, 10, 0);
    let end = AttemptEnd::answered(t, t);
    // "In 11 hours" is 21:00, after the 20:00 close: the next morning at 08:00.
    let a = AttemptFacts {
        outcome: Some(FlowOutcome::CallLater),
        call_later: Some(CallLaterRequest::After(Duration::from_secs(11 * 3600))),
        ..attempt()
    };
    let f = finish(
        CampaignKind::Invitation,
        &p,
        &contact(0, 0),
        &a,
        false,
        &end,
    );
    assert_eq!(f.decision, retry(vn(30, 8, 0)));
    assert_eq!(f.contact.not_before, Some(vn(30, 8, 0)));
    assert_eq!(f.contact.state, ContactState::Waiting);
    // "In 30 minutes" at 19:45 is 20:15: the same.
    let late = AttemptEnd::answered(vn(29, 19, 44), vn(29, 19, 45));
    let a = AttemptFacts {
        call_later: Some(CallLaterRequest::After(Duration::from_secs(30 * 60))),
        ..a
    };
    let f = finish(
        CampaignKind::Invitation,
        &p,
        &contact(0, 0),
        &a,
        false,
        &late,
    );
    assert_eq!(f.decision, retry(vn(30, 8, 0)));
}

#[test]
fn a_survey_with_answers_but_no_completion_is_partial() {
    let p = CampaignPolicy::default();
    let t = vn(29, 10, 0);
    let end = AttemptEnd::answered(t, t);
    let f = finish(
        CampaignKind::Survey,
        &p,
        &contact(0, 0),
        &attempt(),
        true,
        &end,
    );
    assert_eq!(f.outcome, Some(FlowOutcome::SurveyPartial));
    assert_eq!(f.decision, retry(vn(29, 11, 0)));
    // No answers: nothing to say about the flow.
    let f = finish(
        CampaignKind::Survey,
        &p,
        &contact(0, 0),
        &attempt(),
        false,
        &end,
    );
    assert_eq!(f.outcome, None);
    // A recorded outcome stands.
    let a = AttemptFacts {
        outcome: Some(FlowOutcome::SurveyCompleted),
        ..attempt()
    };
    let f = finish(CampaignKind::Survey, &p, &contact(0, 0), &a, true, &end);
    assert_eq!(f.outcome, Some(FlowOutcome::SurveyCompleted));
    assert_eq!(f.decision, done(DoneReason::Completed));
    // Invitations have no survey answers to infer from.
    let f = finish(
        CampaignKind::Invitation,
        &p,
        &contact(0, 0),
        &attempt(),
        true,
        &end,
    );
    assert_eq!(f.outcome, None);
}

#[test]
fn an_uncharged_retry_after_a_throttling_burst_does_not_count_an_attempt() {
    let p = CampaignPolicy::default();
    let t = vn(29, 10, 0);
    let throttled = |code| AttemptEnd {
        throttled: true,
        ..AttemptEnd::from_sip(code, false, t)
    };
    for code in [486, 600, 503, 500] {
        let f = finish(
            CampaignKind::Invitation,
            &p,
            &contact(1, 2),
            &attempt(),
            false,
            &throttled(code),
        );
        assert!(!f.charged, "{code}");
        assert_eq!((f.attempts_charged, f.uncharged), (1, 3), "{code}");
        assert_eq!(f.decision, retry(vn(29, 10, 2)), "{code}");
    }
    // Throttling says nothing about a subscriber who did not answer or a bad number.
    for code in [480, 404, 603, 403] {
        let f = finish(
            CampaignKind::Invitation,
            &p,
            &contact(1, 2),
            &attempt(),
            false,
            &throttled(code),
        );
        assert!(f.charged, "{code}");
        assert_eq!((f.attempts_charged, f.uncharged), (2, 2), "{code}");
    }
    // Even at the attempt limit, an uncharged retry is a retry.
    let f = finish(
        CampaignKind::Invitation,
        &p,
        &contact(3, 0),
        &attempt(),
        false,
        &throttled(486),
    );
    assert_eq!(f.decision, retry(vn(29, 10, 2)));
    // An opt-out on a call we cancelled is still an opt-out.
    let a = AttemptFacts {
        outcome: Some(FlowOutcome::OptedOut),
        ..attempt()
    };
    let f = finish(
        CampaignKind::Invitation,
        &p,
        &contact(0, 0),
        &a,
        false,
        &AttemptEnd::from_sip(487, false, t),
    );
    assert!(f.charged);
    assert!(f.do_not_call);
    assert_eq!(f.decision, done(DoneReason::OptedOut));
    // Our own CANCEL past the allowance counts as a failure.
    let f = finish(
        CampaignKind::Invitation,
        &p,
        &contact(0, MAX_UNCHARGED_RETRIES),
        &attempt(),
        false,
        &AttemptEnd::from_sip(487, false, t),
    );
    assert!(f.charged);
    assert_eq!(f.decision, retry(vn(29, 10, 30)));
}

#[test]
fn max_attempts_ends_the_contact() {
    let p = CampaignPolicy::default();
    assert_eq!(p.max_attempts, 3);
    let t = vn(29, 10, 0);
    let busy = AttemptEnd::from_sip(486, false, t);
    let f = finish(
        CampaignKind::Invitation,
        &p,
        &contact(1, 0),
        &attempt(),
        false,
        &busy,
    );
    assert_eq!(f.decision, retry(vn(29, 10, 10)));
    assert_eq!(f.attempts_charged, 2);
    let f = finish(
        CampaignKind::Invitation,
        &p,
        &contact(2, 5),
        &attempt(),
        false,
        &busy,
    );
    assert_eq!(f.decision, done(DoneReason::MaxAttempts));
    assert_eq!(f.attempts_charged, 3);
    assert_eq!(
        f.contact,
        ContactUpdate {
            state: ContactState::Done,
            not_before: None,
            done_reason: Some(ContactEnd::MaxAttempts),
        }
    );
}

#[test]
fn refunds_only_the_latest_charged_pressure_final_of_a_live_campaign() {
    let p = CampaignPolicy::default();
    let now = vn(29, 10, 0);
    let a = AttemptFacts {
        attempt_no: 2,
        status: AttemptStatus::Finished,
        disposition: Some(Disposition::Busy),
        charged: true,
        ..attempt()
    };
    let c = ContactTally {
        state: ContactState::Waiting,
        done_reason: None,
        dials: 2,
        attempts_charged: 2,
        uncharged: 0,
    };
    let yes = Some(retry(vn(29, 10, 2)));
    #[rustfmt::skip]
    let cases: [(&str, AttemptFacts, ContactTally, CampaignState, Option<RetryDecision>); 15] = [
        ("busy, waiting, running", a, c, CampaignState::Running, yes),
        ("paused", a, c, CampaignState::Paused, yes),
        ("congested", AttemptFacts { disposition: Some(Disposition::Congested), ..a }, c, CampaignState::Running, yes),
        ("done for max attempts", a, ContactTally { state: ContactState::Done, done_reason: Some(ContactEnd::MaxAttempts), ..c }, CampaignState::Running, yes),
        ("done otherwise", a, ContactTally { state: ContactState::Done, done_reason: Some(ContactEnd::Completed), ..c }, CampaignState::Running, None),
        ("dialing again", a, ContactTally { state: ContactState::Dialing, ..c }, CampaignState::Running, None),
        ("not the latest attempt", a, ContactTally { dials: 3, ..c }, CampaignState::Running, None),
        ("not charged", AttemptFacts { charged: false, ..a }, c, CampaignState::Running, None),
        ("still dialing", AttemptFacts { status: AttemptStatus::Dialing, ..a }, c, CampaignState::Running, None),
        ("released", AttemptFacts { status: AttemptStatus::Released, ..a }, c, CampaignState::Running, None),
        ("no answer", AttemptFacts { disposition: Some(Disposition::NoAnswer), ..a }, c, CampaignState::Running, None),
        ("no disposition", AttemptFacts { disposition: None, ..a }, c, CampaignState::Running, None),
        ("nothing charged", a, ContactTally { attempts_charged: 0, ..c }, CampaignState::Running, None),
        ("allowance used", a, ContactTally { uncharged: MAX_UNCHARGED_RETRIES, ..c }, CampaignState::Running, None),
        ("stopped", a, c, CampaignState::Stopped, None),
    ];
    for (what, a, c, state, want) in cases {
        assert_eq!(refund(&a, &c, state, now, &p), want, "{what}");
    }
    for state in [CampaignState::Draft, CampaignState::Completed] {
        assert_eq!(refund(&a, &c, state, now, &p), None, "{state}");
    }
}

#[test]
fn recovery_never_dials_again() {
    let now = vn(29, 12, 0);
    let t = vn(29, 10, 0);
    let record = |answered_at, final_status, disposition, end_reason| RecordedCall {
        answered_at,
        ended_at: Some(t),
        final_status,
        disposition,
        end_reason,
    };
    let finish_as = |disposition, resolution| (disposition, resolution);
    let plan = |r: Recovery| match r {
        Recovery::Finish { end, resolution } => Some((end.disposition, resolution)),
        Recovery::Release => None,
    };
    use Resolution::*;
    // A call record holds the final.
    let cases = [
        (
            record(Some(t), Some(200), Disposition::Answered, ""),
            Disposition::Answered,
        ),
        (
            record(None, Some(486), Disposition::Busy, ""),
            Disposition::Busy,
        ),
        // Our ring timeout's 487 is a no-answer; another 487 is our own cancel.
        (
            record(None, Some(487), Disposition::NoAnswer, ""),
            Disposition::NoAnswer,
        ),
        (
            record(None, Some(487), Disposition::Canceled, ""),
            Disposition::Canceled,
        ),
        // No final at all: the record's disposition.
        (
            record(None, None, Disposition::Failed, ""),
            Disposition::Failed,
        ),
    ];
    for (rec, want) in cases {
        assert_eq!(
            plan(recover(&attempt(), Some(&rec), false, now)),
            Some(finish_as(want, RecoveredRecord)),
            "{rec:?}"
        );
    }
    let rec = RecordedCall {
        ended_at: None,
        ..record(None, Some(486), Disposition::Busy, "Q.850;cause=17")
    };
    let Recovery::Finish { end, .. } = recover(&attempt(), Some(&rec), false, now) else {
        panic!("finished");
    };
    assert_eq!(end.ended_at, now, "no end recorded: now");
    assert_eq!(end.reason.as_deref(), Some("Q.850;cause=17"));
    assert_eq!(end.sip_code, Some(486));
    // No record: what the attempt itself says.
    let answered = AttemptFacts {
        answered_at: Some(t),
        ..attempt()
    };
    let with_outcome = AttemptFacts {
        outcome: Some(FlowOutcome::Registered),
        ..attempt()
    };
    let never_sent = AttemptFacts {
        started_at: None,
        ..attempt()
    };
    let cases = [
        (
            with_outcome,
            false,
            Some(finish_as(Disposition::Answered, RecoveredOutcome)),
        ),
        (
            attempt(),
            true,
            Some(finish_as(Disposition::Answered, RecoveredOutcome)),
        ),
        (
            answered,
            false,
            Some(finish_as(Disposition::Answered, RecoveredAmbiguous)),
        ),
        (
            attempt(),
            false,
            Some(finish_as(Disposition::Failed, RecoveredAmbiguous)),
        ),
        (never_sent, false, None),
    ];
    for (a, has_answers, want) in cases {
        assert_eq!(
            plan(recover(&a, None, has_answers, now)),
            want,
            "{a:?} {has_answers}"
        );
    }
}

#[test]
fn a_claim_holds_for_the_campaign_or_the_program() {
    let p = CampaignPolicy::default();
    let program = ProgramConfig::default();
    let hold = |state, kind, places, now| {
        claim_hold(state, kind, &p, &program, places, now).expect("time zone")
    };
    use CampaignKind::{Invitation, Survey};
    let open = vn(29, 10, 0);
    for state in [
        CampaignState::Draft,
        CampaignState::Paused,
        CampaignState::Stopped,
        CampaignState::Completed,
    ] {
        // The state comes first, whatever the time or the cap.
        assert_eq!(
            hold(state, Invitation, 500, vn(29, 21, 0)),
            Some(ClaimHold::NotRunning(state))
        );
    }
    let running = CampaignState::Running;
    assert_eq!(hold(running, Invitation, 0, open), None);
    assert_eq!(hold(running, Invitation, 499, open), None);
    assert_eq!(
        hold(running, Invitation, 500, open),
        Some(ClaimHold::CapReached)
    );
    assert_eq!(
        hold(running, Invitation, 500, vn(29, 21, 0)),
        Some(ClaimHold::OutsideCallingWindow {
            opens: Some(vn(30, 8, 0))
        })
    );
    // Registration runs 26/11 to 25/12 inclusive, local dates.
    assert_eq!(
        hold(running, Invitation, 0, vn(25, 10, 0)),
        Some(ClaimHold::RegistrationClosed)
    );
    assert_eq!(hold(running, Invitation, 0, vn(26, 8, 0)), None);
    let after: Timestamp = "2021-12-26T01:00:00Z".parse().expect("valid");
    assert_eq!(
        hold(running, Invitation, 0, after),
        Some(ClaimHold::RegistrationClosed)
    );
    // Surveys call consulted customers: the registration rules do not apply.
    assert_eq!(hold(running, Survey, 500, after), None);
    assert_eq!(
        hold(running, Survey, 500, vn(29, 7, 0)),
        Some(ClaimHold::OutsideCallingWindow {
            opens: Some(vn(29, 8, 0))
        })
    );
    // `program.today` (demos) decides the date instead of the clock.
    let demo = ProgramConfig {
        today: Some(jiff::civil::date(2021, 12, 1)),
        ..ProgramConfig::default()
    };
    assert_eq!(
        claim_hold(running, Invitation, &p, &demo, 0, vn(25, 10, 0)),
        Ok(None)
    );
}

#[test]
fn due_contacts_closed_at_claim() {
    use CampaignKind::{Invitation, Survey};
    for &status in Status::ALL {
        assert_eq!(
            closed_at_claim(Invitation, false, Some(status)),
            Some(ContactEnd::AlreadyRegistered),
            "{status}"
        );
        let survey = (status == Status::Surveyed).then_some(ContactEnd::AlreadySurveyed);
        assert_eq!(
            closed_at_claim(Survey, false, Some(status)),
            survey,
            "{status}"
        );
        // The do-not-call list comes first, for every kind.
        for kind in [Invitation, Survey] {
            assert_eq!(
                closed_at_claim(kind, true, Some(status)),
                Some(ContactEnd::OptedOut)
            );
        }
    }
    assert_eq!(closed_at_claim(Invitation, false, None), None);
    assert_eq!(closed_at_claim(Survey, false, None), None);
    assert_eq!(
        closed_at_claim(Survey, true, None),
        Some(ContactEnd::OptedOut)
    );
}

#[test]
fn who_becomes_a_contact() {
    let program = ProgramConfig::default();
    let eligible = Subscriber {
        msisdn: "+84903123678".into(),
        plan: Plan::Postpaid,
        charge_per_cycle_vnd: 400_000,
        list_source: "sms".into(),
        name: None,
        imported_at: Timestamp::UNIX_EPOCH,
        import_batch: None,
    };
    let prepaid = Subscriber {
        plan: Plan::Prepaid,
        ..eligible.clone()
    };
    let cases = [
        (&eligible, false, false, None),
        (&eligible, false, true, Some(Exclusion::DoNotCall)),
        (&eligible, true, false, Some(Exclusion::Registered)),
        // The first reason is the one counted.
        (&eligible, true, true, Some(Exclusion::Registered)),
        (&prepaid, true, true, Some(Exclusion::NotEligible)),
        (&prepaid, false, false, Some(Exclusion::NotEligible)),
    ];
    for (sub, registered, dnc, want) in cases {
        assert_eq!(
            invitation_exclusion(sub, registered, dnc, &program),
            want,
            "{:?} registered={registered} dnc={dnc}",
            sub.plan
        );
    }
    assert_eq!(survey_exclusion(true), Some(Exclusion::DoNotCall));
    assert_eq!(survey_exclusion(false), None);
    assert_eq!(Exclusion::NotEligible.as_str(), "not_eligible");
}

#[test]
fn the_next_due_time_is_inside_a_window() {
    let p = CampaignPolicy::default();
    // A never-dialled contact is due now, or at the next opening.
    assert_eq!(next_due(None, vn(29, 9, 0), &p), Some(vn(29, 9, 0)));
    assert_eq!(next_due(None, vn(29, 21, 0), &p), Some(vn(30, 8, 0)));
    // A retry time in the past is now; in the future, itself.
    assert_eq!(
        next_due(Some(vn(29, 8, 30)), vn(29, 9, 0), &p),
        Some(vn(29, 9, 0))
    );
    assert_eq!(
        next_due(Some(vn(29, 11, 0)), vn(29, 9, 0), &p),
        Some(vn(29, 11, 0))
    );
    assert_eq!(
        next_due(Some(vn(29, 20, 30)), vn(29, 9, 0), &p),
        Some(vn(30, 8, 0))
    );
    let closed = CampaignPolicy {
        days: vec![],
        ..CampaignPolicy::default()
    };
    assert_eq!(next_due(None, vn(29, 9, 0), &closed), None);
}
