//! Whole calls through a `CallSession` in virtual time: no socket, no task, no clock.
//! Each output is shown as a short line (`play#1 greeting`, `bye`, `file local_bye`) so a
//! failing test prints what the call did.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tongdai_ivr::{CompileContext, compile_str};
use tongdai_media::sdp::{self, LocalMedia};
use tongdai_media::{
    DigitEvent, DigitSource, MediaFinal, MediaNotice, MediaStats, Prompt, PromptCache,
};
use tongdai_sip::{Command, EndReason, LegEvent};

use super::{CallSession, DialplanStart, Input, Now, Output, SessionSetup};
use crate::call::record::{CallRecord, DigitMethods, PromptPlay, system_time};

const LEG: u64 = 7;

/// A menu with barge-in, an action, a transfer and a loop back, on prompts that all
/// exist except `missing` (removed since start-up, as far as the call knows).
const PLAN: &str = r#"
[dialplan]
name = "test"
numbers = ["9090"]
start = "greet"

[node.greet]
play = ["greeting"]
next = "main"

[node.main]
menu = ["menu"]
first_digit_timeout = "5s"
max_timeouts = 2
timeout = ["no_input"]
exit = "bye"
[node.main.branch]
"1" = "register"
"2" = "agent"
"3" = "details"

[node.register]
action = "register"
[node.register.on]
registered = "done"
error = "bye"

[node.done]
play = ["success"]
hangup = true

[node.agent]
transfer = "18001090"

[node.details]
play = ["missing", "details"]
next = "main"

[node.bye]
play = ["goodbye"]
hangup = true
"#;

const OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\n\
    c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
    a=rtpmap:101 telephone-event/8000\r\n";

const HOLD: &str = "v=0\r\no=user1 53655765 2353687638 IN IP4 127.0.0.1\r\ns=-\r\n\
    c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
    a=sendonly\r\n";

fn setup(start: DialplanStart) -> SessionSetup {
    let prompt_ids = [
        "greeting", "menu", "no_input", "success", "details", "goodbye", "missing",
    ];
    let ctx = CompileContext {
        prompts: prompt_ids
            .iter()
            .map(|s| s.to_string())
            .collect::<HashSet<_>>(),
        actions: HashMap::from([(
            "register".to_string(),
            vec!["registered".to_string(), "error".to_string()],
        )]),
    };
    let plan = compile_str("test.toml", PLAN, &ctx).expect("the plan compiles");
    let mut prompts = PromptCache::new();
    for id in prompt_ids.iter().filter(|id| **id != "missing") {
        prompts.insert(Prompt::from_pcm(*id, &[0i16; 320]));
    }
    SessionSetup {
        leg: LEG,
        plan: Arc::new(plan),
        prompts,
        caller: Some("0903123678".into()),
        negotiated: sdp::negotiate(OFFER.as_bytes()).expect("offer"),
        local: LocalMedia {
            addr: "192.0.2.10".parse().expect("ip"),
            port: 40_000,
            session_id: LEG,
            session_version: 1,
        },
        transfer_host: "192.0.2.1:5060".parse::<SocketAddr>().expect("addr"),
        start,
        inactivity_timeout: Duration::from_secs(30),
        shutdown_grace: Duration::from_secs(30),
    }
}

/// One call and its virtual clocks.
struct Call {
    session: CallSession,
    t0: Instant,
    wall0: Timestamp,
    elapsed: Duration,
}

impl Call {
    fn wall0() -> Timestamp {
        "2021-12-10T03:00:00Z".parse().expect("ts")
    }

    fn at(t0: Instant, wall0: Timestamp, elapsed: Duration) -> Now {
        Now {
            monotonic: t0 + elapsed,
            wall: wall0 + elapsed,
        }
    }

    fn record() -> CallRecord {
        CallRecord::new(
            "call-1".into(),
            LEG,
            Some("0903123678".into()),
            Some("9090".into()),
            system_time(Call::wall0()),
        )
    }

    /// An inbound call, ringing with a 1 s answer delay.
    fn inbound() -> (Call, Vec<String>) {
        let (t0, wall0) = (Instant::now(), Call::wall0());
        let session = CallSession::inbound(
            setup(DialplanStart::OnAck),
            Call::record(),
            Duration::from_secs(1),
            Call::at(t0, wall0, Duration::ZERO),
        );
        let mut call = Call {
            session,
            t0,
            wall0,
            elapsed: Duration::ZERO,
        };
        let out = call.drain();
        (call, out)
    }

    /// An answered call whose dialplan starts at once (outbound).
    fn answered() -> (Call, Vec<String>) {
        let (t0, wall0) = (Instant::now(), Call::wall0());
        let session = CallSession::answered(
            setup(DialplanStart::Now),
            Call::record(),
            Call::at(t0, wall0, Duration::ZERO),
        );
        let mut call = Call {
            session,
            t0,
            wall0,
            elapsed: Duration::ZERO,
        };
        let out = call.drain();
        (call, out)
    }

    fn now(&self) -> Now {
        Call::at(self.t0, self.wall0, self.elapsed)
    }

    fn advance(&mut self, ms: u64) {
        self.elapsed += Duration::from_millis(ms);
    }

    fn feed(&mut self, input: Input) -> Vec<String> {
        self.session.handle(self.now(), input);
        self.drain()
    }

    /// Moves the clock to the session's next timer and fires it.
    fn fire(&mut self) -> Vec<String> {
        let at = self.session.poll_timeout().expect("a timer is set");
        self.elapsed = at.duration_since(self.t0);
        self.session.handle_timeout(self.now());
        self.drain()
    }

    fn drain(&mut self) -> Vec<String> {
        let mut shown = Vec::new();
        while let Some(out) = self.session.poll_output() {
            shown.push(show(&out));
        }
        shown
    }

    /// The prompts of the last play finished (in the current epoch).
    fn finish_prompts(&mut self, epoch: u32, ids: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        for id in ids {
            out.extend(self.feed(Input::Media(MediaNotice::PromptFinished {
                epoch,
                id: id.to_string(),
                frames_sent: 1,
            })));
        }
        out
    }

    fn rfc4733(&mut self, digit: char) -> Vec<String> {
        let at = self.now().monotonic;
        self.feed(Input::Media(MediaNotice::Digit(DigitEvent {
            digit,
            at,
            duration_ms: 100,
            source: DigitSource::Rfc4733,
        })))
    }

    fn info(&mut self, digit: char) -> Vec<String> {
        let at = self.now().monotonic;
        self.feed(Input::Leg(LegEvent::Info {
            leg: LEG,
            content_type: "application/dtmf-relay".into(),
            body: format!("Signal={digit}\r\nDuration=160\r\n").into_bytes(),
            at,
        }))
    }

    fn bye(&mut self) -> Vec<String> {
        self.feed(Input::Leg(LegEvent::Terminated {
            leg: LEG,
            reason: EndReason::RemoteBye,
        }))
    }

    fn closed(&mut self) -> Vec<String> {
        self.feed(Input::MediaClosed(Some(MediaFinal {
            stats: MediaStats {
                packets_sent: 50,
                ..MediaStats::default()
            },
            cut_short: None,
        })))
    }

    fn filed(&self) -> &CallRecord {
        assert!(self.session.is_done(), "the record is filed");
        self.session.record()
    }

    /// Answered outbound call, greeting played: the menu is playing (epoch 2).
    fn at_menu() -> Call {
        let (mut call, _) = Call::answered();
        let out = call.finish_prompts(1, &["greeting"]);
        assert_eq!(out, ["play#2 menu", "publish"]);
        call
    }
}

fn show(out: &Output) -> String {
    match out {
        Output::Sip(Command::Ringing { .. }) => "ringing".into(),
        Output::Sip(Command::Answer { sdp, .. }) => format!("answer {}", sdp_version(sdp)),
        Output::Sip(Command::Reject { status, .. }) => format!("reject {status}"),
        Output::Sip(Command::AnswerReoffer { sdp, .. }) => {
            format!("reoffer answer {}", sdp_version(sdp))
        }
        Output::Sip(Command::RejectReoffer { status, .. }) => format!("reoffer reject {status}"),
        Output::Sip(Command::Hangup { .. }) => "bye".into(),
        Output::Sip(Command::Cancel { .. }) => "cancel".into(),
        Output::Sip(Command::Refer { target, .. }) => format!("refer {target}"),
        Output::StartMedia(p) => format!("media start {:?}", p.local_direction),
        Output::UpdateMedia(p) => format!("media update {:?}", p.local_direction),
        Output::PlayPrompts { epoch, prompts } => {
            let ids: Vec<&str> = prompts.iter().map(|p| p.id.as_str()).collect();
            format!("play#{epoch} {}", ids.join(" "))
        }
        Output::StopPrompts { epoch } => format!("stop#{epoch}"),
        Output::StartAction { name, .. } => format!("action {name}"),
        Output::PublishRecord => "publish".into(),
        Output::CloseMedia => "close media".into(),
        Output::FileRecord(r) => format!("file {}", r.end_reason),
    }
}

/// The `o=` line's session version of an SDP we rendered.
fn sdp_version(sdp: &[u8]) -> String {
    let text = String::from_utf8_lossy(sdp);
    let origin = text
        .lines()
        .find(|l| l.starts_with("o="))
        .unwrap_or_default();
    format!("v{}", origin.split(' ').nth(2).unwrap_or("?"))
}

#[test]
fn an_inbound_call_rings_then_answers_and_the_menu_starts_on_the_ack() {
    let (mut call, out) = Call::inbound();
    assert_eq!(out, ["publish", "ringing"]);
    assert_eq!(
        call.session.poll_timeout(),
        Some(call.t0 + Duration::from_secs(1)),
        "answered after the answer delay"
    );
    assert_eq!(
        call.fire(),
        ["answer v1", "media start SendRecv", "publish"],
        "no dialplan before the ACK"
    );
    let answered = call.session.record();
    assert_eq!(answered.final_status, Some(200));
    assert_eq!(
        answered.answered_at,
        Some(system_time(Call::wall0() + Duration::from_secs(1))),
        "answered at the time fed"
    );
    assert_eq!(answered.codec.as_deref(), Some("PCMU"));
    assert_eq!(answered.dialplan.as_deref(), Some("test"));
    assert_eq!(
        call.feed(Input::Leg(LegEvent::Confirmed { leg: LEG })),
        ["play#1 greeting", "publish"]
    );
    assert_eq!(call.session.record().ivr_node.as_deref(), Some("greet"));
}

#[test]
fn cancel_while_ringing_files_a_487_without_media() {
    let (mut call, _) = Call::inbound();
    call.advance(300);
    let out = call.feed(Input::Leg(LegEvent::Terminated {
        leg: LEG,
        reason: EndReason::Cancelled,
    }));
    assert_eq!(out, ["file cancelled"]);
    let r = call.filed();
    assert_eq!(r.final_status, Some(487));
    assert_eq!(r.answered_at, None);
    assert_eq!(
        r.ended_at,
        Some(system_time(Call::wall0() + Duration::from_millis(300)))
    );
}

#[test]
fn shutdown_while_ringing_refuses_with_503() {
    let (mut call, _) = Call::inbound();
    assert_eq!(call.feed(Input::Shutdown), ["reject 503", "file shutdown"]);
    assert_eq!(call.filed().final_status, Some(503));
}

#[test]
fn a_digit_during_a_barge_in_prompt_stops_it_and_the_stale_finish_is_ignored() {
    let mut call = Call::at_menu();
    // The caller presses 3 while the menu plays: the menu stops, `details` plays (the
    // missing prompt skipped) in a new epoch.
    let out = call.rfc4733('3');
    assert_eq!(out, ["stop#3", "play#4 details", "publish"]);
    // The menu's PromptFinished crossed the stop on its way: recorded, but the engine is
    // still waiting for `details`.
    let out = call.finish_prompts(2, &["menu"]);
    assert_eq!(
        out,
        Vec::<String>::new(),
        "a stale epoch does not move the dialplan"
    );
    assert_eq!(call.session.ivr_node(), Some("details"));
    // `details` of the current epoch does.
    assert_eq!(
        call.finish_prompts(4, &["details"]),
        ["play#5 menu", "publish"]
    );
    assert_eq!(call.session.ivr_node(), Some("main"));
    let prompts: Vec<(&str, bool)> = call
        .session
        .record()
        .prompts
        .iter()
        .map(|p| (p.id.as_str(), p.completed))
        .collect();
    assert_eq!(
        prompts,
        [("greeting", true), ("menu", true), ("details", true)]
    );
}

#[test]
fn info_and_rfc4733_digits_are_both_fed_and_counted_per_method() {
    let mut call = Call::at_menu();
    // An INFO digit barges in like an RFC 4733 one.
    assert_eq!(call.info('3'), ["stop#3", "play#4 details", "publish"]);
    call.finish_prompts(4, &["details"]);
    assert_eq!(call.rfc4733('1'), ["stop#6", "action register", "publish"]);
    let r = call.session.record();
    assert_eq!(r.digits, "31");
    assert_eq!(
        r.digit_methods,
        DigitMethods {
            rfc4733: 1,
            info: 1
        }
    );
    // An INFO body that is not a digit changes nothing.
    let out = call.feed(Input::Leg(LegEvent::Info {
        leg: LEG,
        content_type: "application/json".into(),
        body: b"{}".to_vec(),
        at: call.now().monotonic,
    }));
    assert_eq!(out, Vec::<String>::new());
    assert_eq!(call.session.record().digits, "31");
}

#[test]
fn bye_while_an_action_runs_files_the_record_only_after_its_result() {
    let mut call = Call::at_menu();
    call.rfc4733('1');
    call.advance(2_000);
    // The caller hangs up while `register` writes.
    assert_eq!(call.bye(), Vec::<String>::new(), "nothing until the result");
    assert!(!call.session.is_done());
    assert_eq!(
        call.session.poll_timeout(),
        None,
        "no dialplan timer any more"
    );
    // A digit or a re-INVITE after the end changes nothing.
    assert_eq!(call.rfc4733('9'), Vec::<String>::new());
    call.advance(500);
    let out = call.feed(Input::ActionFinished {
        outcome: "registered".into(),
        vars: vec![("registration_id".into(), "12".into())],
    });
    assert_eq!(out, ["close media"], "the finished dialplan does not go on");
    assert_eq!(call.closed(), ["file remote_bye"]);
    let r = call.filed();
    assert_eq!(r.digits, "1");
    assert_eq!(r.ivr_path, ["greet", "main", "register"]);
    assert_eq!(r.rtp_packets_sent, 50);
    assert_eq!(
        r.ended_at,
        Some(system_time(Call::wall0() + Duration::from_millis(2_500))),
        "ended when the last result was in"
    );
}

#[test]
fn an_action_result_continues_the_dialplan_to_its_hangup() {
    let mut call = Call::at_menu();
    call.rfc4733('1');
    let out = call.feed(Input::ActionFinished {
        outcome: "registered".into(),
        vars: Vec::new(),
    });
    assert_eq!(out, ["play#4 success", "publish"]);
    // A prompt stopped as the call closes is recorded as cut short.
    assert_eq!(call.finish_prompts(4, &["success"]), ["bye", "close media"]);
    call.feed(Input::Media(MediaNotice::PromptStopped {
        id: "late".into(),
        frames_sent: 3,
    }));
    assert_eq!(call.closed(), ["file local_bye"]);
    let r = call.filed();
    assert_eq!(r.ivr_node.as_deref(), Some("done"));
    assert_eq!(
        r.prompts.last(),
        Some(&PromptPlay {
            id: "late".into(),
            frames_sent: 3,
            completed: false
        })
    );
}

#[test]
fn inactivity_ends_the_call_with_rtp_timeout() {
    let mut call = Call::at_menu();
    let out = call.feed(Input::Media(MediaNotice::Inactive));
    assert_eq!(out, ["bye", "close media"]);
    assert_eq!(call.closed(), ["file rtp_timeout"]);
    assert_eq!(call.filed().final_status, Some(200));
}

#[test]
fn a_lost_media_session_ends_the_call() {
    let mut call = Call::at_menu();
    assert_eq!(call.feed(Input::MediaGone), ["bye", "close media"]);
    assert_eq!(call.feed(Input::MediaClosed(None)), ["file media_failed"]);
}

#[test]
fn the_records_ivr_node_follows_the_engine() {
    let (mut call, out) = Call::answered();
    assert_eq!(
        out,
        [
            "media start SendRecv",
            "publish",
            "play#1 greeting",
            "publish"
        ]
    );
    assert_eq!(call.session.record().ivr_node.as_deref(), Some("greet"));
    call.finish_prompts(1, &["greeting"]);
    assert_eq!(call.session.record().ivr_node.as_deref(), Some("main"));
    call.finish_prompts(2, &["menu"]);
    // Silence: the menu's timer replays it with the timeout prompt, same node, nothing
    // new to publish.
    assert_eq!(call.fire(), ["play#3 no_input menu"]);
    assert_eq!(
        call.elapsed,
        Duration::from_secs(5),
        "the first-digit timer"
    );
    call.finish_prompts(3, &["no_input", "menu"]);
    // The second timeout exits to `bye`.
    assert_eq!(call.fire(), ["play#4 goodbye", "publish"]);
    assert_eq!(call.session.record().ivr_node.as_deref(), Some("bye"));
}

#[test]
fn a_transfer_refers_the_caller_and_ends_on_the_notify() {
    let mut call = Call::at_menu();
    assert_eq!(
        call.rfc4733('2'),
        ["stop#3", "refer sip:18001090@192.0.2.1:5060", "publish"]
    );
    let out = call.feed(Input::Leg(LegEvent::ReferAnswered {
        leg: LEG,
        status: Some(202),
    }));
    assert_eq!(out, Vec::<String>::new());
    let out = call.feed(Input::Leg(LegEvent::TransferProgress {
        leg: LEG,
        status: 100,
    }));
    assert_eq!(out, Vec::<String>::new());
    let out = call.feed(Input::Leg(LegEvent::TransferProgress {
        leg: LEG,
        status: 200,
    }));
    assert_eq!(out, ["bye", "close media"]);
    assert_eq!(call.closed(), ["file transferred"]);
}

#[test]
fn a_refused_refer_ends_the_call_as_transfer_failed() {
    let mut call = Call::at_menu();
    call.rfc4733('2');
    let out = call.feed(Input::Leg(LegEvent::ReferAnswered {
        leg: LEG,
        status: Some(403),
    }));
    assert_eq!(out, ["bye", "close media"]);
    assert_eq!(call.closed(), ["file transfer_failed"]);
}

#[test]
fn a_reinvite_is_answered_with_the_next_sdp_version_or_refused() {
    let mut call = Call::at_menu();
    let out = call.feed(Input::Leg(LegEvent::Reoffer {
        leg: LEG,
        sdp: HOLD.as_bytes().to_vec(),
    }));
    assert_eq!(out, ["media update RecvOnly", "reoffer answer v2"]);
    let out = call.feed(Input::Leg(LegEvent::Reoffer {
        leg: LEG,
        sdp: b"not sdp".to_vec(),
    }));
    assert_eq!(out, ["reoffer reject 488"]);
    assert_eq!(call.session.record().reoffers, 2);
}

#[test]
fn at_shutdown_an_answered_call_gets_the_grace_then_bye() {
    let mut call = Call::at_menu();
    call.advance(1_000);
    assert_eq!(call.feed(Input::Shutdown), Vec::<String>::new());
    // The menu's first-digit timer (5 s) comes first and replays it.
    call.finish_prompts(2, &["menu"]);
    assert_eq!(call.fire(), ["play#3 no_input menu"]);
    call.finish_prompts(3, &["no_input", "menu"]);
    call.advance(1_000);
    // A second shutdown notice does not push the deadline.
    call.feed(Input::Shutdown);
    assert_eq!(call.fire(), ["play#4 goodbye", "publish"]);
    assert_eq!(call.fire(), ["bye", "close media"]);
    assert_eq!(call.elapsed, Duration::from_secs(31), "30 s grace from 1 s");
    assert_eq!(call.closed(), ["file shutdown"]);
}

#[test]
fn the_sip_driver_going_away_ends_the_call_without_a_bye() {
    let mut call = Call::at_menu();
    assert_eq!(call.feed(Input::LegGone), ["close media"]);
    assert_eq!(call.closed(), ["file shutdown"]);
}
