//! Outbound calls through the SIP layer alone (transport + endpoint + the dial API; no
//! dialer, no media) against SIPp as the subscriber's phone / the trunk: the UAS
//! scenarios in `tests/sipp/uas/`. Each test asserts on the leg events the call layer
//! would see, on SIPp's exit code (0 = its scenario, including its own checks of our
//! messages, passed) and on SIPp's message trace.

use std::time::Duration;

use crate::support;
use crate::support::sipp::{Transport, Uas};

use tokio::sync::mpsc;

use tongdai::sip::transport::{self, SipHandle};
use tongdai_sip::auth::Credentials;
use tongdai_sip::{
    AccessConfig, Acl, Command, DialRequest, EndReason, EndpointConfig, FailCause, LegEvent,
    Timers, TrunkConfig, TrunkState, TrunkTransport,
};

const OFFER: &str = "v=0\r\no=tongdai 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n\
t=0 0\r\nm=audio 30000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

/// SIPp as the subscriber's phone / the trunk, running `scenario` from
/// `tests/sipp/uas/` for `calls` calls; traces under `tests/out/outbound/<name>`.
async fn start_uas(
    name: &str,
    scenario: &str,
    transport: TrunkTransport,
    calls: u32,
    extra: &[&str],
) -> Uas {
    start_uas_on(
        support::free_port(),
        name,
        scenario,
        transport,
        calls,
        extra,
    )
    .await
}

/// [`start_uas`] on a given port.
async fn start_uas_on(
    port: u16,
    name: &str,
    scenario: &str,
    transport: TrunkTransport,
    calls: u32,
    extra: &[&str],
) -> Uas {
    let dir = support::sipp::out_dir(&format!("outbound/{name}"));
    let calls = calls.to_string();
    let mut args = vec!["-m", &calls, "-timeout", "40s", "-timeout_error"];
    args.extend(extra);
    let transport = match transport {
        TrunkTransport::Udp => Transport::Udp,
        TrunkTransport::Tcp => Transport::Tcp,
    };
    let scenario = support::repo().join("tests/sipp/uas").join(scenario);
    Uas::spawn(&dir, &scenario, port, transport, &args).await
}

/// How long SIPp may take to finish its calls.
const SIPP_ENDS: Duration = Duration::from_secs(60);

fn trunk(uas: &Uas, transport: TrunkTransport) -> TrunkConfig {
    TrunkConfig {
        host: "127.0.0.1".into(),
        port: uas.port,
        transport,
        caller_id: "9090".into(),
        p_asserted_identity: Some("9090".into()),
        credentials: Some(Credentials {
            username: "tongdai".into(),
            password: "s3cret".into(),
            realm: None,
        }),
        register: false,
        register_expires: Duration::from_secs(3600),
        retry_min: Duration::from_secs(1),
        retry_max: Duration::from_secs(10),
        options_interval: None,
    }
}

/// The SIP layer alone on a free loopback port, with `trunk`.
async fn sip_layer(trunk: TrunkConfig, t1: Duration) -> SipHandle {
    let (udp, tcp) = transport::bind("127.0.0.1:0".parse().unwrap())
        .await
        .expect("bind");
    let advertised = udp.local_addr().unwrap();
    let cfg = EndpointConfig {
        advertised,
        timers: Timers {
            t1,
            ..Timers::default()
        },
        user_agent: "tongdai-test".into(),
        max_legs: 10,
    };
    let access = AccessConfig {
        acl: Acl::parse(&["127.0.0.0/8"]).unwrap(),
        trunk: Some(trunk),
    };
    let router: transport::Router = Box::new(|_| Err(404));
    let clock = std::sync::Arc::new(tongdai::clock::SystemClock);
    let (sip, _driver) =
        transport::spawn_with(cfg, access, udp, tcp, router, clock).expect("spawn");
    sip
}

async fn next(rx: &mut mpsc::UnboundedReceiver<LegEvent>) -> LegEvent {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("a leg event within 30 s")
        .expect("the driver is alive")
}

async fn dial(sip: &SipHandle) -> (u64, mpsc::UnboundedReceiver<LegEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let dialed = sip
        .dial(
            DialRequest {
                target: "0903123678".into(),
                offer_sdp: OFFER.as_bytes().to_vec(),
                extra_headers: vec![("X-Attempt".into(), "1".into())],
                ..Default::default()
            },
            tx,
        )
        .await
        .expect("dial accepted");
    (dialed.leg, rx)
}

/// Answered call, then we hang up (BYE through the Record-Route).
async fn answered_and_we_hang_up(name: &str, transport: TrunkTransport) {
    let uas = start_uas(name, "uas_answer.xml", transport, 1, &[]).await;
    let sip = sip_layer(trunk(&uas, transport), Duration::from_millis(500)).await;
    let (leg, mut rx) = dial(&sip).await;
    match next(&mut rx).await {
        LegEvent::Progress {
            leg: l,
            status: 180,
            ..
        } => assert_eq!(l, leg),
        other => panic!("expected 180 progress, got {other:?}"),
    }
    match next(&mut rx).await {
        LegEvent::Answered { leg: l, sdp } => {
            assert_eq!(l, leg);
            let sdp = String::from_utf8(sdp).unwrap();
            assert!(sdp.contains("m=audio") && sdp.contains("PCMU"), "{sdp}");
        }
        other => panic!("expected Answered, got {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    sip.command(Command::Hangup { leg });
    match next(&mut rx).await {
        LegEvent::ByeCompleted {
            leg: l,
            status: Some(200),
        } => assert_eq!(l, leg),
        other => panic!("expected ByeCompleted 200, got {other:?}"),
    }
    let census = sip.census().await.unwrap();
    assert_eq!(census.legs, 0);
    if matches!(transport, TrunkTransport::Tcp) {
        assert_eq!(census.tcp_connections, 1, "one connection for everything");
    }
    let run = uas.finish(SIPP_ENDS).await;
    assert_eq!(run.code, Some(0), "{}", run.explain);
    assert!(
        run.messages
            .contains("P-Asserted-Identity: <sip:9090@127.0.0.1>")
    );
    assert!(run.messages.contains("X-Attempt: 1"));
    // The BYE follows the route set SIPp's Record-Route created.
    let bye = run
        .messages
        .split("BYE sip:")
        .nth(1)
        .expect("SIPp received our BYE");
    assert!(bye.contains("Route: <sip:127.0.0.1:"), "{bye}");
    assert!(bye.contains("CSeq: 2 BYE"), "{bye}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_call_over_udp_then_we_hang_up() {
    answered_and_we_hang_up("answer_udp", TrunkTransport::Udp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_call_over_tcp_then_we_hang_up() {
    answered_and_we_hang_up("answer_tcp", TrunkTransport::Tcp).await;
}

/// Answered call, then the callee's BYE arrives (over TCP: on our own connection).
async fn answered_and_the_callee_hangs_up(name: &str, transport: TrunkTransport) {
    let uas = start_uas(name, "uas_answer_callee_bye.xml", transport, 1, &[]).await;
    let sip = sip_layer(trunk(&uas, transport), Duration::from_millis(500)).await;
    let (leg, mut rx) = dial(&sip).await;
    assert!(matches!(
        next(&mut rx).await,
        LegEvent::Progress { status: 180, .. }
    ));
    assert!(matches!(next(&mut rx).await, LegEvent::Answered { .. }));
    match next(&mut rx).await {
        LegEvent::Terminated {
            leg: l,
            reason: EndReason::RemoteBye,
        } => assert_eq!(l, leg),
        other => panic!("expected Terminated(RemoteBye), got {other:?}"),
    }
    let run = uas.finish(SIPP_ENDS).await;
    assert_eq!(run.code, Some(0), "{}", run.explain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_tcp_connection_is_reopened_for_the_next_call() {
    let first = start_uas("tcp_conn_1", "uas_answer.xml", TrunkTransport::Tcp, 1, &[]).await;
    let port = first.port;
    let sip = sip_layer(
        trunk(&first, TrunkTransport::Tcp),
        Duration::from_millis(500),
    )
    .await;
    let (leg, mut rx) = dial(&sip).await;
    assert!(matches!(next(&mut rx).await, LegEvent::Progress { .. }));
    assert!(matches!(next(&mut rx).await, LegEvent::Answered { .. }));
    sip.command(Command::Hangup { leg });
    assert!(matches!(next(&mut rx).await, LegEvent::ByeCompleted { .. }));
    let run = first.finish(SIPP_ENDS).await;
    assert_eq!(run.code, Some(0), "{}", run.explain);
    // SIPp is gone and its end of the connection with it.
    for _ in 0..250 {
        if sip.census().await.unwrap().tcp_connections == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        sip.census().await.unwrap().tcp_connections,
        0,
        "loss noticed"
    );
    // The trunk comes back on the same port: the next call opens a new connection.
    let second = start_uas_on(
        port,
        "tcp_conn_2",
        "uas_answer.xml",
        TrunkTransport::Tcp,
        1,
        &[],
    )
    .await;
    let (leg, mut rx) = dial(&sip).await;
    assert!(matches!(next(&mut rx).await, LegEvent::Progress { .. }));
    assert!(matches!(next(&mut rx).await, LegEvent::Answered { .. }));
    sip.command(Command::Hangup { leg });
    assert!(matches!(next(&mut rx).await, LegEvent::ByeCompleted { .. }));
    let run = second.finish(SIPP_ENDS).await;
    assert_eq!(run.code, Some(0), "{}", run.explain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_call_then_the_callee_hangs_up() {
    answered_and_the_callee_hangs_up("callee_bye_udp", TrunkTransport::Udp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_call_over_tcp_then_the_callee_hangs_up() {
    answered_and_the_callee_hangs_up("callee_bye_tcp", TrunkTransport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejections_are_reported_with_status_and_reason() {
    for (code, cause, scenario) in [
        (486, 17, "uas_486_busy.xml"),
        (480, 18, "uas_480_unavailable.xml"),
        (603, 21, "uas_603_decline.xml"),
        (404, 1, "uas_404_not_found.xml"),
    ] {
        let name = format!("reject_{code}");
        let uas = start_uas(&name, scenario, TrunkTransport::Udp, 1, &[]).await;
        let sip = sip_layer(trunk(&uas, TrunkTransport::Udp), Duration::from_millis(500)).await;
        let (leg, mut rx) = dial(&sip).await;
        assert!(matches!(
            next(&mut rx).await,
            LegEvent::Progress { status: 180, .. }
        ));
        match next(&mut rx).await {
            LegEvent::Failed {
                leg: l,
                status,
                cause: FailCause::Rejected,
                reason,
                ..
            } => {
                assert_eq!((l, status), (leg, code));
                assert_eq!(reason, Some(format!("Q.850;cause={cause}")));
            }
            other => panic!("{code}: expected Failed, got {other:?}"),
        }
        let run = uas.finish(SIPP_ENDS).await;
        assert_eq!(
            run.code,
            Some(0),
            "{code}: SIPp got our ACK\n{}",
            run.explain
        );
        assert!(run.messages.contains("CSeq: 1 ACK"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ringing_forever_is_cancelled_after_the_ring_timeout() {
    let uas = start_uas(
        "ring_cancel",
        "uas_ring_forever.xml",
        TrunkTransport::Udp,
        1,
        &[],
    )
    .await;
    let sip = sip_layer(trunk(&uas, TrunkTransport::Udp), Duration::from_millis(500)).await;
    let (leg, mut rx) = dial(&sip).await;
    assert!(matches!(
        next(&mut rx).await,
        LegEvent::Progress { status: 180, .. }
    ));
    // The call layer's ring timeout (short here), then CANCEL.
    let ring_timeout = tokio::time::sleep(Duration::from_secs(1));
    tokio::select! {
        _ = ring_timeout => sip.command(Command::Cancel { leg }),
        ev = rx.recv() => panic!("unexpected {ev:?}"),
    }
    match next(&mut rx).await {
        LegEvent::Failed {
            leg: l,
            status: 487,
            cause: FailCause::Cancelled,
            ..
        } => assert_eq!(l, leg),
        other => panic!("expected Failed 487, got {other:?}"),
    }
    let run = uas.finish(SIPP_ENDS).await;
    assert_eq!(run.code, Some(0), "{}", run.explain);
    assert!(run.messages.contains("CANCEL sip:0903123678@127.0.0.1:"));
    assert!(sip.census().await.unwrap().legs == 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_challenge_is_answered_and_sipp_verifies_the_credentials() {
    let uas = start_uas("auth_ok", "uas_auth.xml", TrunkTransport::Udp, 1, &[]).await;
    let sip = sip_layer(trunk(&uas, TrunkTransport::Udp), Duration::from_millis(500)).await;
    let (leg, mut rx) = dial(&sip).await;
    assert!(matches!(
        next(&mut rx).await,
        LegEvent::Progress { status: 180, .. }
    ));
    assert!(matches!(next(&mut rx).await, LegEvent::Answered { .. }));
    sip.command(Command::Hangup { leg });
    assert!(matches!(
        next(&mut rx).await,
        LegEvent::ByeCompleted {
            status: Some(200),
            ..
        }
    ));
    let run = uas.finish(SIPP_ENDS).await;
    assert_eq!(run.code, Some(0), "{}", run.explain);
    assert!(
        run.messages
            .contains("Authorization: Digest username=\"tongdai\"")
    );
    assert!(run.messages.contains("qop=auth, nc=00000001"));

    // The same trunk with a wrong password: SIPp's verifyauth refuses it (403).
    let uas = start_uas("auth_bad", "uas_auth.xml", TrunkTransport::Udp, 1, &[]).await;
    let mut bad = trunk(&uas, TrunkTransport::Udp);
    if let Some(c) = bad.credentials.as_mut() {
        c.password = "wrong".into();
    }
    let sip = sip_layer(bad, Duration::from_millis(500)).await;
    let (_, mut rx) = dial(&sip).await;
    assert!(matches!(
        next(&mut rx).await,
        LegEvent::Failed {
            status: 403,
            cause: FailCause::Rejected,
            ..
        }
    ));
    let run = uas.finish(SIPP_ENDS).await;
    assert_eq!(run.code, Some(1), "SIPp failed the call: {}", run.explain);
}

/// Waits (bounded) until the trunk state satisfies `f`.
async fn wait_trunk(
    rx: &mut tokio::sync::watch::Receiver<TrunkState>,
    what: &str,
    f: impl Fn(&TrunkState) -> bool,
) -> TrunkState {
    let waited = tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|s| f(s)))
        .await
        .map(|r| r.map(|s| s.clone()));
    match waited {
        Ok(Ok(s)) => s,
        _ => panic!("trunk never {what}: {:?}", *rx.borrow()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_with_a_challenge_and_refresh_before_expiry() {
    let uas = start_uas(
        "registrar",
        "uas_registrar.xml",
        TrunkTransport::Udp,
        1,
        &[],
    )
    .await;
    let mut cfg = trunk(&uas, TrunkTransport::Udp);
    cfg.register = true;
    let sip = sip_layer(cfg, Duration::from_millis(500)).await;
    let mut state = sip.trunk_state();
    assert!(state.borrow().configured);
    let first = wait_trunk(&mut state, "registered", |s| s.registered).await;
    let until = first.registered_until.unwrap();
    let granted = until.duration_since(first.updated_at.unwrap()).unwrap();
    assert!(granted <= Duration::from_secs(3), "granted 3 s: {first:?}");
    assert!(
        first.next_register.unwrap() < until,
        "refresh before expiry"
    );
    let refreshed = wait_trunk(&mut state, "refreshed", |s| {
        s.registered
            && s.registered_until
                .zip(s.updated_at)
                .and_then(|(u, at)| u.duration_since(at).ok())
                .is_some_and(|d| d > Duration::from_secs(3000))
    })
    .await;
    assert_eq!(refreshed.register_failures, 0);
    assert_eq!(refreshed.register_status, Some(200));
    assert_eq!(refreshed.reachable, Some(true));
    let run = uas.finish(SIPP_ENDS).await;
    assert_eq!(run.code, Some(0), "{}", run.explain);
    assert!(run.messages.contains("Authorization: Digest"));
    assert!(
        run.messages.contains("nc=00000002"),
        "the refresh reused the nonce"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn options_keepalive_answered_then_the_trunk_goes_away() {
    let uas = start_uas("options", "uas_options.xml", TrunkTransport::Udp, 2, &[]).await;
    let mut cfg = trunk(&uas, TrunkTransport::Udp);
    cfg.options_interval = Some(Duration::from_millis(500));
    // A short T1 so that Timer F (64·T1) after SIPp has gone is 3.2 s, not 32 s.
    let sip = sip_layer(cfg, Duration::from_millis(50)).await;
    let mut state = sip.trunk_state();
    let up = wait_trunk(&mut state, "reachable", |s| s.reachable == Some(true)).await;
    assert_eq!(up.options_status, Some(200));
    assert!(up.last_options_rtt.is_some());
    assert!(!up.registered && !up.register);
    let run = uas.finish(SIPP_ENDS).await;
    assert_eq!(
        run.code,
        Some(0),
        "SIPp answered two probes: {}",
        run.explain
    );
    assert!(run.messages.matches("OPTIONS sip:127.0.0.1:").count() >= 2);
    let down = wait_trunk(&mut state, "unreachable", |s| s.reachable == Some(false)).await;
    assert!(down.last_error.unwrap().contains("OPTIONS"));
}
