//! The dialog layer on a bare transaction layer (no façade, no ACL, no trunk), in
//! virtual time: what each layer is left holding, and the dialog decisions the
//! endpoint's tests do not reach.

use super::*;

const PEER: &str = "127.0.0.1:5061";

struct Stack {
    txns: TransactionLayer,
    dialogs: DialogLayer,
}

impl Stack {
    fn new() -> Stack {
        let timers = Timers::default();
        let advertised: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        Stack {
            txns: TransactionLayer::new(crate::transaction::TransactionConfig {
                advertised,
                timers: timers.clone(),
                user_agent: "tongdai-test".into(),
            }),
            dialogs: DialogLayer::new(
                DialogConfig {
                    advertised,
                    timers,
                    user_agent: "tongdai-test".into(),
                    max_legs: 10,
                },
                None,
            ),
        }
    }

    /// The transaction layer's events, handed to the dialog layer as the endpoint does.
    fn pump(&mut self, now: Instant) {
        while let Some(event) = self.txns.poll_event() {
            self.dialogs.handle_event(now, &mut self.txns, event);
        }
    }

    fn receive(&mut self, now: Instant, text: &str) {
        let flow = Flow::Udp(PEER.parse().unwrap());
        if text.starts_with("SIP/2.0 ") {
            let resp = rsip::Response::try_from(text).unwrap();
            self.txns.handle_response(now, resp);
        } else {
            let req = rsip::Request::try_from(text).unwrap();
            self.txns.handle_request(now, flow, req);
        }
        self.pump(now);
    }

    fn command(&mut self, now: Instant, cmd: Command) {
        self.dialogs.handle_command(now, &mut self.txns, cmd);
        self.pump(now);
    }

    fn sent(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.txns.poll_transmit())
            .map(|(_, b)| String::from_utf8(b).unwrap())
            .collect()
    }

    fn events(&mut self) -> Vec<LegEvent> {
        std::iter::from_fn(|| self.dialogs.poll_event()).collect()
    }

    /// Runs both layers' timers up to `until`; returns what was sent, with when.
    fn run_until(&mut self, t0: Instant, until: Instant) -> Vec<(u128, String)> {
        let mut out = vec![];
        loop {
            let next = [self.txns.poll_timeout(), self.dialogs.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let Some(at) = next.filter(|at| *at <= until) else {
                return out;
            };
            self.txns.handle_timeout(at);
            self.pump(at);
            self.dialogs.handle_timeout(at, &mut self.txns);
            self.pump(at);
            let ms = at.duration_since(t0).as_millis();
            out.extend(self.sent().into_iter().map(|m| (ms, m)));
        }
    }

    /// Nothing held by either layer.
    fn empty(&self) -> bool {
        let d = &self.dialogs;
        self.txns.is_empty()
            && d.legs.is_empty()
            && d.dialogs.is_empty()
            && d.server_invites.is_empty()
            && d.invites.is_empty()
            && d.requests.is_empty()
    }
}

fn invite(branch: &str) -> String {
    format!(
        "INVITE sip:9090@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch={branch};rport\r\n\
From: <sip:0903123678@127.0.0.1:5061>;tag=from1\r\nTo: <sip:9090@127.0.0.1:5060>\r\n\
Call-ID: c1\r\nCSeq: 1 INVITE\r\nContact: <sip:0903123678@127.0.0.1:5061>\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

/// A request of the caller's in the dialog whose To carries `to_tag`.
fn in_dialog(method: &str, to_tag: &str, cseq: u32, branch: &str) -> String {
    format!(
        "{method} sip:9090@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch={branch};rport\r\n\
From: <sip:0903123678@127.0.0.1:5061>;tag=from1\r\nTo: <sip:9090@127.0.0.1:5060>;tag={to_tag}\r\n\
Call-ID: c1\r\nCSeq: {cseq} {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    )
}

fn hdr<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {name} in\n{msg}"))
}

/// The far end's response to our request `req`, with `to_tag` and `extra` lines.
fn reply(req: &str, status: u16, to_tag: &str, extra: &str) -> String {
    let to = hdr(req, "To");
    let to = if to.contains("tag=") {
        to.to_string()
    } else {
        format!("{to};tag={to_tag}")
    };
    format!(
        "SIP/2.0 {status} X\r\nVia: {}\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n\
{extra}Content-Length: 0\r\n\r\n",
        hdr(req, "Via"),
        hdr(req, "From"),
        hdr(req, "Call-ID"),
        hdr(req, "CSeq"),
    )
}

fn incoming(events: &[LegEvent]) -> LegId {
    match events {
        [LegEvent::Incoming(call)] => call.leg,
        other => panic!("expected Incoming, got {other:?}"),
    }
}

#[test]
fn an_answered_call_is_split_between_the_layers_and_leaves_nothing_behind() {
    let mut s = Stack::new();
    let t0 = Instant::now();
    s.receive(t0, &invite("z9hG4bK-1"));
    let leg = incoming(&s.events());
    assert!(s.sent()[0].starts_with("SIP/2.0 100 "));
    s.command(
        t0,
        Command::Answer {
            leg,
            sdp: b"v=0\r\n".to_vec(),
        },
    );
    let ok = s.sent().remove(0);
    let tag = tag_of(hdr(&ok, "To")).unwrap().to_string();
    // The INVITE transaction is Accepted; the request is no longer the dialog's to keep.
    assert_eq!(s.txns.len(), 1);
    assert!(s.dialogs.server_invites.is_empty());
    // The dialog, not the transaction, repeats the 2xx until the ACK.
    let out = s.run_until(t0, t0 + Duration::from_millis(1600));
    assert_eq!(
        out.iter().map(|(ms, _)| *ms).collect::<Vec<_>>(),
        [500, 1500]
    );
    assert!(out.iter().all(|(_, m)| *m == ok));
    s.receive(t0, &in_dialog("ACK", &tag, 1, "z9hG4bK-ack"));
    assert!(matches!(s.events()[..], [LegEvent::Confirmed { .. }]));
    s.receive(t0, &in_dialog("BYE", &tag, 2, "z9hG4bK-bye"));
    assert!(s.sent()[0].starts_with("SIP/2.0 200 "));
    assert!(matches!(
        s.events()[..],
        [LegEvent::Terminated {
            reason: EndReason::RemoteBye,
            ..
        }]
    ));
    assert!(s.run_until(t0, t0 + Duration::from_secs(40)).is_empty());
    assert!(s.empty(), "Timers L and J ended the transactions");
}

#[test]
fn an_answer_that_comes_after_the_cancel_sends_nothing() {
    let mut s = Stack::new();
    let t0 = Instant::now();
    s.receive(t0, &invite("z9hG4bK-c"));
    let leg = incoming(&s.events());
    s.sent();
    let cancel = invite("z9hG4bK-c")
        .replace("INVITE sip", "CANCEL sip")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    s.receive(t0, &cancel);
    let sent = s.sent();
    assert!(sent[0].starts_with("SIP/2.0 200 ") && sent[1].starts_with("SIP/2.0 487 "));
    assert!(matches!(
        s.events()[..],
        [LegEvent::Terminated {
            reason: EndReason::Cancelled,
            ..
        }]
    ));
    // The call task's answer was already on its way.
    s.command(
        t0,
        Command::Answer {
            leg,
            sdp: b"v=0\r\n".to_vec(),
        },
    );
    s.command(t0, Command::Ringing { leg });
    assert!(s.sent().is_empty());
    assert!(s.events().is_empty());
    // The 487 is the transaction's to repeat (Timer G), until the ACK.
    let out = s.run_until(t0, t0 + Duration::from_millis(600));
    assert!(out[0].1.starts_with("SIP/2.0 487 "));
}

#[test]
fn draining_refuses_a_new_call_on_the_transaction_alone() {
    let mut s = Stack::new();
    s.dialogs.set_draining(true);
    let t0 = Instant::now();
    s.receive(t0, &invite("z9hG4bK-d"));
    assert!(s.events().is_empty());
    let sent = s.sent();
    assert!(sent[0].starts_with("SIP/2.0 503 "), "{sent:?}");
    assert_eq!(hdr(&sent[0], "Retry-After"), "5");
    assert_eq!(s.dialogs.active_legs(), 0);
    assert!(s.dialogs.server_invites.is_empty(), "no leg, nothing kept");
    assert_eq!(s.txns.len(), 1, "the 503 waits for its ACK in Completed");
}

#[test]
fn a_re_invite_outside_any_dialog_gets_481_from_its_transaction() {
    let mut s = Stack::new();
    let t0 = Instant::now();
    s.receive(t0, &in_dialog("INVITE", "nope", 2, "z9hG4bK-r"));
    assert!(s.events().is_empty());
    assert!(s.sent()[0].starts_with("SIP/2.0 481 "));
    s.receive(t0, &in_dialog("ACK", "nope", 2, "z9hG4bK-r"));
    assert!(s.run_until(t0, t0 + Duration::from_secs(40)).is_empty());
    assert!(s.empty());
}

#[test]
fn a_2xx_retransmitted_after_the_call_is_re_acked_and_a_late_fork_hung_up() {
    let mut s = Stack::new();
    let t0 = Instant::now();
    let dialed = s
        .dialogs
        .dial(
            t0,
            &mut s.txns,
            DialRequest {
                target: "sip:0903123678@127.0.0.1:5077".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let invite = s.sent().remove(0);
    let contact = "Contact: <sip:0903123678@127.0.0.1:5077>\r\n";
    let ok = reply(&invite, 200, "callee", contact);
    s.receive(t0, &ok);
    let ack = s.sent().remove(0);
    assert!(ack.starts_with("ACK sip:0903123678@127.0.0.1:5077 "));
    assert!(matches!(&s.events()[..], [LegEvent::Answered { leg, .. }] if *leg == dialed.leg));
    s.command(t0, Command::Hangup { leg: dialed.leg });
    let bye = s.sent().remove(0);
    s.receive(t0, &reply(&bye, 200, "callee", ""));
    assert!(matches!(
        &s.events()[..],
        [LegEvent::ByeCompleted {
            status: Some(200),
            ..
        }]
    ));
    assert_eq!(s.dialogs.active_legs(), 0);
    // The leg is gone, the INVITE transaction (Accepted) is not: its 2xx is still ours.
    s.receive(t0 + Duration::from_secs(1), &ok);
    assert_eq!(s.sent(), [ack], "the same ACK again");
    s.receive(
        t0 + Duration::from_secs(1),
        &reply(&invite, 200, "fork2", "Contact: <sip:x@127.0.0.1:5088>\r\n"),
    );
    let sent = s.sent();
    assert!(sent[0].starts_with("ACK sip:x@127.0.0.1:5088 "), "{sent:?}");
    assert!(sent[1].starts_with("BYE sip:x@127.0.0.1:5088 "), "{sent:?}");
    assert!(s.events().is_empty(), "the call layer never hears of it");
    s.receive(
        t0 + Duration::from_secs(1),
        &reply(&sent[1], 200, "fork2", ""),
    );
    s.run_until(t0, t0 + Duration::from_secs(40));
    assert!(s.empty(), "Timer M let the dialog layer forget the INVITE");
}
