//! Outbound calls in virtual time: the INVITE client transaction, the UAC dialog,
//! CANCEL, digest auth, forks, the ACL, and the trunk's REGISTER / OPTIONS.

use std::time::{Duration, Instant};

use crate::acl::Acl;
use crate::auth::{Algorithm, Credentials, digest_response};
use crate::endpoint::{
    AccessConfig, Command, DialError, DialRequest, EndReason, Endpoint, EndpointConfig, FailCause,
    Flow, LegEvent, LegId, Output, Timers,
};
use crate::trunk::{TrunkConfig, TrunkState, TrunkTransport};

const TRUNK: &str = "127.0.0.1:5099";

fn trunk_cfg(transport: TrunkTransport, creds: bool) -> TrunkConfig {
    TrunkConfig {
        host: "127.0.0.1".into(),
        port: 5099,
        transport,
        caller_id: "9090".into(),
        p_asserted_identity: Some("9090".into()),
        credentials: creds.then(|| Credentials {
            username: "tongdai".into(),
            password: "s3cret".into(),
            realm: None,
        }),
        register: false,
        register_expires: Duration::from_secs(3600),
        retry_min: Duration::from_secs(5),
        retry_max: Duration::from_secs(60),
        options_interval: None,
    }
}

fn endpoint_with(trunk: Option<TrunkConfig>, acl: Acl) -> Endpoint {
    Endpoint::with_access(
        EndpointConfig {
            advertised: "127.0.0.1:5060".parse().unwrap(),
            timers: Timers::default(),
            user_agent: "tongdai-test".into(),
            max_legs: 10,
        },
        AccessConfig { acl, trunk },
    )
}

fn endpoint(transport: TrunkTransport, creds: bool, t0: Instant) -> Endpoint {
    let mut ep = endpoint_with(
        Some(trunk_cfg(transport, creds)),
        Acl::parse(&["127.0.0.1"]).unwrap(),
    );
    ep.set_trunk_addr(t0, TRUNK.parse().unwrap());
    drain(&mut ep);
    ep
}

struct Drained {
    sent: Vec<(Flow, String)>,
    events: Vec<LegEvent>,
    trunk: Vec<TrunkState<Instant>>,
}

fn drain_all(ep: &mut Endpoint) -> Drained {
    let mut d = Drained {
        sent: vec![],
        events: vec![],
        trunk: vec![],
    };
    while let Some(o) = ep.poll_output() {
        match o {
            Output::Transmit { flow, bytes } => {
                d.sent.push((flow, String::from_utf8(bytes).unwrap()))
            }
            Output::Event(e) => d.events.push(e),
            Output::Trunk(s) => d.trunk.push(s),
        }
    }
    d
}

fn drain(ep: &mut Endpoint) -> (Vec<String>, Vec<LegEvent>) {
    let d = drain_all(ep);
    (d.sent.into_iter().map(|(_, m)| m).collect(), d.events)
}

/// Runs every timer up to `until`.
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

fn hdr<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in\n{msg}"))
}

fn has_hdr(msg: &str, name: &str) -> bool {
    msg.lines().any(|l| {
        l.split_once(':')
            .is_some_and(|(n, _)| n.trim().eq_ignore_ascii_case(name))
    })
}

fn first_line(msg: &str) -> &str {
    msg.lines().next().unwrap()
}

fn branch(msg: &str) -> String {
    let via = hdr(msg, "Via");
    via.split(";branch=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

/// A response to `req` (our request as sent) from the far end.
fn reply(req: &str, status: u16, to_tag: Option<&str>, extra: &str, body: &str) -> Vec<u8> {
    let to = hdr(req, "To");
    let to = match to_tag {
        Some(t) if !to.contains("tag=") => format!("{to};tag={t}"),
        _ => to.to_string(),
    };
    let ct = if body.is_empty() {
        String::new()
    } else {
        "Content-Type: application/sdp\r\n".to_string()
    };
    format!(
        "SIP/2.0 {status} Whatever\r\nVia: {via}\r\nFrom: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\n\
CSeq: {cseq}\r\n{extra}{ct}Content-Length: {len}\r\n\r\n{body}",
        via = hdr(req, "Via"),
        from = hdr(req, "From"),
        cid = hdr(req, "Call-ID"),
        cseq = hdr(req, "CSeq"),
        len = body.len(),
    )
    .into_bytes()
}

fn trunk_flow() -> Flow {
    Flow::Udp(TRUNK.parse().unwrap())
}

fn dial(ep: &mut Endpoint, t0: Instant) -> (LegId, String) {
    let dialed = ep
        .dial(
            t0,
            DialRequest {
                target: "0903123678".into(),
                offer_sdp: b"v=0\r\noffer\r\n".to_vec(),
                extra_headers: vec![("X-Attempt".into(), "42".into())],
                ..Default::default()
            },
        )
        .unwrap();
    let (sent, events) = drain(ep);
    assert!(events.is_empty());
    assert_eq!(sent.len(), 1);
    assert_eq!(hdr(&sent[0], "Call-ID"), dialed.call_id);
    (dialed.leg, sent[0].clone())
}

const SDP_ANSWER: &str = "v=0\r\nanswer\r\n";
const CONTACT_2XX: &str = "Contact: <sip:0903123678@127.0.0.1:5077>\r\nRecord-Route: <sip:10.0.0.1;lr>, <sip:10.0.0.2;lr>\r\n";

/// Dial, 180, 200: returns (leg, invite, the 200 bytes).
fn answered(ep: &mut Endpoint, t0: Instant) -> (LegId, String, Vec<u8>) {
    let (leg, invite) = dial(ep, t0);
    ep.handle_bytes(
        t0,
        trunk_flow(),
        &reply(&invite, 180, Some("callee"), "", ""),
    );
    let ok = reply(&invite, 200, Some("callee"), CONTACT_2XX, SDP_ANSWER);
    ep.handle_bytes(t0, trunk_flow(), &ok);
    drain(ep);
    (leg, invite, ok)
}

#[test]
fn the_invite_goes_to_the_trunk_with_our_identity() {
    let t0 = Instant::now();
    let mut ep = endpoint(TrunkTransport::Udp, false, t0);
    let (_, invite) = dial(&mut ep, t0);
    assert_eq!(
        first_line(&invite),
        "INVITE sip:0903123678@127.0.0.1:5099 SIP/2.0"
    );
    assert!(hdr(&invite, "Via").starts_with("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK"));
    assert!(hdr(&invite, "From").starts_with("<sip:9090@127.0.0.1>;tag="));
    assert_eq!(hdr(&invite, "To"), "<sip:0903123678@127.0.0.1:5099>");
    assert_eq!(hdr(&invite, "CSeq"), "1 INVITE");
    assert_eq!(hdr(&invite, "Contact"), "<sip:9090@127.0.0.1:5060>");
    assert_eq!(hdr(&invite, "P-Asserted-Identity"), "<sip:9090@127.0.0.1>");
    assert_eq!(hdr(&invite, "X-Attempt"), "42");
    assert_eq!(hdr(&invite, "Content-Type"), "application/sdp");
    assert!(invite.ends_with("\r\n\r\nv=0\r\noffer\r\n"));
    // It parses as what it is.
    let parsed = crate::rsip::Request::try_from(invite.as_str()).unwrap();
    assert_eq!(parsed.body, b"v=0\r\noffer\r\n");
}

#[test]
fn timer_a_retransmits_on_udp_and_timer_b_fails_with_408() {
    let t0 = Instant::now();
    let mut ep = endpoint(TrunkTransport::Udp, false, t0);
    let (leg, invite) = dial(&mut ep, t0);
    let (sent, events) = run_until(&mut ep, t0 + Duration::from_secs(40));
    let times: Vec<u128> = sent
        .iter()
        .map(|(at, m)| {
            assert_eq!(m, &invite, "identical retransmission");
            at.duration_since(t0).as_millis()
        })
        .collect();
    // T1 doubling, no T2 cap for INVITE (RFC 3261 §17.1.1.2).
    assert_eq!(times, [500, 1500, 3500, 7500, 15500, 31500]);
    assert!(
        matches!(&events[..], [LegEvent::Failed { leg: l, status: 408, cause: FailCause::Timeout, .. }] if *l == leg),
        "{events:?}"
    );
    assert_eq!(ep.active_legs(), 0);
    assert_eq!(ep.transactions(), 0);
}

#[test]
fn tcp_has_no_timer_a_but_keeps_timer_b() {
    let t0 = Instant::now();
    let mut ep = endpoint(TrunkTransport::Tcp, false, t0);
    let (_, invite) = dial(&mut ep, t0);
    assert!(hdr(&invite, "Via").starts_with("SIP/2.0/TCP "));
    assert!(first_line(&invite).contains(";transport=tcp"));
    assert_eq!(
        hdr(&invite, "Contact"),
        "<sip:9090@127.0.0.1:5060;transport=tcp>"
    );
    let (sent, events) = run_until(&mut ep, t0 + Duration::from_secs(40));
    assert!(sent.is_empty(), "{sent:?}");
    assert!(matches!(
        &events[..],
        [LegEvent::Failed {
            status: 408,
            cause: FailCause::Timeout,
            ..
        }]
    ));
}

#[test]
fn provisional_stops_timer_a_and_timer_b() {
    let t0 = Instant::now();
    let mut ep = endpoint(TrunkTransport::Udp, false, t0);
    let (_, invite) = dial(&mut ep, t0);
    ep.handle_bytes(t0, trunk_flow(), &reply(&invite, 100, None, "", ""));
    let (sent, events) = drain(&mut ep);
    assert!(sent.is_empty() && events.is_empty(), "100 is not progress");
    let (sent, events) = run_until(&mut ep, t0 + Duration::from_secs(60));
    assert!(sent.is_empty() && events.is_empty(), "{sent:?} {events:?}");
    assert_eq!(ep.active_legs(), 1, "waiting for the callee");
}

#[test]
fn ringing_then_answer_acks_and_reports_answered() {
    let t0 = Instant::now();
    let mut ep = endpoint(TrunkTransport::Udp, false, t0);
    let (leg, invite) = dial(&mut ep, t0);
    ep.handle_bytes(
        t0,
        trunk_flow(),
        &reply(&invite, 180, Some("callee"), "", ""),
    );
    let (_, events) = drain(&mut ep);
    assert!(
        matches!(&events[..], [LegEvent::Progress { leg: l, status: 180, sdp: None }] if *l == leg)
    );
    ep.handle_bytes(
        t0,
        trunk_flow(),
        &reply(&invite, 180, Some("callee"), "", ""),
    );
    assert!(drain(&mut ep).1.is_empty(), "a repeated 180 is not news");
    ep.handle_bytes(
        t0,
        trunk_flow(),
        &reply(&invite, 183, Some("callee"), "", "v=0\r\nearly\r\n"),
    );
    let (_, events) = drain(&mut ep);
    assert!(matches!(
        &events[..],
        [LegEvent::Progress {
            status: 183,
            sdp: Some(_),
            ..
        }]
    ));

    let ok = reply(&invite, 200, Some("callee"), CONTACT_2XX, SDP_ANSWER);
    let at = t0 + Duration::from_secs(3);
    ep.handle_bytes(at, trunk_flow(), &ok);
    let d = drain_all(&mut ep);
    assert_eq!(d.sent.len(), 1);
    let (ack_flow, ack) = &d.sent[0];
    // RFC 3261 §13.2.2.4 / §12.2.1.1: to the remote target, through the route set (the
    // Record-Route reversed), new branch, CSeq of the INVITE, the callee's tag.
    assert_eq!(first_line(ack), "ACK sip:0903123678@127.0.0.1:5077 SIP/2.0");
    let routes: Vec<&str> = ack.lines().filter(|l| l.starts_with("Route:")).collect();
    assert_eq!(
        routes,
        ["Route: <sip:10.0.0.2;lr>", "Route: <sip:10.0.0.1;lr>"]
    );
    assert_ne!(branch(ack), branch(&invite));
    assert_eq!(hdr(ack, "CSeq"), "1 ACK");
    assert!(hdr(ack, "To").ends_with(";tag=callee"));
    assert_eq!(hdr(ack, "From"), hdr(&invite, "From"));
    assert_eq!(
        *ack_flow,
        Flow::Udp("10.0.0.2:5060".parse().unwrap()),
        "first route"
    );
    assert!(
        matches!(&d.events[..], [LegEvent::Answered { leg: l, sdp }] if *l == leg && sdp == SDP_ANSWER.as_bytes())
    );

    // A retransmitted 200 (our ACK was lost) gets the very same ACK, and no new event.
    ep.handle_bytes(at + Duration::from_millis(500), trunk_flow(), &ok);
    let (sent, events) = drain(&mut ep);
    assert_eq!(sent, vec![ack.clone()]);
    assert!(events.is_empty());
    // Timer M ends the transaction; the dialog stays.
    run_until(&mut ep, at + Duration::from_secs(33));
    assert_eq!(ep.transactions(), 0);
    assert_eq!(ep.active_legs(), 1);
}

#[test]
fn final_failures_are_acked_by_the_transaction_and_reported_with_reason() {
    for (status, extra) in [
        (
            486,
            "Reason: Q.850;cause=17;text=\"User busy\"\r\nRetry-After: 600\r\n",
        ),
        (603, "Reason: Q.850;cause=21\r\n"),
        (404, ""),
        (480, ""),
    ] {
        let t0 = Instant::now();
        let mut ep = endpoint(TrunkTransport::Udp, false, t0);
        let (leg, invite) = dial(&mut ep, t0);
        ep.handle_bytes(t0, trunk_flow(), &reply(&invite, 180, Some("c"), "", ""));
        drain(&mut ep);
        let resp = reply(&invite, status, Some("c"), extra, "");
        ep.handle_bytes(t0, trunk_flow(), &resp);
        let (sent, events) = drain(&mut ep);
        assert_eq!(sent.len(), 1, "{status}");
        let ack = &sent[0];
        // RFC 3261 §17.1.1.3: same Request-URI, same branch, the response's To.
        assert_eq!(first_line(ack), "ACK sip:0903123678@127.0.0.1:5099 SIP/2.0");
        assert_eq!(branch(ack), branch(&invite));
        assert_eq!(hdr(ack, "CSeq"), "1 ACK");
        assert!(hdr(ack, "To").ends_with(";tag=c"));
        let LegEvent::Failed {
            leg: l,
            status: s,
            cause,
            reason,
            retry_after,
        } = &events[0]
        else {
            panic!("{events:?}")
        };
        assert_eq!((*l, *s, *cause), (leg, status, FailCause::Rejected));
        match status {
            486 => {
                assert_eq!(reason.as_deref(), Some("Q.850;cause=17;text=\"User busy\""));
                assert_eq!(*retry_after, Some(Duration::from_secs(600)));
            }
            603 => assert_eq!(reason.as_deref(), Some("Q.850;cause=21")),
            _ => assert!(reason.is_none() && retry_after.is_none()),
        }
        // Retransmitted final → the ACK again; no second event. Timer D then ends it.
        ep.handle_bytes(t0 + Duration::from_secs(1), trunk_flow(), &resp);
        let (sent, events) = drain(&mut ep);
        assert_eq!(sent, vec![ack.clone()]);
        assert!(events.is_empty());
        run_until(&mut ep, t0 + Duration::from_secs(33));
        assert_eq!(ep.transactions(), 0);
        assert_eq!(ep.active_legs(), 0);
    }
}

#[test]
fn cancel_after_ringing_then_487() {
    let t0 = Instant::now();
    let mut ep = endpoint(TrunkTransport::Udp, false, t0);
    let (leg, invite) = dial(&mut ep, t0);
    ep.handle_bytes(t0, trunk_flow(), &reply(&invite, 180, Some("c"), "", ""));
    drain(&mut ep);
    let at = t0 + Duration::from_secs(30);
    ep.handle_command(at, Command::Cancel { leg });
    let (sent, events) = drain(&mut ep);
    assert!(events.is_empty());
    let cancel = &sent[0];
    // RFC 3261 §9.1: same Request-URI, branch, Call-ID, From, To, CSeq number.
    assert_eq!(
        first_line(cancel),
        "CANCEL sip:0903123678@127.0.0.1:5099 SIP/2.0"
    );
    assert_eq!(branch(cancel), branch(&invite));
    assert_eq!(hdr(cancel, "CSeq"), "1 CANCEL");
    assert_eq!(hdr(cancel, "To"), hdr(&invite, "To"));
    assert_eq!(hdr(cancel, "From"), hdr(&invite, "From"));
    // A second cancel (or hangup) sends nothing more.
    ep.handle_command(at, Command::Hangup { leg });
    assert!(drain(&mut ep).0.is_empty());
    ep.handle_bytes(at, trunk_flow(), &reply(cancel, 200, Some("c"), "", ""));
    assert!(drain(&mut ep).1.is_empty());
    ep.handle_bytes(at, trunk_flow(), &reply(&invite, 487, Some("c"), "", ""));
    let (sent, events) = drain(&mut ep);
    assert!(first_line(&sent[0]).starts_with("ACK "));
    assert!(
        matches!(
            &events[..],
            [LegEvent::Failed {
                status: 487,
                cause: FailCause::Cancelled,
                ..
            }]
        ),
        "{events:?}"
    );
    run_until(&mut ep, at + Duration::from_secs(60));
    assert_eq!(ep.transactions(), 0);
    assert_eq!(ep.active_legs(), 0);
}

#[test]
fn cancel_before_any_provisional_waits_for_one() {
    let t0 = Instant::now();
    let mut ep = endpoint(TrunkTransport::Udp, false, t0);
    let (leg, invite) = dial(&mut ep, t0);
    ep.handle_command(t0, Command::Cancel { leg });
    let (sent, _) = drain(&mut ep);
    assert!(sent.is_empty(), "no CANCEL before a provisional response");
    ep.handle_bytes(
        t0 + Duration::from_millis(200),
        trunk_flow(),
        &reply(&invite, 100, None, "", ""),
    );
    let (sent, events) = drain(&mut ep);
    assert_eq!(sent.len(), 1);
    assert!(first_line(&sent[0]).starts_with("CANCEL "));
    assert!(events.is_empty());
    // The far end never answers the INVITE: give up 64·T1 after the CANCEL.
    let (_, events) = run_until(&mut ep, t0 + Duration::from_secs(40));
    assert!(
        matches!(
            &events[..],
            [LegEvent::Failed {
                status: 487,
                cause: FailCause::Cancelled,
                ..
            }]
        ),
        "{events:?}"
    );
    assert_eq!(ep.active_legs(), 0);
}

#[test]
fn cancel_wanted_and_no_response_at_all_is_a_timeout() {
    let t0 = Instant::now();
    let mut ep = endpoint(TrunkTransport::Udp, false, t0);
    let (leg, _) = dial(&mut ep, t0);
    ep.handle_command(t0, Command::Hangup { leg });
    let (sent, events) = run_until(&mut ep, t0 + Duration::from_secs(40));
    assert!(sent.iter().all(|(_, m)| m.starts_with("INVITE ")));
    assert!(matches!(
        &events[..],
        [LegEvent::Failed {
            status: 408,
            cause: FailCause::Timeout,
            ..
        }]
    ));
}

#[test]
fn a_200_crossing_the_cancel_is_acked_and_hung_up() {
    let t0 = Instant::now();
    let mut ep = endpoint(TrunkTransport::Udp, false, t0);
    let (leg, invite) = dial(&mut ep, t0);
    ep.handle_bytes(t0, trunk_flow(), &reply(&invite, 180, Some("c"), "", ""));
    ep.handle_command(t0, Command::Cancel { leg });
    drain(&mut ep);
    ep.handle_bytes(
        t0,
        trunk_flow(),
        &reply(&invite, 200, Some("c"), CONTACT_2XX, SDP_ANSWER),
    );
    let (sent, events) = drain(&mut ep);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(first_line(&sent[0]).starts_with("ACK sip:0903123678@127.0.0.1:5077"));
    assert_eq!(
        first_line(&sent[1]),
        "BYE sip:0903123678@127.0.0.1:5077 SIP/2.0"
    );
    assert_eq!(hdr(&sent[1], "CSeq"), "2 BYE");
    assert!(hdr(&sent[1], "To").ends_with(";tag=c"));
    assert!(
        matches!(
            &events[..],
            [LegEvent::Failed {
                status: 200,
                cause: FailCause::Cancelled,
                ..
            }]
        ),
        "{events:?}"
    );
    // The CANCEL's own answer (481/200) and the BYE's 200 close everything.
    ep.handle_bytes(t0, trunk_flow(), &reply(&sent[1], 200, None, "", ""));
    run_until(&mut ep, t0 + Duration::from_secs(60));
    assert_eq!(ep.active_legs(), 0);
    assert_eq!(ep.transactions(), 0);
}

fn challenge_flow(status: u16, www: &str) -> (Endpoint, LegId, String, String, Instant) {
    let t0 = Instant::now();
    let mut ep = endpoint(TrunkTransport::Udp, true, t0);
    let (leg, invite) = dial(&mut ep, t0);
    let name = if status == 407 {
        "Proxy-Authenticate"
    } else {
        "WWW-Authenticate"
    };
    ep.handle_bytes(
        t0,
        trunk_flow(),
        &reply(
            &invite,
            status,
            Some("t"),
            &format!("{name}: {www}\r\n"),
            "",
        ),
    );
    let (sent, events) = drain(&mut ep);
    assert!(
        events.is_empty(),
        "a challenge is not a failure: {events:?}"
    );
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(first_line(&sent[0]).starts_with("ACK "));
    assert_eq!(
        branch(&sent[0]),
        branch(&invite),
        "ACK of the 401 by the transaction"
    );
    let retry = sent[1].clone();
    (ep, leg, invite, retry, t0)
}

#[test]
fn a_401_is_answered_with_an_authenticated_invite() {
    let (mut ep, leg, invite, retry, t0) = challenge_flow(
        401,
        "Digest realm=\"trunk\", nonce=\"abc123\", qop=\"auth\", algorithm=MD5, opaque=\"op\"",
    );
    assert!(first_line(&retry).starts_with("INVITE sip:0903123678@127.0.0.1:5099"));
    assert_eq!(hdr(&retry, "CSeq"), "2 INVITE", "new CSeq");
    assert_eq!(hdr(&retry, "Call-ID"), hdr(&invite, "Call-ID"));
    assert_eq!(hdr(&retry, "From"), hdr(&invite, "From"));
    assert_ne!(branch(&retry), branch(&invite), "new transaction");
    let auth = hdr(&retry, "Authorization");
    let cnonce = auth
        .split("cnonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let expected = digest_response(
        Algorithm::Md5,
        "tongdai",
        "trunk",
        "s3cret",
        "INVITE",
        "sip:0903123678@127.0.0.1:5099",
        "abc123",
        Some((1, cnonce)),
    );
    assert!(auth.contains(&format!("response=\"{expected}\"")), "{auth}");
    assert!(auth.contains("uri=\"sip:0903123678@127.0.0.1:5099\""));
    assert!(auth.contains("nc=00000001") && auth.contains("opaque=\"op\""));
    assert!(retry.ends_with("v=0\r\noffer\r\n"), "same offer");
    // Answered: the ACK carries the credentials too.
    ep.handle_bytes(
        t0,
        trunk_flow(),
        &reply(&retry, 200, Some("callee"), CONTACT_2XX, SDP_ANSWER),
    );
    let (sent, events) = drain(&mut ep);
    assert_eq!(hdr(&sent[0], "CSeq"), "2 ACK");
    assert!(has_hdr(&sent[0], "Authorization"));
    assert!(matches!(&events[..], [LegEvent::Answered { leg: l, .. }] if *l == leg));
}

#[test]
fn a_407_is_answered_with_proxy_authorization_sha256() {
    let (_, _, _, retry, _) = challenge_flow(
        407,
        "Digest realm=\"proxy\", nonce=\"n2\", algorithm=SHA-256, qop=\"auth,auth-int\"",
    );
    let auth = hdr(&retry, "Proxy-Authorization");
    assert!(!has_hdr(&retry, "Authorization"));
    assert!(auth.contains("algorithm=SHA-256"), "{auth}");
    let cnonce = auth
        .split("cnonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let expected = digest_response(
        Algorithm::Sha256,
        "tongdai",
        "proxy",
        "s3cret",
        "INVITE",
        "sip:0903123678@127.0.0.1:5099",
        "n2",
        Some((1, cnonce)),
    );
    assert!(auth.contains(&format!("response=\"{expected}\"")), "{auth}");
}

#[test]
fn a_second_401_fails_the_call() {
    let (mut ep, leg, _, retry, t0) = challenge_flow(401, "Digest realm=\"trunk\", nonce=\"abc\"");
    ep.handle_bytes(
        t0,
        trunk_flow(),
        &reply(
            &retry,
            401,
            Some("t"),
            "WWW-Authenticate: Digest realm=\"trunk\", nonce=\"def\"\r\n",
            "",
        ),
    );
    let (sent, events) = drain(&mut ep);
    assert_eq!(sent.len(), 1, "only the ACK: {sent:?}");
    assert!(
        matches!(&events[..], [LegEvent::Failed { leg: l, status: 401, cause: FailCause::Rejected, .. }] if *l == leg)
    );
}

#[test]
fn a_stale_nonce_is_retried_with_the_new_one() {
    let (mut ep, _, _, retry, t0) = challenge_flow(401, "Digest realm=\"trunk\", nonce=\"abc\"");
    ep.handle_bytes(
        t0,
        trunk_flow(),
        &reply(
            &retry,
            401,
            Some("t"),
            "WWW-Authenticate: Digest realm=\"trunk\", nonce=\"fresh\", stale=true\r\n",
            "",
        ),
    );
    let (sent, events) = drain(&mut ep);
    assert!(events.is_empty());
    assert_eq!(hdr(&sent[1], "CSeq"), "3 INVITE");
    assert!(hdr(&sent[1], "Authorization").contains("nonce=\"fresh\""));
}

#[test]
fn a_401_without_credentials_fails() {
    let t0 = Instant::now();
    let mut ep = endpoint(TrunkTransport::Udp, false, t0);
    let (_, invite) = dial(&mut ep, t0);
    ep.handle_bytes(
        t0,
        trunk_flow(),
        &reply(
            &invite,
            401,
            Some("t"),
            "WWW-Authenticate: Digest realm=\"r\", nonce=\"n\"\r\n",
            "",
        ),
    );
    let (_, events) = drain(&mut ep);
    assert!(matches!(
        &events[..],
        [LegEvent::Failed { status: 401, .. }]
    ));
}

#[test]
fn a_2xx_from_a_second_fork_is_acked_and_hung_up() {
    let t0 = Instant::now();
    let mut ep = endpoint(TrunkTransport::Udp, false, t0);
    let (leg, invite, _) = answered(&mut ep, t0);
    let fork = reply(
        &invite,
        200,
        Some("fork2"),
        "Contact: <sip:other@127.0.0.1:5088>\r\n",
        SDP_ANSWER,
    );
    ep.handle_bytes(t0, trunk_flow(), &fork);
    let (sent, events) = drain(&mut ep);
    assert!(events.is_empty(), "the call layer never hears of the fork");
    assert_eq!(first_line(&sent[0]), "ACK sip:other@127.0.0.1:5088 SIP/2.0");
    assert_eq!(first_line(&sent[1]), "BYE sip:other@127.0.0.1:5088 SIP/2.0");
    assert!(hdr(&sent[1], "To").ends_with("tag=fork2"));
    // The fork's BYE completes without touching the real dialog.
    ep.handle_bytes(t0, trunk_flow(), &reply(&sent[1], 200, None, "", ""));
    drain(&mut ep);
    assert_eq!(ep.active_legs(), 1);
    ep.handle_command(t0, Command::Hangup { leg });
    let (sent, _) = drain(&mut ep);
    assert!(hdr(&sent[0], "To").ends_with("tag=callee"));
}

fn from_callee(method: &str, leg_invite: &str, cseq: u32, extra: &str, body: &str) -> Vec<u8> {
    // In the callee's requests From and To swap: To carries our tag.
    format!(
        "{method} sip:9090@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bK-callee-{method}-{cseq};rport\r\n\
From: <sip:0903123678@127.0.0.1:5099>;tag=callee\r\nTo: {to}\r\nCall-ID: {cid}\r\n\
CSeq: {cseq} {method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: {len}\r\n\r\n{body}",
        to = hdr(leg_invite, "From"),
        cid = hdr(leg_invite, "Call-ID"),
        len = body.len(),
    )
    .into_bytes()
}

#[test]
fn the_callee_s_in_dialog_requests_arrive_as_the_same_leg_events() {
    let t0 = Instant::now();
    let mut ep = endpoint(TrunkTransport::Udp, false, t0);
    let (leg, invite, _) = answered(&mut ep, t0);
    ep.handle_bytes(
        t0,
        trunk_flow(),
        &from_callee(
            "INFO",
            &invite,
            1,
            "Content-Type: application/dtmf-relay\r\n",
            "Signal=5\r\nDuration=160\r\n",
        ),
    );
    let (sent, events) = drain(&mut ep);
    assert!(sent[0].starts_with("SIP/2.0 200"));
    assert!(matches!(&events[..], [LegEvent::Info { leg: l, .. }] if *l == leg));
    // Hold by re-INVITE.
    ep.handle_bytes(
        t0,
        trunk_flow(),
        &from_callee(
            "INVITE",
            &invite,
            2,
            "Content-Type: application/sdp\r\n",
            "v=0\r\na=sendonly\r\n",
        ),
    );
    let (_, events) = drain(&mut ep);
    assert!(matches!(&events[..], [LegEvent::Reoffer { leg: l, .. }] if *l == leg));
    ep.handle_command(
        t0,
        Command::AnswerReoffer {
            leg,
            sdp: b"v=0\r\na=recvonly\r\n".to_vec(),
        },
    );
    let (sent, _) = drain(&mut ep);
    assert!(sent[0].starts_with("SIP/2.0 200") && sent[0].contains("a=recvonly"));
    // The callee hangs up.
    ep.handle_bytes(t0, trunk_flow(), &from_callee("BYE", &invite, 3, "", ""));
    let (sent, events) = drain(&mut ep);
    assert!(sent[0].starts_with("SIP/2.0 200"));
    assert!(
        matches!(&events[..], [LegEvent::Terminated { leg: l, reason: EndReason::RemoteBye }] if *l == leg)
    );
    assert_eq!(ep.active_legs(), 0);
}

#[test]
fn our_hangup_of_an_answered_call_is_a_bye() {
    let t0 = Instant::now();
    let mut ep = endpoint(TrunkTransport::Udp, false, t0);
    let (leg, _, _) = answered(&mut ep, t0);
    ep.handle_command(t0, Command::Hangup { leg });
    let (sent, _) = drain(&mut ep);
    let bye = &sent[0];
    assert_eq!(first_line(bye), "BYE sip:0903123678@127.0.0.1:5077 SIP/2.0");
    assert_eq!(hdr(bye, "CSeq"), "2 BYE");
    ep.handle_bytes(t0, trunk_flow(), &reply(bye, 200, None, "", ""));
    let (_, events) = drain(&mut ep);
    assert!(
        matches!(&events[..], [LegEvent::ByeCompleted { leg: l, status: Some(200) }] if *l == leg)
    );
}

#[test]
fn timer_c_cancels_a_call_ringing_for_three_minutes() {
    let t0 = Instant::now();
    let mut ep = endpoint(TrunkTransport::Udp, false, t0);
    let (_, invite) = dial(&mut ep, t0);
    ep.handle_bytes(t0, trunk_flow(), &reply(&invite, 180, Some("c"), "", ""));
    drain(&mut ep);
    let (sent, _) = run_until(&mut ep, t0 + Duration::from_secs(181));
    let cancel = sent
        .iter()
        .find(|(_, m)| m.starts_with("CANCEL "))
        .expect("Timer C sends CANCEL");
    assert_eq!(cancel.0.duration_since(t0), Duration::from_secs(180));
    let at = cancel.0;
    ep.handle_bytes(at, trunk_flow(), &reply(&invite, 487, Some("c"), "", ""));
    let (_, events) = drain(&mut ep);
    assert!(matches!(
        &events[..],
        [LegEvent::Failed {
            status: 487,
            cause: FailCause::NoAnswer,
            ..
        }]
    ));
}

#[test]
fn a_lost_tcp_connection_fails_the_call_as_a_transport_error() {
    let t0 = Instant::now();
    let mut ep = endpoint(TrunkTransport::Tcp, false, t0);
    let d = ep
        .dial(
            t0,
            DialRequest {
                target: "0903123678".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let out = drain_all(&mut ep);
    assert_eq!(out.sent[0].0, Flow::tcp_to(TRUNK.parse().unwrap()));
    ep.handle_transport_error(t0, TRUNK.parse().unwrap());
    let (_, events) = drain(&mut ep);
    assert!(
        matches!(&events[..], [LegEvent::Failed { leg, status: 503, cause: FailCause::Transport, .. }] if *leg == d.leg)
    );
}

#[test]
fn dial_refusals() {
    let t0 = Instant::now();
    let mut no_trunk = endpoint_with(None, Acl::allow_all());
    let req = |t: &str| DialRequest {
        target: t.into(),
        ..Default::default()
    };
    assert_eq!(no_trunk.dial(t0, req("0903")), Err(DialError::NoTrunk));
    // A URI with an IP literal works without a trunk (tests, direct peers).
    let d = no_trunk
        .dial(t0, req("sip:0903@127.0.0.1:5077;transport=tcp"))
        .unwrap();
    let out = drain_all(&mut no_trunk);
    assert_eq!(
        out.sent[0].0,
        Flow::tcp_to("127.0.0.1:5077".parse().unwrap())
    );
    assert!(d.leg > 0);
    let mut unresolved = endpoint_with(
        Some(trunk_cfg(TrunkTransport::Udp, false)),
        Acl::allow_all(),
    );
    assert_eq!(
        unresolved.dial(t0, req("0903")),
        Err(DialError::TrunkUnresolved)
    );
    let mut ep = endpoint(TrunkTransport::Udp, false, t0);
    assert!(matches!(
        ep.dial(t0, req("09 03")),
        Err(DialError::BadTarget(_))
    ));
    assert!(matches!(
        ep.dial(t0, req("sip:x@elsewhere.example")),
        Err(DialError::BadTarget(_))
    ));
    let mut bad = req("0903");
    bad.extra_headers = vec![("X-Evil".into(), "a\r\nVia: injected".into())];
    assert!(matches!(ep.dial(t0, bad), Err(DialError::BadHeader(_))));
    ep.set_draining(true);
    assert_eq!(ep.dial(t0, req("0903")), Err(DialError::Draining));
    assert!(
        drain(&mut ep).0.is_empty(),
        "nothing sent for a refused dial"
    );
}

// ----- the ACL ---------------------------------------------------------------------

const SCANNER: &str = "203.0.113.66:5060";

fn scanner_request(method: &str, call_id: &str) -> Vec<u8> {
    format!(
        "{method} sip:100@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 203.0.113.66:5060;branch=z9hG4bK-scan-{method}\r\n\
From: \"sipvicious\" <sip:100@1.1.1.1>;tag=s1\r\nTo: <sip:100@127.0.0.1>\r\n\
Call-ID: {call_id}\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\nContact: <sip:100@203.0.113.66>\r\n\
Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn the_acl_refuses_strangers_with_a_bare_403_before_any_state() {
    let t0 = Instant::now();
    let mut ep = endpoint(TrunkTransport::Udp, false, t0);
    let scanner = Flow::Udp(SCANNER.parse().unwrap());
    for method in ["INVITE", "OPTIONS", "REGISTER", "MESSAGE", "SUBSCRIBE"] {
        ep.handle_bytes(t0, scanner, &scanner_request(method, "scan1"));
        let (sent, events) = drain(&mut ep);
        assert!(events.is_empty(), "{method}: {events:?}");
        assert_eq!(sent.len(), 1, "{method}");
        assert!(sent[0].starts_with("SIP/2.0 403 "), "{method}: {}", sent[0]);
        for leaky in [
            "Server",
            "Allow",
            "Contact",
            "User-Agent",
            "Supported",
            "Accept",
        ] {
            assert!(
                !has_hdr(&sent[0], leaky),
                "{method}: {leaky} in\n{}",
                sent[0]
            );
        }
    }
    assert_eq!(ep.transactions(), 0);
    assert_eq!(ep.active_legs(), 0);
    // ACKs and garbage from strangers: silence.
    ep.handle_bytes(t0, scanner, &scanner_request("ACK", "scan2"));
    ep.handle_bytes(t0, scanner, b"INVITE sip:x SIP/2.0\r\nVia: junk\r\n\r\n");
    ep.handle_bytes(t0, scanner, b"FOO sip:100@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nCSeq: 1 FOO\r\nCall-ID: x\r\nFrom: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nContent-Length: 0\r\n\r\n");
    assert!(drain(&mut ep).0.is_empty());
    // The trunk (added at resolution) and the configured addresses are let in.
    ep.handle_bytes(t0, trunk_flow(), &scanner_request("OPTIONS", "ok1"));
    let (sent, _) = drain(&mut ep);
    assert!(sent[0].starts_with("SIP/2.0 200"));
    ep.handle_bytes(
        t0,
        Flow::Udp("127.0.0.1:40000".parse().unwrap()),
        &scanner_request("INVITE", "ok2"),
    );
    let (_, events) = drain(&mut ep);
    assert!(matches!(&events[..], [LegEvent::Incoming(_)]));
}

#[test]
fn in_dialog_requests_pass_the_acl_from_anywhere() {
    let t0 = Instant::now();
    let mut ep = endpoint(TrunkTransport::Udp, false, t0);
    let (leg, invite, _) = answered(&mut ep, t0);
    // The callee BYEs straight from its own address, outside the ACL.
    let callee = Flow::Udp("198.51.100.20:5060".parse().unwrap());
    ep.handle_bytes(t0, callee, &from_callee("BYE", &invite, 1, "", ""));
    let (sent, events) = drain(&mut ep);
    assert!(sent[0].starts_with("SIP/2.0 200"));
    assert!(matches!(&events[..], [LegEvent::Terminated { leg: l, .. }] if *l == leg));
    // A made-up in-dialog request from a stranger gets 403, not 481.
    ep.handle_bytes(t0, callee, &from_callee("BYE", &invite, 2, "", ""));
    let (sent, _) = drain(&mut ep);
    assert!(sent[0].starts_with("SIP/2.0 403"), "{}", sent[0]);
}
