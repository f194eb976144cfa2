//! The transaction layer alone, in virtual time: requests and responses in, datagrams
//! and transaction-user events out, timers run from deadline to deadline.

use super::*;

const PEER: &str = "127.0.0.1:5061";

fn layer() -> TransactionLayer {
    TransactionLayer::new(TransactionConfig {
        advertised: "127.0.0.1:5060".parse().unwrap(),
        timers: Timers::default(),
        user_agent: "tongdai-test".into(),
    })
}

fn udp() -> Flow {
    Flow::Udp(PEER.parse().unwrap())
}

fn tcp() -> Flow {
    Flow::Tcp {
        conn: 3,
        remote: PEER.parse().unwrap(),
    }
}

fn request(method: &str, branch: &str) -> rsip::Request {
    let cseq_method = if method == "ACK" { "ACK" } else { method };
    let text = format!(
        "{method} sip:9090@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch={branch};rport\r\n\
From: <sip:0903123678@127.0.0.1:5061>;tag=from1\r\nTo: <sip:9090@127.0.0.1:5060>\r\n\
Call-ID: c1\r\nCSeq: 1 {cseq_method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
    );
    rsip::Request::try_from(text.as_str()).unwrap()
}

fn response_to(req: &rsip::Request, status: u16) -> rsip::Response {
    crate::message::response(
        req,
        status,
        Some("tag1"),
        false,
        vec![],
        None,
        "tongdai-test",
    )
}

/// A response from the far end to one of our requests, as sent.
fn reply(sent: &str, status: u16) -> rsip::Response {
    let hdr = |name: &str| {
        sent.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap()
            .to_string()
    };
    let text = format!(
        "SIP/2.0 {status} X\r\nVia:{}\r\nFrom:{}\r\nTo:{};tag=far\r\nCall-ID:{}\r\nCSeq:{}\r\n\
Content-Length: 0\r\n\r\n",
        hdr("Via:"),
        hdr("From:"),
        hdr("To:"),
        hdr("Call-ID:"),
        hdr("CSeq:")
    );
    rsip::Response::try_from(text.as_str()).unwrap()
}

fn client_request(method: Method) -> ClientRequest {
    ClientRequest {
        method,
        uri: "sip:0903123678@127.0.0.1:5099".into(),
        route: vec![],
        from: "<sip:9090@127.0.0.1>;tag=ours".into(),
        to: "<sip:0903123678@127.0.0.1:5099>".into(),
        call_id: "out1".into(),
        cseq: 1,
        headers: String::new(),
        body: None,
    }
}

fn sent(tx: &mut TransactionLayer) -> Vec<String> {
    std::iter::from_fn(|| tx.poll_transmit())
        .map(|(_, b)| String::from_utf8(b).unwrap())
        .collect()
}

fn events(tx: &mut TransactionLayer) -> Vec<TxEvent> {
    std::iter::from_fn(|| tx.poll_event()).collect()
}

/// Runs every timer up to `until`: what was sent (with when, in ms after `t0`) and the
/// events.
fn run_until(
    tx: &mut TransactionLayer,
    t0: Instant,
    until: Instant,
) -> (Vec<(u128, String)>, Vec<TxEvent>) {
    let mut out = vec![];
    let mut evs = vec![];
    while let Some(at) = tx.poll_timeout() {
        if at > until {
            break;
        }
        tx.handle_timeout(at);
        let ms = at.duration_since(t0).as_millis();
        out.extend(sent(tx).into_iter().map(|m| (ms, m)));
        evs.extend(events(tx));
    }
    (out, evs)
}

fn new_request_id(evs: &[TxEvent]) -> TxId {
    match evs {
        [TxEvent::Request { id, .. }] => id.clone(),
        other => panic!("expected one new request, got {other:?}"),
    }
}

#[test]
fn an_invite_server_transaction_retransmits_its_non_2xx_at_g_intervals_until_the_ack() {
    let mut tx = layer();
    let t0 = Instant::now();
    let invite = request("INVITE", "z9hG4bK-i1");
    tx.handle_request(t0, udp(), invite.clone());
    let id = new_request_id(&events(&mut tx));
    assert!(
        sent(&mut tx).is_empty(),
        "the user decides about 100 Trying"
    );
    assert!(tx.respond(t0, &id, &response_to(&invite, 486)));
    assert!(sent(&mut tx)[0].starts_with("SIP/2.0 486"));
    // Timer G: T1, doubling, capped at T2.
    let (out, _) = run_until(&mut tx, t0, t0 + Duration::from_millis(7600));
    let times: Vec<u128> = out.iter().map(|(ms, _)| *ms).collect();
    assert_eq!(times, [500, 1500, 3500, 7500]);
    assert!(out.iter().all(|(_, m)| m.starts_with("SIP/2.0 486")));
    // The ACK (same branch) stops it; Timer I (T4) then ends the transaction.
    let at = t0 + Duration::from_secs(8);
    tx.handle_request(at, udp(), request("ACK", "z9hG4bK-i1"));
    assert!(
        events(&mut tx).is_empty(),
        "the ACK of a non-2xx stays here"
    );
    tx.handle_request(at, udp(), request("ACK", "z9hG4bK-i1"));
    assert!(events(&mut tx).is_empty(), "so does its retransmission");
    let (out, _) = run_until(&mut tx, t0, at + Duration::from_millis(4999));
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(tx.len(), 1, "Timer I not yet");
    run_until(&mut tx, t0, at + Duration::from_secs(5));
    assert!(tx.is_empty(), "Timer I");
    assert!(!tx.respond(at, &id, &response_to(&invite, 500)), "gone");
}

#[test]
fn an_unacknowledged_non_2xx_ends_at_timer_h() {
    let mut tx = layer();
    let t0 = Instant::now();
    let invite = request("INVITE", "z9hG4bK-h");
    tx.handle_request(t0, udp(), invite.clone());
    let id = new_request_id(&events(&mut tx));
    tx.respond(t0, &id, &response_to(&invite, 404));
    sent(&mut tx);
    let (out, evs) = run_until(&mut tx, t0, t0 + Duration::from_millis(31_900));
    assert_eq!(out.last().unwrap().0, 31_500, "every 4 s once at T2");
    assert!(evs.is_empty());
    assert_eq!(tx.len(), 1);
    let (out, _) = run_until(&mut tx, t0, t0 + Duration::from_secs(32));
    assert!(out.is_empty() && tx.is_empty(), "Timer H at 64·T1");
}

#[test]
fn a_retransmitted_request_is_absorbed_and_answered_with_the_last_response() {
    let mut tx = layer();
    let t0 = Instant::now();
    let invite = request("INVITE", "z9hG4bK-r");
    tx.handle_request(t0, udp(), invite.clone());
    let id = new_request_id(&events(&mut tx));
    // Before any response: silence, and no second event.
    tx.handle_request(t0, udp(), invite.clone());
    assert!(events(&mut tx).is_empty() && sent(&mut tx).is_empty());
    tx.respond(t0, &id, &response_to(&invite, 100));
    tx.respond(t0, &id, &response_to(&invite, 180));
    sent(&mut tx);
    // Repeated to where the copy came from (a NAT may have moved it).
    let moved = Flow::Udp("127.0.0.1:6000".parse().unwrap());
    tx.handle_request(t0, moved, invite);
    let out: Vec<_> = std::iter::from_fn(|| tx.poll_transmit()).collect();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, moved);
    assert!(String::from_utf8_lossy(&out[0].1).starts_with("SIP/2.0 180"));
    assert!(events(&mut tx).is_empty());

    // A non-INVITE: answered once, the answer repeated until Timer J.
    let info = request("INFO", "z9hG4bK-n");
    tx.handle_request(t0, udp(), info.clone());
    let id = new_request_id(&events(&mut tx));
    assert!(tx.respond(t0, &id, &response_to(&info, 200)));
    assert!(!tx.respond(t0, &id, &response_to(&info, 500)), "one final");
    let first = sent(&mut tx);
    tx.handle_request(t0 + Duration::from_secs(1), udp(), info.clone());
    assert_eq!(sent(&mut tx), first);
    assert!(events(&mut tx).is_empty());
    run_until(&mut tx, t0, t0 + Duration::from_secs(32));
    assert!(!tx.matches_server(&info), "Timer J (64·T1) ended it");
    tx.handle_request(t0 + Duration::from_secs(33), udp(), info);
    assert_eq!(events(&mut tx).len(), 1, "a new transaction now");
}

#[test]
fn a_2xx_is_accepted_the_ack_goes_up_and_timer_l_ends_it() {
    let mut tx = layer();
    let t0 = Instant::now();
    let invite = request("INVITE", "z9hG4bK-a");
    tx.handle_request(t0, udp(), invite.clone());
    let id = new_request_id(&events(&mut tx));
    assert!(tx.respond(t0, &id, &response_to(&invite, 200)));
    assert!(!tx.respond(t0, &id, &response_to(&invite, 486)), "answered");
    sent(&mut tx);
    // No retransmission by the transaction: the 2xx is the dialog's to repeat.
    let (out, _) = run_until(&mut tx, t0, t0 + Duration::from_secs(31));
    assert!(out.is_empty());
    tx.handle_request(t0, udp(), request("ACK", "z9hG4bK-a"));
    assert!(matches!(&events(&mut tx)[..], [TxEvent::Ack { .. }]));
    assert!(tx.matches_server(&invite));
    run_until(&mut tx, t0, t0 + Duration::from_secs(32));
    assert!(tx.is_empty(), "Timer L");
}

#[test]
fn a_cancel_has_its_own_transaction_and_names_its_invite() {
    let mut tx = layer();
    let t0 = Instant::now();
    let invite = request("INVITE", "z9hG4bK-c");
    tx.handle_request(t0, udp(), invite);
    let invite_id = new_request_id(&events(&mut tx));
    tx.handle_request(t0, udp(), request("CANCEL", "z9hG4bK-c"));
    let evs = events(&mut tx);
    let [TxEvent::Cancel { id, invite, .. }] = &evs[..] else {
        panic!("{evs:?}")
    };
    assert_eq!(invite.as_ref(), Some(&invite_id));
    assert_ne!(id, &invite_id);
    tx.handle_request(t0, udp(), request("CANCEL", "z9hG4bK-unknown"));
    assert!(matches!(
        &events(&mut tx)[..],
        [TxEvent::Cancel { invite: None, .. }]
    ));
}

#[test]
fn over_tcp_nothing_is_retransmitted_and_timers_i_and_j_are_zero() {
    let mut tx = layer();
    let t0 = Instant::now();
    let invite = request("INVITE", "z9hG4bK-t");
    tx.handle_request(t0, tcp(), invite.clone());
    let id = new_request_id(&events(&mut tx));
    tx.respond(t0, &id, &response_to(&invite, 486));
    sent(&mut tx);
    tx.handle_request(t0, tcp(), request("ACK", "z9hG4bK-t"));
    let (out, _) = run_until(&mut tx, t0, t0);
    assert!(out.is_empty());
    assert!(tx.is_empty(), "Timer I is zero on a stream");
    let bye = request("BYE", "z9hG4bK-tb");
    tx.handle_request(t0, tcp(), bye.clone());
    let id = new_request_id(&events(&mut tx));
    tx.respond(t0, &id, &response_to(&bye, 200));
    assert!(tx.is_empty(), "Timer J is zero on a stream");
}

#[test]
fn a_non_invite_client_transaction_retransmits_on_e_and_times_out_with_timer_f() {
    let mut tx = layer();
    let t0 = Instant::now();
    let id = tx.start_client(t0, udp(), client_request(Method::Options));
    let first = sent(&mut tx);
    assert!(first[0].starts_with("OPTIONS sip:0903123678@127.0.0.1:5099 SIP/2.0\r\n"));
    assert!(first[0].contains(";branch=z9hG4bK") && first[0].contains("CSeq: 1 OPTIONS\r\n"));
    let (out, evs) = run_until(&mut tx, t0, t0 + Duration::from_secs(32));
    let times: Vec<u128> = out.iter().map(|(ms, _)| *ms).collect();
    assert_eq!(&times[..4], &[500, 1500, 3500, 7500], "E doubles up to T2");
    assert!(times.windows(2).all(|w| w[1] - w[0] <= 4000));
    assert!(out.iter().all(|(_, m)| *m == first[0]), "identical copies");
    assert!(
        matches!(&evs[..], [TxEvent::Timeout { id: i }] if *i == id),
        "{evs:?}"
    );
    assert!(tx.is_empty());
}

#[test]
fn a_provisional_slows_timer_e_and_the_final_goes_up_once_then_timer_k() {
    let mut tx = layer();
    let t0 = Instant::now();
    let id = tx.start_client(t0, udp(), client_request(Method::Bye));
    let req = sent(&mut tx).remove(0);
    tx.handle_response(t0, reply(&req, 100));
    assert!(
        events(&mut tx).is_empty(),
        "a provisional to a non-INVITE stays here"
    );
    let (out, _) = run_until(&mut tx, t0, t0 + Duration::from_millis(4500));
    let times: Vec<u128> = out.iter().map(|(ms, _)| *ms).collect();
    assert_eq!(times, [500, 4500], "T2 after the provisional");
    tx.handle_response(t0 + Duration::from_secs(5), reply(&req, 200));
    tx.handle_response(t0 + Duration::from_secs(5), reply(&req, 200));
    let evs = events(&mut tx);
    assert!(matches!(&evs[..], [TxEvent::Response { id: i, response }]
        if *i == id && response.status_code.code() == 200));
    let (out, evs) = run_until(&mut tx, t0, t0 + Duration::from_secs(10));
    assert!(out.is_empty());
    assert!(matches!(&evs[..], [TxEvent::Terminated { id: i }] if *i == id));
}

#[test]
fn an_invite_client_transaction_retransmits_on_timer_a_and_gives_up_at_timer_b() {
    let mut tx = layer();
    let t0 = Instant::now();
    let id = tx.start_client(t0, udp(), client_request(Method::Invite));
    sent(&mut tx);
    let (out, evs) = run_until(&mut tx, t0, t0 + Duration::from_secs(40));
    let times: Vec<u128> = out.iter().map(|(ms, _)| *ms).collect();
    assert_eq!(times, [500, 1500, 3500, 7500, 15500, 31500], "no T2 cap");
    assert!(matches!(&evs[..], [TxEvent::Timeout { id: i }] if *i == id));
    assert!(tx.is_empty());
}

#[test]
fn an_invite_client_transaction_acks_a_non_2xx_itself_until_timer_d() {
    let mut tx = layer();
    let t0 = Instant::now();
    let id = tx.start_client(t0, udp(), client_request(Method::Invite));
    let invite = sent(&mut tx).remove(0);
    tx.handle_response(t0, reply(&invite, 180));
    let evs = events(&mut tx);
    assert!(
        matches!(&evs[..], [TxEvent::Response { .. }]),
        "provisionals go up"
    );
    let (out, _) = run_until(&mut tx, t0, t0 + Duration::from_secs(20));
    assert!(out.is_empty(), "a provisional stops Timer A");
    tx.handle_response(t0, reply(&invite, 486));
    let ack = sent(&mut tx);
    assert_eq!(ack.len(), 1);
    assert!(ack[0].starts_with("ACK sip:0903123678@127.0.0.1:5099 SIP/2.0\r\n"));
    let via = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("Via:"))
            .unwrap()
            .to_string()
    };
    assert_eq!(via(&ack[0]), via(&invite), "same branch as the INVITE");
    assert!(ack[0].contains("To: <sip:0903123678@127.0.0.1:5099>;tag=far\r\n"));
    assert!(ack[0].contains("CSeq: 1 ACK\r\n"));
    assert_eq!(events(&mut tx).len(), 1, "the final goes up");
    // A retransmitted final: the same ACK again, nothing up.
    tx.handle_response(t0 + Duration::from_secs(1), reply(&invite, 486));
    assert_eq!(sent(&mut tx), ack);
    assert!(events(&mut tx).is_empty());
    let (_, evs) = run_until(&mut tx, t0, t0 + Duration::from_secs(32));
    assert!(
        matches!(&evs[..], [TxEvent::Terminated { id: i }] if *i == id),
        "Timer D"
    );
}

#[test]
fn accepted_passes_every_2xx_up_until_timer_m() {
    let mut tx = layer();
    let t0 = Instant::now();
    let id = tx.start_client(t0, udp(), client_request(Method::Invite));
    let invite = sent(&mut tx).remove(0);
    tx.handle_response(t0, reply(&invite, 200));
    tx.handle_response(t0 + Duration::from_secs(1), reply(&invite, 200));
    tx.handle_response(t0 + Duration::from_secs(1), reply(&invite, 486));
    assert!(
        sent(&mut tx).is_empty(),
        "the ACK of a 2xx is not the transaction's"
    );
    let evs = events(&mut tx);
    assert_eq!(evs.len(), 2, "both 2xx, not the late 486: {evs:?}");
    let (_, evs) = run_until(&mut tx, t0, t0 + Duration::from_secs(32));
    assert!(
        matches!(&evs[..], [TxEvent::Terminated { id: i }] if *i == id),
        "Timer M"
    );
    assert!(tx.is_empty());
}

#[test]
fn cancel_repeats_the_invite_s_identity_and_only_while_it_is_unanswered() {
    let mut tx = layer();
    let t0 = Instant::now();
    let invite_id = tx.start_client(t0, udp(), client_request(Method::Invite));
    let invite = sent(&mut tx).remove(0);
    let cancel_id = tx.cancel(t0, &invite_id).unwrap();
    let cancel = sent(&mut tx).remove(0);
    assert!(cancel.starts_with("CANCEL sip:0903123678@127.0.0.1:5099 SIP/2.0\r\n"));
    let line = |m: &str, h: &str| m.lines().find(|l| l.starts_with(h)).unwrap().to_string();
    for h in ["Via:", "From:", "To:", "Call-ID:"] {
        assert_eq!(line(&cancel, h), line(&invite, h), "{h}");
    }
    assert_eq!(line(&cancel, "CSeq:"), "CSeq: 1 CANCEL");
    assert_ne!(cancel_id, invite_id);
    tx.handle_response(t0, reply(&cancel, 200));
    assert!(matches!(&events(&mut tx)[..], [TxEvent::Response { id, .. }] if *id == cancel_id));
    tx.handle_response(t0, reply(&invite, 487));
    sent(&mut tx);
    assert!(
        tx.cancel(t0, &invite_id).is_none(),
        "nothing to cancel after the final"
    );
}

#[test]
fn a_lost_connection_ends_what_waits_on_it() {
    let mut tx = layer();
    let t0 = Instant::now();
    let remote: SocketAddr = "127.0.0.1:5099".parse().unwrap();
    let invite = tx.start_client(t0, Flow::tcp_to(remote), client_request(Method::Invite));
    let register = tx.start_client(t0, Flow::tcp_to(remote), client_request(Method::Register));
    let other = tx.start_client(t0, udp(), client_request(Method::Options));
    sent(&mut tx);
    tx.handle_transport_error(remote);
    let mut failed: Vec<TxId> = events(&mut tx)
        .into_iter()
        .map(|e| match e {
            TxEvent::TransportError { id } => id,
            e => panic!("{e:?}"),
        })
        .collect();
    failed.sort();
    let mut expected = vec![invite, register];
    expected.sort();
    assert_eq!(failed, expected);
    assert_eq!(tx.len(), 1);
    tx.abandon(&other);
    assert!(tx.is_empty());
}
