//! Transaction and dialog behaviour in virtual time: no sockets, no sleeping.

use std::time::Duration;

use super::*;

const PEER: &str = "127.0.0.1:5061";

fn cfg() -> EndpointConfig {
    EndpointConfig {
        advertised: "127.0.0.1:5060".parse().unwrap(),
        timers: Timers::default(),
        user_agent: "tongdai-test".into(),
        max_legs: 10,
    }
}

fn udp() -> Flow {
    Flow::Udp(PEER.parse().unwrap())
}

fn invite(call_id: &str, branch: &str) -> String {
    let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\n";
    format!(
        "INVITE sip:9090@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch={branch};rport\r\n\
Record-Route: <sip:127.0.0.9:5060;lr>\r\n\
From: \"Sub\" <sip:0903123678@127.0.0.1:5061>;tag=from1\r\n\
To: <sip:9090@127.0.0.1:5060>\r\n\
Call-ID: {call_id}\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:0903123678@127.0.0.1:5061>\r\n\
P-Asserted-Identity: <sip:+84903123678@trunk>\r\n\
Max-Forwards: 70\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

fn in_dialog(
    method: &str,
    call_id: &str,
    to_tag: &str,
    cseq: u32,
    branch: &str,
    extra: &str,
) -> String {
    let cseq_method = if method == "ACK" { "ACK" } else { method };
    format!(
        "{method} sip:9090@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch={branch};rport\r\n\
From: \"Sub\" <sip:0903123678@127.0.0.1:5061>;tag=from1\r\n\
To: <sip:9090@127.0.0.1:5060>;tag={to_tag}\r\n\
Call-ID: {call_id}\r\n\
CSeq: {cseq} {cseq_method}\r\n\
Max-Forwards: 70\r\n{extra}\
Content-Length: 0\r\n\r\n"
    )
}

fn drain(ep: &mut Endpoint) -> (Vec<String>, Vec<LegEvent>) {
    let mut sent = Vec::new();
    let mut events = Vec::new();
    while let Some(o) = ep.poll_output() {
        match o {
            Output::Transmit { bytes, .. } => sent.push(String::from_utf8(bytes).unwrap()),
            Output::Event(e) => events.push(e),
            Output::Trunk(_) => {}
        }
    }
    (sent, events)
}

fn status_line(s: &str) -> &str {
    s.lines().next().unwrap()
}

fn to_tag_of(resp: &str) -> String {
    let to = resp.lines().find(|l| l.starts_with("To:")).unwrap();
    to.split("tag=").nth(1).unwrap().trim().to_string()
}

/// Runs every timer up to `until`, stepping from deadline to deadline like the driver.
fn run_until(ep: &mut Endpoint, until: Instant) -> (Vec<(Instant, String)>, Vec<LegEvent>) {
    let mut sent = Vec::new();
    let mut events = Vec::new();
    while let Some(at) = ep.poll_timeout() {
        if at > until {
            break;
        }
        ep.handle_timeout(at);
        let (s, e) = drain(ep);
        sent.extend(s.into_iter().map(|m| (at, m)));
        events.extend(e);
    }
    (sent, events)
}

/// An answered, confirmed call; returns (leg, our tag, t0).
fn confirmed_call(ep: &mut Endpoint, t0: Instant) -> (LegId, String) {
    ep.handle_bytes(t0, udp(), invite("c1", "z9hG4bK-inv").as_bytes());
    let (_, events) = drain(ep);
    let LegEvent::Incoming(call) = &events[0] else {
        panic!("expected Incoming, got {events:?}")
    };
    let leg = call.leg;
    ep.handle_command(
        t0,
        Command::Answer {
            leg,
            sdp: b"v=0\r\n".to_vec(),
        },
    );
    let (sent, _) = drain(ep);
    let tag = to_tag_of(&sent[0]);
    ep.handle_bytes(
        t0,
        udp(),
        in_dialog("ACK", "c1", &tag, 1, "z9hG4bK-ack", "").as_bytes(),
    );
    let (_, events) = drain(ep);
    assert!(matches!(events[0], LegEvent::Confirmed { .. }));
    (leg, tag)
}

#[test]
fn invite_is_answered_100_180_200_and_ack_confirms() {
    let mut ep = Endpoint::new(cfg());
    let t0 = Instant::now();
    ep.handle_bytes(t0, udp(), invite("c1", "z9hG4bK-1").as_bytes());
    let (sent, events) = drain(&mut ep);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 100 Trying");
    assert!(
        !sent[0].contains("tag=") || sent[0].matches("tag=").count() == 1,
        "no To tag on 100"
    );
    let LegEvent::Incoming(call) = &events[0] else {
        panic!("{events:?}")
    };
    assert_eq!(call.called.as_deref(), Some("9090"));
    assert_eq!(
        call.caller.as_deref(),
        Some("+84903123678"),
        "P-Asserted-Identity wins"
    );
    assert!(!call.sdp.is_empty());
    let leg = call.leg;

    ep.handle_command(t0, Command::Ringing { leg });
    let (sent, _) = drain(&mut ep);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 180 Ringing");
    assert!(sent[0].contains("Record-Route: <sip:127.0.0.9:5060;lr>"));
    let tag = to_tag_of(&sent[0]);

    ep.handle_command(
        t0,
        Command::Answer {
            leg,
            sdp: b"v=0\r\nanswer\r\n".to_vec(),
        },
    );
    let (sent, _) = drain(&mut ep);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 200 OK");
    assert_eq!(to_tag_of(&sent[0]), tag, "same tag in 180 and 200");
    assert!(sent[0].contains("Content-Type: application/sdp"));
    assert!(sent[0].contains("Contact: <sip:9090@127.0.0.1:5060>"));
    assert!(sent[0].ends_with("v=0\r\nanswer\r\n"));

    ep.handle_bytes(
        t0,
        udp(),
        in_dialog("ACK", "c1", &tag, 1, "z9hG4bK-a", "").as_bytes(),
    );
    let (sent, events) = drain(&mut ep);
    assert!(sent.is_empty());
    assert!(matches!(events[..], [LegEvent::Confirmed { leg: l }] if l == leg));
    // ACK stopped the 2xx retransmissions.
    let (sent, _) = run_until(&mut ep, t0 + Duration::from_secs(40));
    assert!(sent.is_empty(), "{sent:?}");
}

#[test]
fn retransmitted_invite_gets_the_last_response_again() {
    let mut ep = Endpoint::new(cfg());
    let t0 = Instant::now();
    ep.handle_bytes(t0, udp(), invite("c1", "z9hG4bK-1").as_bytes());
    let (_, events) = drain(&mut ep);
    assert_eq!(events.len(), 1);
    let LegEvent::Incoming(call) = &events[0] else {
        panic!()
    };
    ep.handle_command(t0, Command::Ringing { leg: call.leg });
    drain(&mut ep);
    ep.handle_bytes(t0, udp(), invite("c1", "z9hG4bK-1").as_bytes());
    let (sent, events) = drain(&mut ep);
    assert!(events.is_empty(), "a retransmission is not a new call");
    assert_eq!(status_line(&sent[0]), "SIP/2.0 180 Ringing");
}

#[test]
fn missing_ack_retransmits_200_then_gives_up_with_bye() {
    let mut ep = Endpoint::new(cfg());
    let t0 = Instant::now();
    ep.handle_bytes(t0, udp(), invite("c1", "z9hG4bK-1").as_bytes());
    let (_, events) = drain(&mut ep);
    let LegEvent::Incoming(call) = &events[0] else {
        panic!()
    };
    let leg = call.leg;
    ep.handle_command(
        t0,
        Command::Answer {
            leg,
            sdp: b"v=0\r\n".to_vec(),
        },
    );
    drain(&mut ep);
    let (sent, events) = run_until(&mut ep, t0 + Duration::from_secs(33));
    let retransmits: Vec<_> = sent
        .iter()
        .filter(|(_, m)| m.starts_with("SIP/2.0 200"))
        .map(|(at, _)| at.duration_since(t0).as_millis())
        .collect();
    // T1 doubling, capped at T2 = 4 s: 0.5, 1.5, 3.5, 7.5, 11.5, ... until 32 s.
    assert_eq!(&retransmits[..4], &[500, 1500, 3500, 7500]);
    assert!(retransmits.windows(2).all(|w| w[1] - w[0] <= 4000));
    let bye = sent
        .iter()
        .find(|(_, m)| m.starts_with("BYE "))
        .expect("BYE after Timer H");
    assert_eq!(bye.0.duration_since(t0), Duration::from_secs(32));
    assert!(events.iter().any(|e| matches!(
        e,
        LegEvent::Terminated {
            reason: EndReason::AckTimeout,
            ..
        }
    )));
}

#[test]
fn cancel_before_answer_gives_200_and_487_and_the_487_is_retransmitted_until_ack() {
    let mut ep = Endpoint::new(cfg());
    let t0 = Instant::now();
    ep.handle_bytes(t0, udp(), invite("c1", "z9hG4bK-9").as_bytes());
    let (_, events) = drain(&mut ep);
    let LegEvent::Incoming(call) = &events[0] else {
        panic!()
    };
    ep.handle_command(t0, Command::Ringing { leg: call.leg });
    drain(&mut ep);
    let cancel = "CANCEL sip:9090@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-9;rport\r\n\
From: \"Sub\" <sip:0903123678@127.0.0.1:5061>;tag=from1\r\n\
To: <sip:9090@127.0.0.1:5060>\r\nCall-ID: c1\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    ep.handle_bytes(t0, udp(), cancel.as_bytes());
    let (sent, events) = drain(&mut ep);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 200 OK");
    assert!(sent[0].contains("CSeq: 1 CANCEL"));
    assert_eq!(status_line(&sent[1]), "SIP/2.0 487 Request Terminated");
    assert!(matches!(
        events[..],
        [LegEvent::Terminated {
            reason: EndReason::Cancelled,
            ..
        }]
    ));
    // No ACK yet: Timer G retransmits the 487.
    let (sent, _) = run_until(&mut ep, t0 + Duration::from_millis(600));
    assert_eq!(sent.len(), 1);
    assert!(sent[0].1.starts_with("SIP/2.0 487"));
    // ACK (same branch as the INVITE) stops it; Timer I then ends the transaction.
    let ack = "ACK sip:9090@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-9;rport\r\n\
From: \"Sub\" <sip:0903123678@127.0.0.1:5061>;tag=from1\r\n\
To: <sip:9090@127.0.0.1:5060>;tag=x\r\nCall-ID: c1\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    ep.handle_bytes(t0 + Duration::from_millis(700), udp(), ack.as_bytes());
    let (sent, _) = run_until(&mut ep, t0 + Duration::from_secs(60));
    assert!(sent.is_empty());
    assert_eq!(
        ep.transactions(),
        0,
        "all transactions gone after Timers I and J"
    );
    assert_eq!(ep.active_legs(), 0);
}

#[test]
fn unacknowledged_non_2xx_ends_at_timer_h() {
    let mut ep = Endpoint::new(cfg());
    let t0 = Instant::now();
    ep.handle_bytes(t0, udp(), invite("c1", "z9hG4bK-2").as_bytes());
    let (_, events) = drain(&mut ep);
    let LegEvent::Incoming(call) = &events[0] else {
        panic!()
    };
    ep.handle_command(
        t0,
        Command::Reject {
            leg: call.leg,
            status: 404,
        },
    );
    let (sent, _) = drain(&mut ep);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 404 Not Found");
    let (sent, _) = run_until(&mut ep, t0 + Duration::from_secs(40));
    let times: Vec<u128> = sent
        .iter()
        .map(|(at, _)| at.duration_since(t0).as_millis())
        .collect();
    assert_eq!(
        &times[..4],
        &[500, 1500, 3500, 7500],
        "Timer G doubles up to T2"
    );
    assert!(times.iter().all(|&t| t < 32_000));
    assert_eq!(ep.transactions(), 0, "Timer H removed the transaction");
}

#[test]
fn tcp_needs_no_retransmissions() {
    let mut ep = Endpoint::new(cfg());
    let t0 = Instant::now();
    let flow = Flow::Tcp {
        conn: 7,
        remote: PEER.parse().unwrap(),
    };
    ep.handle_bytes(t0, flow, invite("c1", "z9hG4bK-3").as_bytes());
    let (_, events) = drain(&mut ep);
    let LegEvent::Incoming(call) = &events[0] else {
        panic!()
    };
    ep.handle_command(
        t0,
        Command::Reject {
            leg: call.leg,
            status: 486,
        },
    );
    let (sent, _) = drain(&mut ep);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 486 Busy Here");
    let (sent, _) = run_until(&mut ep, t0 + Duration::from_secs(40));
    assert!(sent.is_empty());
}

#[test]
fn remote_bye_is_answered_once_and_retransmissions_absorbed() {
    let mut ep = Endpoint::new(cfg());
    let t0 = Instant::now();
    let (leg, tag) = confirmed_call(&mut ep, t0);
    let bye = in_dialog("BYE", "c1", &tag, 2, "z9hG4bK-bye", "");
    ep.handle_bytes(t0, udp(), bye.as_bytes());
    let (sent, events) = drain(&mut ep);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 200 OK");
    assert!(
        matches!(events[..], [LegEvent::Terminated { leg: l, reason: EndReason::RemoteBye }] if l == leg)
    );
    ep.handle_bytes(t0, udp(), bye.as_bytes());
    let (sent, events) = drain(&mut ep);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 200 OK", "same answer again");
    assert!(events.is_empty());
    // A new BYE for the finished dialog: 481.
    ep.handle_bytes(
        t0,
        udp(),
        in_dialog("BYE", "c1", &tag, 3, "z9hG4bK-bye2", "").as_bytes(),
    );
    let (sent, _) = drain(&mut ep);
    assert_eq!(
        status_line(&sent[0]),
        "SIP/2.0 481 Call/Transaction Does Not Exist"
    );
}

#[test]
fn local_hangup_sends_a_proper_bye_and_retransmits_it() {
    let mut ep = Endpoint::new(cfg());
    let t0 = Instant::now();
    let (leg, tag) = confirmed_call(&mut ep, t0);
    ep.handle_command(t0, Command::Hangup { leg });
    let (sent, _) = drain(&mut ep);
    let bye = &sent[0];
    assert!(
        bye.starts_with("BYE sip:0903123678@127.0.0.1:5061 SIP/2.0\r\n"),
        "{bye}"
    );
    assert!(
        bye.contains(&format!("From: <sip:9090@127.0.0.1:5060>;tag={tag}")),
        "{bye}"
    );
    assert!(bye.contains("To: \"Sub\" <sip:0903123678@127.0.0.1:5061>;tag=from1"));
    assert!(bye.contains("CSeq: 2 BYE"));
    assert!(bye.contains("Route: <sip:127.0.0.9:5060;lr>"));
    // Timer E retransmits it.
    let (sent, _) = run_until(&mut ep, t0 + Duration::from_millis(510));
    assert_eq!(sent.len(), 1);
    assert!(sent[0].1.starts_with("BYE "));
    // The peer answers 200: ByeCompleted, and nothing more is sent.
    let branch = message::header_param(
        bye.lines().find(|l| l.starts_with("Via:")).unwrap(),
        "branch",
    )
    .unwrap()
    .to_string();
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch};rport\r\n\
From: <sip:9090@127.0.0.1:5060>;tag={tag}\r\nTo: <sip:0903123678@127.0.0.1:5061>;tag=from1\r\n\
Call-ID: c1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    ep.handle_bytes(t0 + Duration::from_millis(600), udp(), ok.as_bytes());
    let (_, events) = drain(&mut ep);
    assert!(
        matches!(events[..], [LegEvent::ByeCompleted { leg: l, status: Some(200) }] if l == leg)
    );
    let (sent, _) = run_until(&mut ep, t0 + Duration::from_secs(60));
    assert!(sent.is_empty());
    assert_eq!(ep.active_legs(), 0);
    assert_eq!(ep.transactions(), 0);
}

#[test]
fn bye_without_answer_times_out_with_timer_f() {
    let mut ep = Endpoint::new(cfg());
    let t0 = Instant::now();
    let (leg, _) = confirmed_call(&mut ep, t0);
    ep.handle_command(t0, Command::Hangup { leg });
    drain(&mut ep);
    let (sent, events) = run_until(&mut ep, t0 + Duration::from_secs(40));
    assert!(sent.len() >= 6, "Timer E retransmissions");
    assert!(matches!(
        events[..],
        [LegEvent::ByeCompleted { status: None, .. }]
    ));
    assert_eq!(ep.active_legs(), 0);
}

#[test]
fn hangup_before_ack_waits_for_the_ack() {
    let mut ep = Endpoint::new(cfg());
    let t0 = Instant::now();
    ep.handle_bytes(t0, udp(), invite("c1", "z9hG4bK-1").as_bytes());
    let (_, events) = drain(&mut ep);
    let LegEvent::Incoming(call) = &events[0] else {
        panic!()
    };
    let leg = call.leg;
    ep.handle_command(
        t0,
        Command::Answer {
            leg,
            sdp: b"v=0\r\n".to_vec(),
        },
    );
    let (sent, _) = drain(&mut ep);
    let tag = to_tag_of(&sent[0]);
    ep.handle_command(t0, Command::Hangup { leg });
    let (sent, _) = drain(&mut ep);
    assert!(sent.is_empty(), "no BYE before the ACK (RFC 3261 §15)");
    ep.handle_bytes(
        t0,
        udp(),
        in_dialog("ACK", "c1", &tag, 1, "z9hG4bK-a", "").as_bytes(),
    );
    let (sent, _) = drain(&mut ep);
    assert!(sent[0].starts_with("BYE "));
}

#[test]
fn reinvite_hold_is_offered_to_the_call_and_answered() {
    let mut ep = Endpoint::new(cfg());
    let t0 = Instant::now();
    let (leg, tag) = confirmed_call(&mut ep, t0);
    let reinvite = in_dialog("INVITE", "c1", &tag, 2, "z9hG4bK-re", "");
    ep.handle_bytes(t0, udp(), reinvite.as_bytes());
    let (sent, events) = drain(&mut ep);
    assert!(sent.is_empty());
    assert!(matches!(events[..], [LegEvent::Reoffer { leg: l, .. }] if l == leg));
    ep.handle_command(
        t0,
        Command::AnswerReoffer {
            leg,
            sdp: b"v=0\r\na=recvonly\r\n".to_vec(),
        },
    );
    let (sent, _) = drain(&mut ep);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 200 OK");
    assert!(sent[0].contains("CSeq: 2 INVITE"));
    assert!(sent[0].contains(&format!("tag={tag}")));
    ep.handle_bytes(
        t0,
        udp(),
        in_dialog("ACK", "c1", &tag, 2, "z9hG4bK-a2", "").as_bytes(),
    );
    let (sent, events) = drain(&mut ep);
    assert!(sent.is_empty() && events.is_empty());
    let (sent, _) = run_until(&mut ep, t0 + Duration::from_secs(2));
    assert!(
        sent.is_empty(),
        "ACK stopped the re-INVITE 2xx retransmission"
    );
    // A re-INVITE with an older CSeq is refused with 500.
    ep.handle_bytes(
        t0,
        udp(),
        in_dialog("INVITE", "c1", &tag, 1, "z9hG4bK-old", "").as_bytes(),
    );
    let (sent, _) = drain(&mut ep);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 500 Server Internal Error");
}

#[test]
fn info_in_dialog_is_delivered_and_outside_is_481() {
    let mut ep = Endpoint::new(cfg());
    let t0 = Instant::now();
    let (leg, tag) = confirmed_call(&mut ep, t0);
    let info = in_dialog(
        "INFO",
        "c1",
        &tag,
        2,
        "z9hG4bK-info",
        "Content-Type: application/dtmf-relay\r\n",
    );
    ep.handle_bytes(t0, udp(), info.as_bytes());
    let (sent, events) = drain(&mut ep);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 200 OK");
    assert!(
        matches!(&events[..], [LegEvent::Info { leg: l, content_type, .. }] if *l == leg && content_type == "application/dtmf-relay")
    );
    ep.handle_bytes(
        t0,
        udp(),
        in_dialog("INFO", "zz", "nope", 2, "z9hG4bK-i2", "").as_bytes(),
    );
    let (sent, _) = drain(&mut ep);
    assert_eq!(
        status_line(&sent[0]),
        "SIP/2.0 481 Call/Transaction Does Not Exist"
    );
}

#[test]
fn options_register_and_message_are_answered() {
    let mut ep = Endpoint::new(cfg());
    let t0 = Instant::now();
    let options = "OPTIONS sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-o\r\n\
From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:127.0.0.1:5060>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n";
    ep.handle_bytes(t0, udp(), options.as_bytes());
    let (sent, _) = drain(&mut ep);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 200 OK");
    assert!(sent[0].contains("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY"));
    let message = options
        .replace("OPTIONS", "MESSAGE")
        .replace("z9hG4bK-o", "z9hG4bK-m");
    ep.handle_bytes(t0, udp(), message.as_bytes());
    let (sent, _) = drain(&mut ep);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 405 Method Not Allowed");
}

#[test]
fn draining_and_overload_refuse_new_calls_with_503() {
    let mut ep = Endpoint::new(EndpointConfig {
        max_legs: 1,
        ..cfg()
    });
    let t0 = Instant::now();
    ep.handle_bytes(t0, udp(), invite("c1", "z9hG4bK-1").as_bytes());
    let (_, events) = drain(&mut ep);
    assert_eq!(events.len(), 1);
    ep.handle_bytes(t0, udp(), invite("c2", "z9hG4bK-2").as_bytes());
    let (sent, events) = drain(&mut ep);
    assert!(events.is_empty());
    assert_eq!(status_line(&sent[0]), "SIP/2.0 503 Service Unavailable");
    assert!(sent[0].contains("Retry-After: 5"));

    let mut ep = Endpoint::new(cfg());
    ep.set_draining(true);
    ep.handle_bytes(t0, udp(), invite("c3", "z9hG4bK-3").as_bytes());
    let (sent, events) = drain(&mut ep);
    assert!(events.is_empty());
    assert_eq!(status_line(&sent[0]), "SIP/2.0 503 Service Unavailable");
}

#[test]
fn remote_bye_before_answer_ends_the_invite_with_487() {
    let mut ep = Endpoint::new(cfg());
    let t0 = Instant::now();
    ep.handle_bytes(t0, udp(), invite("c1", "z9hG4bK-1").as_bytes());
    let (_, events) = drain(&mut ep);
    let LegEvent::Incoming(call) = &events[0] else {
        panic!()
    };
    ep.handle_command(t0, Command::Ringing { leg: call.leg });
    let (sent, _) = drain(&mut ep);
    let tag = to_tag_of(&sent[0]);
    ep.handle_bytes(
        t0,
        udp(),
        in_dialog("BYE", "c1", &tag, 2, "z9hG4bK-b", "").as_bytes(),
    );
    let (sent, events) = drain(&mut ep);
    let lines: Vec<_> = sent.iter().map(|s| status_line(s)).collect();
    assert!(lines.contains(&"SIP/2.0 487 Request Terminated"));
    assert!(lines.contains(&"SIP/2.0 200 OK"));
    assert!(matches!(
        events[..],
        [LegEvent::Terminated {
            reason: EndReason::RemoteBye,
            ..
        }]
    ));
}

#[test]
fn refer_goes_out_in_dialog_and_notify_reports_progress() {
    let mut ep = Endpoint::new(cfg());
    let t0 = Instant::now();
    let (leg, tag) = confirmed_call(&mut ep, t0);
    ep.handle_command(
        t0,
        Command::Refer {
            leg,
            target: "sip:18001090@127.0.0.1:5060".into(),
        },
    );
    let (sent, _) = drain(&mut ep);
    let refer = &sent[0];
    assert!(
        refer.starts_with("REFER sip:0903123678@127.0.0.1:5061 SIP/2.0"),
        "{refer}"
    );
    assert!(refer.contains("Refer-To: <sip:18001090@127.0.0.1:5060>"));
    assert!(refer.contains("Referred-By: <sip:9090@127.0.0.1:5060>"));
    assert!(refer.contains("CSeq: 2 REFER"));
    let branch = message::header_param(
        refer.lines().find(|l| l.starts_with("Via:")).unwrap(),
        "branch",
    )
    .unwrap()
    .to_string();
    let accepted = format!(
        "SIP/2.0 202 Accepted\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n\
From: <sip:9090@127.0.0.1:5060>;tag={tag}\r\nTo: <sip:0903123678@127.0.0.1:5061>;tag=from1\r\n\
Call-ID: c1\r\nCSeq: 2 REFER\r\nContent-Length: 0\r\n\r\n"
    );
    ep.handle_bytes(t0, udp(), accepted.as_bytes());
    let (_, events) = drain(&mut ep);
    assert!(
        matches!(
            events[..],
            [LegEvent::ReferAnswered {
                status: Some(202),
                ..
            }]
        ),
        "{events:?}"
    );
    let frag = "SIP/2.0 200 OK\r\n";
    let notify = in_dialog(
        "NOTIFY",
        "c1",
        &tag,
        2,
        "z9hG4bK-n1",
        "Event: refer\r\nSubscription-State: terminated;reason=noresource\r\nContent-Type: message/sipfrag;version=2.0\r\n",
    )
    .replace("Content-Length: 0\r\n\r\n", &format!("Content-Length: {}\r\n\r\n{frag}", frag.len()));
    ep.handle_bytes(t0, udp(), notify.as_bytes());
    let (sent, events) = drain(&mut ep);
    assert_eq!(status_line(&sent[0]), "SIP/2.0 200 OK");
    assert!(matches!(
        events[..],
        [LegEvent::TransferProgress { status: 200, .. }]
    ));
}
