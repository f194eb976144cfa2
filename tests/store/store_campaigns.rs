//! The campaign side of the store (migration 0002), run on SQLite and on PostgreSQL
//! (`<test>::sqlite`, `<test>::postgres`), on a controlled clock: every `now` is a
//! fixed instant in November 2021, Asia/Ho_Chi_Minh.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::date;
use jiff::tz::TimeZone;
use tongdai::store::{
    AttemptEnd, AttemptStatus, CallDirection, CallLaterRequest, CallRecordRow, ClaimHold,
    ClaimRequest, ClaimedAttempt, Claims, ContactEnd, ContactState, DncSource, FlowOutcome,
    NewRegistration, RegisterOutcome, Resolution, Store, StoreError, SurveyQuestion,
};
use tongdai_domain::dialer::{
    CampaignKind, CampaignPolicy, CampaignState, Disposition, RetryDecision,
};
use tongdai_domain::program::{Channel, Group, ProgramConfig, Status};

use crate::support;
use crate::support::store::TestDb;

on_both_backends!(
    invitation_contacts_follow_the_program_rules,
    survey_contacts_are_consulted_registrations,
    lifecycle_commands_are_validated_and_persisted,
    claims_are_exactly_once_under_concurrency,
    two_stores_never_claim_the_same_contact,
    two_processes_never_claim_the_same_contact,
    do_not_call_and_finished_contacts_are_never_claimed,
    retry_schedule_per_disposition,
    throttled_finals_and_burst_refunds_are_not_charged,
    call_later_reschedules_inside_the_calling_window,
    opt_out_reaches_every_campaign,
    invitations_hold_when_the_program_cannot_take_more,
    restart_recovers_dialing_attempts_from_call_records,
    progress_counts_and_campaign_lines,
    survey_answers_and_satisfaction_rate,
);

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/subscribers-sample.csv"
);
const NODE: &str = "node-a";

/// Local Hanoi time (UTC+7, no DST) as an instant.
fn vn(d: i8, h: i8, mi: i8) -> Timestamp {
    TimeZone::fixed(jiff::tz::offset(7))
        .to_timestamp(date(2021, 11, d).at(h, mi, 0, 0))
        .expect("valid local time")
}

fn mins(t: Timestamp, m: i64) -> Timestamp {
    t + jiff::SignedDuration::from_mins(m)
}

fn invitation() -> CampaignPolicy {
    CampaignPolicy {
        kind: CampaignKind::Invitation,
        dialplan: "invite".into(),
        ..CampaignPolicy::default()
    }
}

fn survey() -> CampaignPolicy {
    CampaignPolicy {
        kind: CampaignKind::Survey,
        dialplan: "survey".into(),
        ..CampaignPolicy::default()
    }
}

fn call_id() -> String {
    format!("{:032x}@test", rand::random::<u128>())
}

/// Writes a CSV of `n` eligible numbers `0909xxxxxx` and imports it.
async fn seed_eligible(store: &Store, dir: &Path, n: usize) -> Vec<String> {
    let numbers: Vec<String> = (0..n).map(|i| format!("+84909{i:06}")).collect();
    let mut csv = String::from("msisdn,plan,charge_per_cycle_vnd,list_source\n");
    for m in &numbers {
        csv.push_str(&format!("{m},postpaid,400000,sms\n"));
    }
    let path = dir.join(format!("eligible-{n}.csv"));
    std::fs::write(&path, csv).expect("write csv");
    store
        .import_subscribers_csv(&path, Timestamp::now())
        .await
        .expect("import");
    numbers
}

/// A running invitation campaign over `n` fresh eligible numbers.
async fn running_invitation(db: &TestDb, n: usize, policy: CampaignPolicy) -> (i64, Vec<String>) {
    let dir = db.scratch();
    let numbers = seed_eligible(&db.store, dir.path(), n).await;
    let created = db
        .store
        .create_invitation_campaign("mời-đợt-1", policy, &ProgramConfig::default(), vn(26, 9, 0))
        .await
        .expect("create");
    assert_eq!(created.contacts as usize, n);
    let id = created.campaign.id;
    db.store
        .start_campaign(id, vn(26, 9, 0))
        .await
        .expect("start");
    (id, numbers)
}

async fn claim(store: &Store, campaign_id: i64, limit: u32, now: Timestamp) -> Claims {
    store
        .claim_due(
            &ClaimRequest {
                campaign_id,
                instance: NODE,
                limit,
                now,
                program: &ProgramConfig::default(),
            },
            call_id,
        )
        .await
        .expect("claim")
}

async fn claim_one(store: &Store, campaign_id: i64, now: Timestamp) -> ClaimedAttempt {
    let mut c = claim(store, campaign_id, 1, now).await;
    assert_eq!(c.attempts.len(), 1, "expected one claim: {c:?}");
    c.attempts.remove(0)
}

fn end(code: u16, at: Timestamp) -> AttemptEnd {
    AttemptEnd::from_sip(code, false, at)
}

fn registered(o: RegisterOutcome) -> tongdai::store::Registration {
    match o {
        RegisterOutcome::Registered(r) => r,
        other => panic!("expected Registered, got {other:?}"),
    }
}

async fn invitation_contacts_follow_the_program_rules(db: &TestDb) {
    let s = &db.store;
    s.import_subscribers_csv(Path::new(SAMPLE), Timestamp::now())
        .await
        .expect("import");
    let cfg = ProgramConfig::default();
    registered(
        s.register(
            NewRegistration {
                msisdn: "0901000002".into(),
                group: Group::One,
                channel: Channel::Hotline,
                specialty: None,
                call_id: None,
                name: None,
                fanpage_ref: None,
            },
            &cfg,
            date(2021, 11, 26),
            vn(26, 8, 30),
        )
        .await
        .expect("register"),
    );
    assert!(
        s.add_do_not_call(
            "0331 000 007",
            DncSource::Supervisor,
            "gọi CSKH",
            vn(26, 8, 45)
        )
        .await
        .expect("dnc")
    );
    let mut policy = invitation();
    policy.max_cps = 2.5;
    policy.excluded_dates = vec![date(2021, 12, 24)];
    let created = s
        .create_invitation_campaign(" mời-đợt-1 ", policy.clone(), &cfg, vn(26, 9, 0))
        .await
        .expect("create");
    assert_eq!(created.contacts, 3);
    assert_eq!(
        created.skipped,
        BTreeMap::from([("do_not_call", 1), ("not_eligible", 5), ("registered", 1)])
    );
    let c = &created.campaign;
    assert_eq!(
        (c.name.as_str(), c.kind, c.state, c.dialplan.as_str()),
        (
            "mời-đợt-1",
            CampaignKind::Invitation,
            CampaignState::Draft,
            "invite"
        )
    );
    assert_eq!(c.policy, policy, "the policy round-trips through the store");
    assert_eq!((c.created_at, c.started_at), (vn(26, 9, 0), None));
    assert_eq!(
        s.campaign_by_name("mời-đợt-1")
            .await
            .expect("read")
            .as_ref(),
        Some(c)
    );
    let contacts = s.campaign_contacts(c.id).await.expect("contacts");
    let numbers: Vec<&str> = contacts.iter().map(|c| c.msisdn.as_str()).collect();
    assert_eq!(numbers, ["+84831000009", "+84901000001", "+84901000003"]);
    for k in &contacts {
        assert_eq!(k.state, ContactState::Waiting);
        assert_eq!((k.dials, k.attempts_charged, k.not_before), (0, 0, None));
        assert_eq!(k.registration_id, None);
    }
    // Refusals: a name used twice, the wrong kind, an invalid policy.
    assert!(matches!(
        s.create_invitation_campaign("mời-đợt-1", invitation(), &cfg, vn(26, 9, 0))
            .await,
        Err(StoreError::CampaignExists(_))
    ));
    assert!(matches!(
        s.create_invitation_campaign("x", survey(), &cfg, vn(26, 9, 0))
            .await,
        Err(StoreError::InvalidRequest(_))
    ));
    let bad = CampaignPolicy {
        max_concurrent: 0,
        ..invitation()
    };
    assert!(matches!(
        s.create_invitation_campaign("y", bad, &cfg, vn(26, 9, 0))
            .await,
        Err(StoreError::InvalidPolicy(_))
    ));
    assert_eq!(
        s.campaigns().await.expect("list").len(),
        1,
        "refusals write nothing"
    );
}

/// Registers `n` group-2 customers and moves the first `consulted` of them to consulted.
async fn consulted_registrations(s: &Store, n: usize, consulted: usize) -> Vec<i64> {
    let cfg = ProgramConfig::default();
    let mut ids = Vec::new();
    for i in 0..n {
        let r = registered(
            s.register(
                NewRegistration {
                    msisdn: format!("0988{i:06}"),
                    group: Group::Two,
                    channel: Channel::Fanpage,
                    specialty: Some(1),
                    call_id: None,
                    name: None,
                    fanpage_ref: Some(format!("fb-{i}")),
                },
                &cfg,
                date(2021, 11, 27),
                vn(27, 9, 0),
            )
            .await
            .expect("register"),
        );
        if i < consulted {
            for to in [
                Status::SentToVinmec,
                Status::AppointmentBooked,
                Status::Consulted,
            ] {
                s.set_status(r.id, to, "vinmec:test", "", vn(28, 9, 0))
                    .await
                    .expect("status");
            }
        }
        ids.push(r.id);
    }
    ids
}

async fn survey_contacts_are_consulted_registrations(db: &TestDb) {
    let s = &db.store;
    let ids = consulted_registrations(s, 5, 3).await;
    s.add_do_not_call("0988000001", DncSource::Keypad, "", vn(28, 10, 0))
        .await
        .expect("dnc");
    let created = s
        .create_survey_campaign("khảo-sát-1", survey(), vn(29, 9, 0))
        .await
        .expect("create");
    assert_eq!(created.contacts, 2);
    assert_eq!(created.skipped, BTreeMap::from([("do_not_call", 1)]));
    let contacts = s
        .campaign_contacts(created.campaign.id)
        .await
        .expect("contacts");
    let got: Vec<(Option<i64>, &str)> = contacts
        .iter()
        .map(|c| (c.registration_id, c.msisdn.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (Some(ids[0]), "+84988000000"),
            (Some(ids[2]), "+84988000002")
        ]
    );
    assert!(matches!(
        s.create_survey_campaign("z", invitation(), vn(29, 9, 0))
            .await,
        Err(StoreError::InvalidRequest(_))
    ));
}

async fn lifecycle_commands_are_validated_and_persisted(db: &TestDb) {
    let s = &db.store;
    let dir = db.scratch();
    seed_eligible(s, dir.path(), 3).await;
    let cfg = ProgramConfig::default();
    let id = s
        .create_invitation_campaign("c", invitation(), &cfg, vn(26, 9, 0))
        .await
        .expect("create")
        .campaign
        .id;
    let held = claim(s, id, 5, vn(29, 10, 0)).await;
    assert_eq!(held.held, Some(ClaimHold::NotRunning(CampaignState::Draft)));
    assert!(held.attempts.is_empty());
    assert_eq!(
        held.next_due,
        Some(vn(29, 10, 0)),
        "three contacts are due now"
    );

    let bad = |r: Result<_, StoreError>, cmd: &str, st: CampaignState| match r {
        Err(StoreError::InvalidCampaignCommand { command, state, .. }) => {
            assert_eq!((command, state), (cmd, st))
        }
        other => panic!("expected InvalidCampaignCommand, got {other:?}"),
    };
    bad(
        s.pause_campaign(id, vn(29, 10, 0)).await,
        "pause",
        CampaignState::Draft,
    );
    bad(
        s.resume_campaign(id, vn(29, 10, 0)).await,
        "resume",
        CampaignState::Draft,
    );
    let c = s.start_campaign(id, vn(29, 10, 1)).await.expect("start");
    assert_eq!(
        (c.state, c.started_at),
        (CampaignState::Running, Some(vn(29, 10, 1)))
    );
    bad(
        s.start_campaign(id, vn(29, 10, 2)).await,
        "start",
        CampaignState::Running,
    );
    let c = s.pause_campaign(id, vn(29, 10, 2)).await.expect("pause");
    assert_eq!(c.state, CampaignState::Paused);
    assert_eq!(
        claim(s, id, 5, vn(29, 10, 3)).await.held,
        Some(ClaimHold::NotRunning(CampaignState::Paused))
    );
    let c = s.resume_campaign(id, vn(29, 10, 4)).await.expect("resume");
    assert_eq!(
        (c.state, c.started_at),
        (CampaignState::Running, Some(vn(29, 10, 1)))
    );
    let a = claim_one(s, id, vn(29, 10, 5)).await;
    let c = s.stop_campaign(id, vn(29, 10, 6)).await.expect("stop");
    assert_eq!(
        (c.state, c.ended_at),
        (CampaignState::Stopped, Some(vn(29, 10, 6)))
    );
    bad(
        s.resume_campaign(id, vn(29, 10, 7)).await,
        "resume",
        CampaignState::Stopped,
    );
    bad(
        s.stop_campaign(id, vn(29, 10, 7)).await,
        "stop",
        CampaignState::Stopped,
    );
    // The call in progress is still recorded; nothing new is claimed.
    let f = s
        .finish_attempt(a.attempt_id, &end(486, vn(29, 10, 8)))
        .await
        .expect("finish after stop");
    assert_eq!(f.contact.state, ContactState::Waiting);
    assert_eq!(
        claim(s, id, 5, vn(29, 12, 0)).await.held,
        Some(ClaimHold::NotRunning(CampaignState::Stopped))
    );
    assert!(matches!(
        s.start_campaign(999_999, vn(29, 10, 0)).await,
        Err(StoreError::NotFound { .. })
    ));
    // A campaign with nobody to call completes as soon as it starts.
    let empty = s
        .create_survey_campaign("rỗng", survey(), vn(29, 11, 0))
        .await
        .expect("create");
    assert_eq!(empty.contacts, 0, "no consultation is done yet");
    let c = s
        .start_campaign(empty.campaign.id, vn(29, 11, 1))
        .await
        .expect("start");
    assert_eq!(
        (c.state, c.ended_at),
        (CampaignState::Completed, Some(vn(29, 11, 1)))
    );
}

/// Claims in a loop from several tasks (over the given stores) until nothing is left;
/// returns every claimed attempt.
async fn drain_concurrently(
    stores: &[Store],
    campaign_id: i64,
    tasks: usize,
) -> Vec<ClaimedAttempt> {
    let mut handles = Vec::new();
    for t in 0..tasks {
        let store = stores[t % stores.len()].clone();
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let mut rounds = 0;
            loop {
                rounds += 1;
                let limit = 1 + (t as u32 + rounds) % 4;
                let c = claim(&store, campaign_id, limit, vn(29, 10, 0)).await;
                if c.attempts.is_empty() {
                    assert_eq!(c.held, None);
                    break mine;
                }
                mine.extend(c.attempts);
            }
        }));
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.await.expect("task"));
    }
    all
}

fn assert_each_contact_once(all: &[ClaimedAttempt], numbers: &[String]) {
    let mut per_contact: HashMap<i64, u32> = HashMap::new();
    for a in all {
        *per_contact.entry(a.contact_id).or_default() += 1;
        assert_eq!(a.attempt_no, 1);
        assert_eq!(a.kind, CampaignKind::Invitation);
        assert_eq!(a.ring_timeout, Duration::from_secs(30));
    }
    assert_eq!(
        all.len(),
        numbers.len(),
        "every contact claimed, none twice"
    );
    assert!(per_contact.values().all(|&n| n == 1));
    let msisdns: HashSet<&str> = all.iter().map(|a| a.msisdn.as_str()).collect();
    let want: HashSet<&str> = numbers.iter().map(String::as_str).collect();
    assert_eq!(msisdns, want);
    let call_ids: HashSet<&str> = all.iter().map(|a| a.call_id.as_str()).collect();
    assert_eq!(call_ids.len(), all.len());
}

async fn claims_are_exactly_once_under_concurrency(db: &TestDb) {
    let (id, numbers) = running_invitation(db, 150, invitation()).await;
    let all = drain_concurrently(std::slice::from_ref(&db.store), id, 12).await;
    assert_each_contact_once(&all, &numbers);
    let attempts = db.store.campaign_attempts(id).await.expect("attempts");
    assert_eq!(attempts.len(), 150);
    for a in &attempts {
        assert_eq!(
            (a.status, a.claimed_by.as_str()),
            (AttemptStatus::Dialing, NODE)
        );
        assert_eq!(a.claimed_at, vn(29, 10, 0));
    }
    let p = db
        .store
        .campaign_progress(id, vn(29, 10, 0))
        .await
        .expect("progress");
    assert_eq!((p.dialing, p.waiting, p.next_due), (150, 0, None));
}

async fn two_stores_never_claim_the_same_contact(db: &TestDb) {
    let (id, numbers) = running_invitation(db, 150, invitation()).await;
    let other = db.another_store().await;
    let all = drain_concurrently(&[db.store.clone(), other.clone()], id, 12).await;
    assert_each_contact_once(&all, &numbers);
    other.close().await;
}

/// Not a test of its own: the child process of `two_processes_never_claim_the_same_contact`
/// (it does nothing unless that test started it).
#[tokio::test]
async fn claim_child_process() {
    let (Ok(url), Ok(campaign)) = (
        std::env::var("TONGDAI_CLAIM_CHILD_URL"),
        std::env::var("TONGDAI_CLAIM_CHILD_CAMPAIGN"),
    ) else {
        return;
    };
    let campaign: i64 = campaign.parse().expect("campaign id");
    let store = Store::connect(&url).await.expect("child connects");
    // Start together with the sibling process: announce, then wait for the parent's go.
    if let Ok(dir) = std::env::var("TONGDAI_CLAIM_CHILD_DIR") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::write(dir.join(format!("ready-{}", std::process::id())), b"").expect("ready");
        for _ in 0..6000 {
            if dir.join("go").exists() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    loop {
        let c = claim(&store, campaign, 3, vn(29, 10, 0)).await;
        if c.attempts.is_empty() {
            break;
        }
        for a in c.attempts {
            println!("CLAIMED {} {}", a.contact_id, a.call_id);
        }
    }
    store.close().await;
}

async fn two_processes_never_claim_the_same_contact(db: &TestDb) {
    let (id, numbers) = running_invitation(db, 120, invitation()).await;
    let exe = std::env::current_exe().expect("test binary");
    let sync = db.scratch();
    let children: Vec<_> = (0..2)
        .map(|_| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    &support::test_path(module_path!(), "claim_child_process"),
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("TONGDAI_CLAIM_CHILD_URL", &db.url)
                .env("TONGDAI_CLAIM_CHILD_CAMPAIGN", id.to_string())
                .env("TONGDAI_CLAIM_CHILD_DIR", sync.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("spawn child process")
        })
        .collect();
    // Both connected (and migrated): let them claim at the same time.
    for _ in 0..6000 {
        let ready = std::fs::read_dir(sync.path()).expect("sync dir").count();
        if ready >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    std::fs::write(sync.path().join("go"), b"").expect("go");
    let mut per_process = Vec::new();
    let mut claimed: Vec<i64> = Vec::new();
    for child in children {
        let out = child.wait_with_output().expect("child output");
        assert!(
            out.status.success(),
            "child failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        // The harness prints "test claim_child_process ... " without a newline before
        // the test's own output: look for the marker anywhere in a line.
        let mine: Vec<i64> = text
            .lines()
            .flat_map(|l| l.split("CLAIMED ").skip(1))
            .map(|l| {
                l.split(' ')
                    .next()
                    .unwrap_or("")
                    .parse()
                    .expect("contact id")
            })
            .collect();
        per_process.push(mine.len());
        claimed.extend(mine);
    }
    eprintln!(
        "{:?}: claims per process {per_process:?}",
        db.store.backend()
    );
    let unique: HashSet<i64> = claimed.iter().copied().collect();
    assert_eq!(
        claimed.len(),
        numbers.len(),
        "every contact claimed exactly once"
    );
    assert_eq!(unique.len(), numbers.len());
    let attempts = db.store.campaign_attempts(id).await.expect("attempts");
    assert_eq!(attempts.len(), numbers.len());
}

async fn do_not_call_and_finished_contacts_are_never_claimed(db: &TestDb) {
    let s = &db.store;
    let (id, numbers) = running_invitation(db, 6, invitation()).await;
    // A supervisor adds one: its waiting contact closes at once.
    assert!(
        s.add_do_not_call(
            &numbers[0],
            DncSource::Supervisor,
            "khách yêu cầu",
            vn(29, 9, 0)
        )
        .await
        .expect("add")
    );
    assert!(
        !s.add_do_not_call(&numbers[0], DncSource::Import, "", vn(29, 9, 1))
            .await
            .expect("again"),
        "already there"
    );
    let entry = s
        .do_not_call_entry(&numbers[0])
        .await
        .expect("read")
        .expect("present");
    assert_eq!(
        (entry.source, entry.at, entry.note.as_str()),
        (DncSource::Supervisor, vn(29, 9, 0), "khách yêu cầu")
    );
    let c0 = s
        .campaign_contact(id, &numbers[0])
        .await
        .expect("c")
        .expect("c");
    assert_eq!(
        (c0.state, c0.done_reason),
        (ContactState::Done, Some(ContactEnd::OptedOut))
    );
    // An imported list: all or nothing, then closes its contacts too.
    let dir = db.scratch();
    let path = dir.path().join("dnc.csv");
    std::fs::write(&path, format!("msisdn,note\n{},\n0903\n", numbers[1])).expect("write");
    assert!(matches!(
        s.import_do_not_call_csv(&path, vn(29, 9, 5)).await,
        Err(tongdai::store::ImportError::Row { line: 3, .. })
    ));
    assert!(
        !s.is_do_not_call(&numbers[1]).await.expect("read"),
        "nothing written"
    );
    std::fs::write(
        &path,
        format!("msisdn,note\n{},ds-2021\n{}\n", numbers[1], numbers[0]),
    )
    .expect("write");
    let report = s
        .import_do_not_call_csv(&path, vn(29, 9, 5))
        .await
        .expect("import");
    assert_eq!((report.rows, report.inserted, report.already), (2, 1, 1));
    assert_eq!(s.do_not_call_list().await.expect("list").len(), 2);

    // A number that goes on the list after being selected but before its claim (written
    // straight into the table, as another process's keypad opt-out would): skipped.
    let ts = vn(29, 10, 0);
    s.add_do_not_call(&numbers[2], DncSource::Keypad, "", ts)
        .await
        .expect("add");
    // A contact rejected with 603 is done and never claimed again.
    let first = claim(s, id, 1, ts).await;
    assert_eq!(first.attempts[0].msisdn, numbers[3]);
    let f = s
        .finish_attempt(first.attempts[0].attempt_id, &end(603, mins(ts, 1)))
        .await
        .expect("finish");
    assert_eq!(f.contact.done_reason, Some(ContactEnd::Rejected));
    let rest = claim(s, id, 10, mins(ts, 2)).await;
    let got: Vec<&str> = rest.attempts.iter().map(|a| a.msisdn.as_str()).collect();
    assert_eq!(got, [numbers[4].as_str(), numbers[5].as_str()]);
    for a in &rest.attempts {
        s.finish_attempt(a.attempt_id, &end(404, mins(ts, 3)))
            .await
            .expect("finish");
    }
    // Days later: nothing is due, the campaign completed, no DNC number was ever dialled.
    let later = claim(s, id, 10, vn(30, 10, 0)).await;
    assert!(later.attempts.is_empty());
    assert_eq!(later.next_due, None);
    let c = s.campaign(id).await.expect("read").expect("present");
    assert_eq!(c.state, CampaignState::Completed);
    let dialled: HashSet<String> = s
        .campaign_attempts(id)
        .await
        .expect("attempts")
        .into_iter()
        .map(|a| a.msisdn)
        .collect();
    for n in &numbers[..3] {
        assert!(!dialled.contains(n), "{n} is on the do-not-call list");
    }
}

async fn retry_schedule_per_disposition(db: &TestDb) {
    let s = &db.store;
    let (id, _) = running_invitation(db, 8, invitation()).await;
    let t = vn(29, 10, 0);
    let claims = claim(s, id, 8, t).await;
    assert_eq!(claims.attempts.len(), 8);
    let ended = mins(t, 1);
    let cases: [(u16, Option<i64>, Option<ContactEnd>, Disposition); 8] = [
        (486, Some(10), None, Disposition::Busy),
        (480, Some(120), None, Disposition::NoAnswer),
        (408, Some(120), None, Disposition::NoAnswer),
        (503, Some(5), None, Disposition::Congested),
        (403, Some(30), None, Disposition::Failed),
        (603, None, Some(ContactEnd::Rejected), Disposition::Rejected),
        (
            404,
            None,
            Some(ContactEnd::InvalidNumber),
            Disposition::InvalidNumber,
        ),
        (
            484,
            None,
            Some(ContactEnd::InvalidNumber),
            Disposition::InvalidNumber,
        ),
    ];
    for (a, (code, delay, done, disposition)) in claims.attempts.iter().zip(cases) {
        let mut e = end(code, ended);
        e.reason = Some(format!("Q.850;cause={code}"));
        let f = s.finish_attempt(a.attempt_id, &e).await.expect("finish");
        assert_eq!(f.attempt.status, AttemptStatus::Finished);
        assert_eq!(f.attempt.resolution, Some(Resolution::Final));
        assert_eq!(f.attempt.sip_code, Some(code));
        assert_eq!(f.attempt.disposition, Some(disposition));
        assert_eq!(
            f.attempt.reason.as_deref(),
            Some(format!("Q.850;cause={code}").as_str())
        );
        assert_eq!(f.attempt.ended_at, Some(ended));
        assert!(f.attempt.charged, "{code} is charged");
        assert_eq!(f.contact.attempts_charged, 1);
        assert_eq!(f.contact.last_sip_code, Some(code));
        assert_eq!(f.contact.last_disposition, Some(disposition));
        match (delay, done) {
            (Some(m), None) => {
                assert_eq!(
                    f.decision,
                    RetryDecision::Retry {
                        not_before: mins(ended, m)
                    },
                    "{code}"
                );
                assert_eq!(f.contact.state, ContactState::Waiting);
                assert_eq!(f.contact.not_before, Some(mins(ended, m)));
            }
            (None, Some(reason)) => {
                assert_eq!(f.contact.state, ContactState::Done, "{code}");
                assert_eq!(f.contact.done_reason, Some(reason));
            }
            _ => unreachable!(),
        }
        assert!(matches!(
            s.finish_attempt(a.attempt_id, &e).await,
            Err(StoreError::AttemptNotDialing {
                status: AttemptStatus::Finished,
                ..
            })
        ));
    }
    // Nothing is due before the first retry (the congested one, 5 minutes later).
    let early = claim(s, id, 10, mins(ended, 4)).await;
    assert!(early.attempts.is_empty());
    assert_eq!(early.next_due, Some(mins(ended, 5)));
    let due = claim(s, id, 10, mins(ended, 10)).await;
    let got: Vec<(u32, String)> = due
        .attempts
        .iter()
        .map(|a| (a.attempt_no, a.msisdn.clone()))
        .collect();
    assert_eq!(got.len(), 2, "congested then busy: {got:?}");
    assert!(got.iter().all(|(n, _)| *n == 2));
    assert_eq!(
        got[0].1, claims.attempts[3].msisdn,
        "the earliest retry goes first"
    );
    assert_eq!(got[1].1, claims.attempts[0].msisdn);

    // Busy three times: max_attempts (3) ends the contact.
    let busy = due.attempts[1].clone();
    let f = s
        .finish_attempt(busy.attempt_id, &end(486, mins(ended, 11)))
        .await
        .expect("2nd");
    assert_eq!(f.contact.attempts_charged, 2);
    let third = claim(s, id, 10, mins(ended, 21)).await;
    let third = third
        .attempts
        .iter()
        .find(|a| a.contact_id == busy.contact_id)
        .expect("third try");
    assert_eq!(third.attempt_no, 3);
    let f = s
        .finish_attempt(third.attempt_id, &end(486, mins(ended, 22)))
        .await
        .expect("3rd");
    assert_eq!(f.contact.state, ContactState::Done);
    assert_eq!(f.contact.done_reason, Some(ContactEnd::MaxAttempts));
    assert_eq!(f.contact.attempts_charged, 3);
    // A busy at 19:55 retries at 08:00 the next morning (inside the window).
    let late = claim(s, id, 10, vn(29, 19, 50)).await;
    let a = late
        .attempts
        .first()
        .expect("someone is due in the evening");
    let f = s
        .finish_attempt(a.attempt_id, &end(486, vn(29, 19, 55)))
        .await
        .expect("finish");
    assert_eq!(f.contact.not_before, Some(vn(30, 8, 0)));
}

async fn throttled_finals_and_burst_refunds_are_not_charged(db: &TestDb) {
    let s = &db.store;
    let (id, _) = running_invitation(db, 3, invitation()).await;
    let t = vn(29, 10, 0);
    let a = claim(s, id, 3, t).await.attempts;
    // While the pacer throttles, a 503 does not burn the attempt.
    let mut e = end(503, mins(t, 1));
    e.throttled = true;
    let f = s.finish_attempt(a[0].attempt_id, &e).await.expect("finish");
    assert!(!f.attempt.charged);
    assert_eq!((f.contact.attempts_charged, f.contact.uncharged), (0, 1));
    assert_eq!(
        f.contact.not_before,
        Some(mins(t, 3)),
        "retry.throttled = 2m"
    );
    // Our own CANCEL (campaign stop, shutdown) is not charged either.
    let f = s
        .finish_attempt(a[1].attempt_id, &end(487, mins(t, 1)))
        .await
        .expect("finish");
    assert!(!f.attempt.charged);
    assert_eq!(f.attempt.disposition, Some(Disposition::Canceled));
    // The ring timeout's CANCEL is a no-answer, charged.
    // A busy that turns out to be the start of a burst is refunded.
    let f = s
        .finish_attempt(a[2].attempt_id, &end(486, mins(t, 1)))
        .await
        .expect("finish");
    assert!(f.attempt.charged);
    let refund = s
        .refund_attempt(a[2].attempt_id, mins(t, 2))
        .await
        .expect("refund");
    assert_eq!(
        refund,
        Some(RetryDecision::Retry {
            not_before: mins(t, 4)
        })
    );
    let c = s.contact(a[2].contact_id).await.expect("c").expect("c");
    assert_eq!(
        (c.attempts_charged, c.uncharged, c.not_before),
        (0, 1, Some(mins(t, 4)))
    );
    let row = s.attempt(a[2].attempt_id).await.expect("a").expect("a");
    assert!(!row.charged);
    assert_eq!(
        s.refund_attempt(a[2].attempt_id, mins(t, 2))
            .await
            .expect("again"),
        None
    );
    assert_eq!(
        s.refund_attempt(a[0].attempt_id, mins(t, 2))
            .await
            .expect("uncharged"),
        None,
        "nothing to refund"
    );
    let ring = claim_one(s, id, mins(t, 5)).await;
    let f = s
        .finish_attempt(
            ring.attempt_id,
            &AttemptEnd::from_sip(487, true, mins(t, 6)),
        )
        .await
        .expect("finish");
    assert_eq!(f.attempt.disposition, Some(Disposition::NoAnswer));
    assert!(f.attempt.charged);
}

async fn call_later_reschedules_inside_the_calling_window(db: &TestDb) {
    let s = &db.store;
    let (id, _) = running_invitation(db, 4, invitation()).await;
    let t = vn(29, 19, 30);
    let a = claim(s, id, 4, t).await.attempts;
    assert_eq!(a.len(), 4);
    let requests = [
        (
            Some(CallLaterRequest::After(Duration::from_secs(7200))),
            vn(30, 8, 0),
        ),
        (Some(CallLaterRequest::Tomorrow), vn(30, 8, 0)),
        (None, vn(30, 8, 0)),
        (
            Some(CallLaterRequest::After(Duration::from_secs(600))),
            vn(29, 19, 43),
        ),
    ];
    for (attempt, (req, want)) in a.iter().zip(requests) {
        s.attempt_started(attempt.attempt_id, t)
            .await
            .expect("started");
        s.attempt_answered(attempt.attempt_id, mins(t, 1))
            .await
            .expect("answered");
        assert!(
            s.record_flow_outcome(attempt.attempt_id, FlowOutcome::CallLater, req, mins(t, 2))
                .await
                .expect("outcome")
        );
        let f = s
            .finish_attempt(
                attempt.attempt_id,
                &AttemptEnd::answered(mins(t, 1), mins(t, 3)),
            )
            .await
            .expect("finish");
        assert_eq!(f.attempt.outcome, Some(FlowOutcome::CallLater));
        assert_eq!(f.attempt.call_later, req);
        assert_eq!(f.attempt.answered_at, Some(mins(t, 1)));
        assert_eq!(
            f.decision,
            RetryDecision::Retry { not_before: want },
            "{req:?}"
        );
        assert_eq!(f.contact.last_outcome, Some(FlowOutcome::CallLater));
        assert!(tongdai_domain::dialer::is_allowed(want, &invitation()));
    }
    // Outside the window nothing is claimed; the hold says when it opens.
    let night = claim(s, id, 5, vn(29, 21, 0)).await;
    assert_eq!(
        night.held,
        Some(ClaimHold::OutsideCallingWindow {
            opens: Some(vn(30, 8, 0))
        })
    );
    assert_eq!(night.next_due, Some(vn(30, 8, 0)));
    let morning = claim(s, id, 5, vn(30, 8, 0)).await;
    assert_eq!(morning.attempts.len(), 4, "all due by the morning");
}

async fn opt_out_reaches_every_campaign(db: &TestDb) {
    let s = &db.store;
    let (a_id, numbers) = running_invitation(db, 2, invitation()).await;
    let b_id = s
        .create_invitation_campaign(
            "mời-đợt-2",
            invitation(),
            &ProgramConfig::default(),
            vn(27, 9, 0),
        )
        .await
        .expect("second campaign")
        .campaign
        .id;
    let t = vn(29, 10, 0);
    let a = claim_one(s, a_id, t).await;
    s.opt_out_attempt(a.attempt_id, mins(t, 1))
        .await
        .expect("opt out");
    let entry = s
        .do_not_call_entry(&a.msisdn)
        .await
        .expect("r")
        .expect("listed");
    assert_eq!(
        (entry.source, entry.campaign_id, entry.attempt_id, entry.at),
        (
            DncSource::Keypad,
            Some(a_id),
            Some(a.attempt_id),
            mins(t, 1)
        )
    );
    let other = s
        .campaign_contact(b_id, &a.msisdn)
        .await
        .expect("r")
        .expect("c");
    assert_eq!(
        (other.state, other.done_reason),
        (ContactState::Done, Some(ContactEnd::OptedOut))
    );
    // A later outcome cannot overwrite the opt-out.
    assert!(
        !s.record_flow_outcome(a.attempt_id, FlowOutcome::NotInterested, None, mins(t, 2))
            .await
            .expect("outcome")
    );
    let f = s
        .finish_attempt(a.attempt_id, &AttemptEnd::answered(t, mins(t, 2)))
        .await
        .expect("finish");
    assert_eq!(f.attempt.outcome, Some(FlowOutcome::OptedOut));
    assert_eq!(
        (f.contact.state, f.contact.done_reason),
        (ContactState::Done, Some(ContactEnd::OptedOut))
    );
    s.start_campaign(b_id, t).await.expect("start b");
    let b = claim(s, b_id, 5, mins(t, 5)).await;
    let got: Vec<&str> = b.attempts.iter().map(|a| a.msisdn.as_str()).collect();
    assert_eq!(got.len(), 1);
    assert_ne!(got[0], a.msisdn);
    assert!(numbers.iter().any(|n| n == got[0]));
}

async fn invitations_hold_when_the_program_cannot_take_more(db: &TestDb) {
    let s = &db.store;
    let (id, numbers) = running_invitation(db, 3, invitation()).await;
    let t = vn(29, 10, 0);
    // Registered through the hotline since the list was made: skipped, never dialled.
    let tiny = ProgramConfig {
        cap: 2,
        ..ProgramConfig::default()
    };
    registered(
        s.register(
            NewRegistration {
                msisdn: numbers[0].clone(),
                group: Group::One,
                channel: Channel::Hotline,
                specialty: None,
                call_id: None,
                name: None,
                fanpage_ref: None,
            },
            &tiny,
            date(2021, 11, 29),
            t,
        )
        .await
        .expect("register"),
    );
    let req = |now, program| ClaimRequest {
        campaign_id: id,
        instance: NODE,
        limit: 1,
        now,
        program,
    };
    let c = s.claim_due(&req(t, &tiny), call_id).await.expect("claim");
    assert_eq!(c.skipped, 1);
    assert_eq!(c.attempts.len(), 1);
    assert_eq!(c.attempts[0].msisdn, numbers[1]);
    let skipped = s
        .campaign_contact(id, &numbers[0])
        .await
        .expect("r")
        .expect("c");
    assert_eq!(skipped.done_reason, Some(ContactEnd::AlreadyRegistered));
    // The cap is reached: no more invitations.
    registered(
        s.register(
            NewRegistration {
                msisdn: numbers[1].clone(),
                group: Group::One,
                channel: Channel::OutboundCall,
                specialty: Some(2),
                call_id: Some(c.attempts[0].call_id.clone()),
                name: None,
                fanpage_ref: None,
            },
            &tiny,
            date(2021, 11, 29),
            t,
        )
        .await
        .expect("register"),
    );
    let held = s
        .claim_due(&req(mins(t, 1), &tiny), call_id)
        .await
        .expect("claim");
    assert_eq!(held.held, Some(ClaimHold::CapReached));
    assert!(held.attempts.is_empty());
    // After the registration period (25/12), no more invitations either.
    let after = ProgramConfig {
        today: Some(date(2021, 12, 26)),
        ..ProgramConfig::default()
    };
    let held = s
        .claim_due(&req(mins(t, 1), &after), call_id)
        .await
        .expect("claim");
    assert_eq!(held.held, Some(ClaimHold::RegistrationClosed));
}

fn record(
    call_id: &str,
    final_status: Option<u16>,
    answered: Option<Timestamp>,
    ended: Timestamp,
) -> CallRecordRow {
    CallRecordRow {
        call_id: call_id.into(),
        direction: CallDirection::Outbound,
        caller: Some("9090".into()),
        called: None,
        started_at: mins(ended, -1),
        answered_at: answered,
        ended_at: Some(ended),
        final_status,
        disposition: tongdai::store::Disposition::from_sip_status(final_status.unwrap_or(500)),
        end_reason: String::new(),
        digits: String::new(),
        ivr_path: vec![],
        prompts: vec![],
        campaign_id: None,
        attempt_id: None,
    }
}

async fn restart_recovers_dialing_attempts_from_call_records(db: &TestDb) {
    let s = &db.store;
    let (id, _) = running_invitation(db, 6, invitation()).await;
    let t = vn(29, 10, 0);
    let a = claim(s, id, 5, t).await.attempts;
    // Another instance's live call must not be touched by our recovery.
    let theirs = s
        .claim_due(
            &ClaimRequest {
                campaign_id: id,
                instance: "node-b",
                limit: 1,
                now: t,
                program: &ProgramConfig::default(),
            },
            call_id,
        )
        .await
        .expect("claim b")
        .attempts
        .remove(0);
    // 0: the final is on record (486) → applied, charged, retried in 10 minutes.
    s.attempt_started(a[0].attempt_id, t)
        .await
        .expect("started");
    s.insert_call_record(&record(&a[0].call_id, Some(486), None, mins(t, 1)))
        .await
        .expect("record");
    // 1: claimed but the process died before the INVITE → released, uncharged.
    // 2: INVITE handed to the transport, then nothing → failed, charged.
    s.attempt_started(a[2].attempt_id, t)
        .await
        .expect("started");
    // 3: answered, the flow registered the subscriber, then the crash → applied.
    s.attempt_started(a[3].attempt_id, t)
        .await
        .expect("started");
    s.attempt_answered(a[3].attempt_id, mins(t, 1))
        .await
        .expect("answered");
    s.record_flow_outcome(a[3].attempt_id, FlowOutcome::Registered, None, mins(t, 2))
        .await
        .expect("outcome");
    // 4: answered, the call record says it ended with a BYE after 2 minutes.
    s.attempt_started(a[4].attempt_id, t)
        .await
        .expect("started");
    s.insert_call_record(&record(&a[4].call_id, Some(200), Some(t), mins(t, 2)))
        .await
        .expect("record");

    let now = mins(t, 30);
    let report = s.recover_dialing(NODE, now).await.expect("recover");
    let got: Vec<(i64, Resolution, Option<Disposition>)> = report
        .iter()
        .map(|r| (r.attempt_id, r.resolution, r.disposition))
        .collect();
    assert_eq!(
        got,
        [
            (
                a[0].attempt_id,
                Resolution::RecoveredRecord,
                Some(Disposition::Busy)
            ),
            (a[1].attempt_id, Resolution::RecoveredNoTrace, None),
            (
                a[2].attempt_id,
                Resolution::RecoveredAmbiguous,
                Some(Disposition::Failed)
            ),
            (
                a[3].attempt_id,
                Resolution::RecoveredOutcome,
                Some(Disposition::Answered)
            ),
            (
                a[4].attempt_id,
                Resolution::RecoveredRecord,
                Some(Disposition::Answered)
            ),
        ]
    );
    let attempt = |i: usize| {
        let s = s.clone();
        let id = a[i].attempt_id;
        async move { s.attempt(id).await.expect("read").expect("present") }
    };
    let contact = |i: usize| {
        let s = s.clone();
        let id = a[i].contact_id;
        async move { s.contact(id).await.expect("read").expect("present") }
    };
    let (a0, c0) = (attempt(0).await, contact(0).await);
    assert_eq!(
        (a0.status, a0.sip_code, a0.charged),
        (AttemptStatus::Finished, Some(486), true)
    );
    assert_eq!(a0.ended_at, Some(mins(t, 1)), "the record's end time");
    assert_eq!(c0.not_before, Some(mins(t, 11)));
    let (a1, c1) = (attempt(1).await, contact(1).await);
    assert_eq!((a1.status, a1.charged), (AttemptStatus::Released, false));
    assert_eq!(
        (c1.state, c1.attempts_charged, c1.not_before),
        (ContactState::Waiting, 0, None)
    );
    let (a2, c2) = (attempt(2).await, contact(2).await);
    assert_eq!(
        (a2.status, a2.disposition, a2.charged),
        (AttemptStatus::Finished, Some(Disposition::Failed), true)
    );
    assert_eq!(
        (c2.attempts_charged, c2.not_before),
        (1, Some(mins(now, 30)))
    );
    let c3 = contact(3).await;
    assert_eq!(
        (c3.state, c3.done_reason),
        (ContactState::Done, Some(ContactEnd::Completed))
    );
    let a4 = attempt(4).await;
    assert_eq!((a4.answered_at, a4.ended_at), (Some(t), Some(mins(t, 2))));
    // node-b's attempt is still dialing; a second recovery finds nothing of ours.
    assert_eq!(
        s.attempt(theirs.attempt_id)
            .await
            .expect("r")
            .expect("a")
            .status,
        AttemptStatus::Dialing
    );
    assert!(
        s.recover_dialing(NODE, now)
            .await
            .expect("again")
            .is_empty()
    );
    // The released contact is due again at once, as attempt 2 — never the same attempt.
    let again = claim(s, id, 5, now).await.attempts;
    let re = again
        .iter()
        .find(|x| x.contact_id == a[1].contact_id)
        .expect("released contact claimed again");
    assert_eq!(re.attempt_no, 2);
    assert_ne!(re.call_id, a[1].call_id);
    // A late report for a recovered attempt changes nothing.
    assert!(matches!(
        s.finish_attempt(a[0].attempt_id, &end(200, now)).await,
        Err(StoreError::AttemptNotDialing { .. })
    ));
}

async fn progress_counts_and_campaign_lines(db: &TestDb) {
    let s = &db.store;
    let (id, _) = running_invitation(db, 8, invitation()).await;
    let t = vn(29, 10, 0);
    let a = claim(s, id, 6, t).await.attempts;
    // 0 dialing; 1 in call; 2 busy → retry; 3 registered; 4 opted out; 5 603.
    s.attempt_answered(a[1].attempt_id, t)
        .await
        .expect("answered");
    s.finish_attempt(a[2].attempt_id, &end(486, mins(t, 1)))
        .await
        .expect("f");
    s.record_flow_outcome(a[3].attempt_id, FlowOutcome::Registered, None, t)
        .await
        .expect("o");
    s.finish_attempt(a[3].attempt_id, &AttemptEnd::answered(t, mins(t, 2)))
        .await
        .expect("f");
    s.opt_out_attempt(a[4].attempt_id, t).await.expect("o");
    s.finish_attempt(a[4].attempt_id, &AttemptEnd::answered(t, mins(t, 2)))
        .await
        .expect("f");
    s.finish_attempt(a[5].attempt_id, &end(603, mins(t, 1)))
        .await
        .expect("f");
    let p = s.campaign_progress(id, mins(t, 3)).await.expect("progress");
    assert_eq!(p.contacts, 8);
    assert_eq!(
        (p.waiting, p.dialing, p.in_call, p.retry_pending, p.done),
        (2, 1, 1, 1, 3)
    );
    assert_eq!(
        p.done_by_reason,
        BTreeMap::from([
            (ContactEnd::Completed, 1),
            (ContactEnd::Rejected, 1),
            (ContactEnd::OptedOut, 1)
        ])
    );
    assert_eq!(
        p.done_by_disposition,
        BTreeMap::from([(Disposition::Answered, 2), (Disposition::Rejected, 1)])
    );
    assert_eq!(p.attempts, 4);
    assert_eq!(
        p.attempts_by_disposition,
        BTreeMap::from([
            (Disposition::Answered, 2),
            (Disposition::Busy, 1),
            (Disposition::Rejected, 1)
        ])
    );
    assert_eq!(
        p.outcomes,
        BTreeMap::from([(FlowOutcome::Registered, 1), (FlowOutcome::OptedOut, 1)])
    );
    assert_eq!(p.answer_rate, Some(0.5));
    assert_eq!(
        p.next_due,
        Some(mins(t, 3)),
        "two never-dialled contacts are due"
    );
    let lines = s.campaign_lines(mins(t, 3)).await.expect("lines");
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].campaign.id, id);
    assert_eq!(lines[0].progress, p);
    // The store's rows have no JSON of their own: the line as the API sends it.
    let line = tongdai::api::campaigns::CampaignView::new(&lines[0].campaign, &lines[0].progress);
    let json = serde_json::to_value(&line).expect("serialises");
    assert_eq!(json["state"], "running");
    assert_eq!(json["progress"]["done_by_reason"]["opted_out"], 1);
}

async fn survey_answers_and_satisfaction_rate(db: &TestDb) {
    let s = &db.store;
    let regs = consulted_registrations(s, 4, 4).await;
    let id = s
        .create_survey_campaign("khảo-sát-1", survey(), vn(29, 9, 0))
        .await
        .expect("create")
        .campaign
        .id;
    s.start_campaign(id, vn(29, 9, 0)).await.expect("start");
    let t = vn(29, 10, 0);
    let a = claim(s, id, 4, t).await.attempts;
    assert_eq!(a.len(), 4);
    assert_eq!(a[0].registration_id, Some(regs[0]));
    assert_eq!(a[0].kind, CampaignKind::Survey);
    use SurveyQuestion::*;
    let answers: [&[(SurveyQuestion, u8)]; 4] = [
        &[(Satisfaction, 5), (Resolved, 1), (Recommend, 5)],
        &[(Satisfaction, 4), (Resolved, 1), (Recommend, 3)],
        &[(Satisfaction, 2), (Resolved, 2), (Recommend, 2)],
        &[(Satisfaction, 3)], // hung up after the first question
    ];
    for (attempt, given) in a.iter().zip(answers) {
        for &(q, v) in given {
            let ans = s
                .record_survey_answer(attempt.attempt_id, q, v, mins(t, 1))
                .await
                .expect("answer");
            assert_eq!(
                (ans.registration_id, ans.value),
                (attempt.registration_id.expect("reg"), v)
            );
        }
        if given.len() == 3 {
            assert_eq!(
                s.complete_survey(attempt.attempt_id, mins(t, 2))
                    .await
                    .expect("complete"),
                attempt.registration_id.expect("reg")
            );
        }
        s.finish_attempt(attempt.attempt_id, &AttemptEnd::answered(t, mins(t, 3)))
            .await
            .expect("finish");
    }
    assert!(matches!(
        s.record_survey_answer(a[0].attempt_id, Satisfaction, 6, t)
            .await,
        Err(StoreError::InvalidRequest(_))
    ));
    assert!(matches!(
        s.record_survey_answer(a[0].attempt_id, Resolved, 3, t)
            .await,
        Err(StoreError::InvalidRequest(_))
    ));
    // Completed surveys move the registration on; the partial one keeps its answer.
    for (i, want) in [
        Status::Surveyed,
        Status::Surveyed,
        Status::Surveyed,
        Status::Consulted,
    ]
    .into_iter()
    .enumerate()
    {
        let reg = s.registration(regs[i]).await.expect("r").expect("reg");
        assert_eq!(reg.status, want, "registration {i}");
    }
    let events = s.events(regs[0]).await.expect("events");
    let last = events.last().expect("event");
    assert_eq!(
        (last.to_status, last.actor.as_str()),
        (Status::Surveyed, "survey")
    );
    let partial = s.attempt(a[3].attempt_id).await.expect("r").expect("a");
    assert_eq!(partial.outcome, Some(FlowOutcome::SurveyPartial));
    let c3 = s.contact(a[3].contact_id).await.expect("r").expect("c");
    assert_eq!(
        c3.state,
        ContactState::Waiting,
        "a partial survey is called back"
    );
    assert_eq!(s.survey_answers(regs[3]).await.expect("answers").len(), 1);

    let r = s.satisfaction_report(Some(id)).await.expect("report");
    assert_eq!((r.respondents, r.completed, r.partial), (4, 3, 1));
    assert_eq!(r.satisfaction.answers, 4);
    assert_eq!(r.satisfaction.histogram, [0, 1, 1, 1, 1]);
    assert_eq!(r.satisfaction.share_4_5, Some(0.5));
    assert_eq!(r.satisfaction.mean, Some(3.5));
    assert_eq!(
        (r.resolved.answers, r.resolved.yes, r.resolved.no),
        (3, 2, 1)
    );
    assert_eq!(r.recommend.mean, Some(10.0 / 3.0));

    // The call-back completes the partial survey; the latest answer counts, once.
    let back = claim(s, id, 4, vn(29, 11, 30)).await.attempts;
    assert_eq!(back.len(), 1);
    assert_eq!(
        (back[0].registration_id, back[0].attempt_no),
        (Some(regs[3]), 2)
    );
    for (q, v) in [(Satisfaction, 5), (Resolved, 1), (Recommend, 4)] {
        s.record_survey_answer(back[0].attempt_id, q, v, vn(29, 11, 31))
            .await
            .expect("answer");
    }
    s.complete_survey(back[0].attempt_id, vn(29, 11, 32))
        .await
        .expect("complete");
    s.finish_attempt(
        back[0].attempt_id,
        &AttemptEnd::answered(vn(29, 11, 30), vn(29, 11, 33)),
    )
    .await
    .expect("finish");
    let r = s.satisfaction_report(None).await.expect("report");
    assert_eq!((r.respondents, r.completed, r.partial), (4, 4, 1));
    assert_eq!(r.satisfaction.histogram, [0, 1, 0, 1, 2]);
    assert_eq!(r.satisfaction.share_4_5, Some(0.75));
    assert_eq!(r.satisfaction.mean, Some(4.0));
    assert_eq!(r.resolved.share_yes, Some(0.75));
    let c = s.campaign(id).await.expect("r").expect("c");
    assert_eq!(c.state, CampaignState::Completed, "everyone surveyed");
    // Another survey run finds nobody left to ask.
    let again = s
        .create_survey_campaign("khảo-sát-2", survey(), vn(30, 9, 0))
        .await
        .expect("create");
    assert_eq!(again.contacts, 0);
}
