//! Edge cases driven by the Rust test caller: missing ACK (Timer H), RTP inactivity,
//! RTP packetisation as received, hostile bytes on UDP and TCP, draining shutdown, and
//! refusing calls while media is behind (overload).

use std::time::Duration;

use crate::support;
use crate::support::client::{Client, parse_rtp, sdp};
use crate::support::{Service, Transport, sipp};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_ack_retransmits_200_then_hangs_up_with_bye() {
    // T1 = 20 ms makes Timer H 1.28 s; the logic is the same as with 500 ms.
    let svc = Service::start("[sip]\nt1 = \"20ms\"\nt2 = \"160ms\"\n").await;
    let mut c = Client::new(svc.sip_addr()).await;
    c.call_until_200().await;
    // Never ACK: the 200 comes again, then a BYE.
    let mut retransmissions = 0;
    let bye = loop {
        let m = c.recv(Duration::from_secs(10)).await.expect("200 or BYE");
        if m.status() == Some(200) {
            retransmissions += 1;
        } else if m.is_request("BYE") {
            break m;
        }
    };
    assert!(
        retransmissions >= 5,
        "2xx retransmitted until Timer H ({retransmissions})"
    );
    c.answer_bye(&bye).await;
    let calls = svc.wait_calls(1).await;
    assert_eq!(calls[0].end_reason, "ack_timeout");
    svc.wait_idle_legs().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_caller_is_hung_up_after_rtp_inactivity() {
    let svc = Service::start("[rtp]\ninactivity_timeout = \"1s\"\n").await;
    let mut c = Client::new(svc.sip_addr()).await;
    c.call_until_200().await;
    c.ack().await;
    let bye = c
        .expect(Duration::from_secs(10), |m| m.is_request("BYE"))
        .await;
    c.answer_bye(&bye).await;
    let calls = svc.wait_calls(1).await;
    assert_eq!(calls[0].end_reason, "rtp_timeout");
    assert_eq!(calls[0].rtp_packets_received, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_rtp_has_correct_sequence_timestamps_ssrc_and_marker() {
    let svc = Service::start("").await;
    let mut c = Client::new(svc.sip_addr()).await;
    let ok = c.call_until_200().await;
    // PCMA was first in our offer: the answer respects the offer's order.
    assert!(ok.body().contains("m=audio"), "{}", ok.0);
    assert!(ok.body().contains("RTP/AVP 8 101"), "{}", ok.body());
    c.ack().await;
    let frames = support::prompt_frames("demo_welcome") as usize;
    let mut packets = Vec::new();
    let mut buf = [0u8; 2048];
    while packets.len() < frames + 60 {
        let (n, _) = tokio::time::timeout(Duration::from_secs(10), c.rtp.recv_from(&mut buf))
            .await
            .expect("RTP keeps coming")
            .expect("recv");
        packets.push(parse_rtp(&buf[..n]).expect("valid RTP"));
    }
    // Silence may precede the ACK; the prompt's talkspurt starts with the marker bit.
    let first = packets[0];
    assert!(packets.iter().all(|p| p.pt == 8));
    let start = packets
        .iter()
        .position(|p| p.marker)
        .expect("a marked packet");
    assert!(packets.len() - start >= frames, "the whole welcome prompt");
    for w in packets.windows(2) {
        assert_eq!(w[1].seq, w[0].seq.wrapping_add(1), "sequence +1");
        assert_eq!(
            w[1].ts,
            w[0].ts.wrapping_add(160),
            "timestamp +160 per 20 ms"
        );
        assert_eq!(w[1].ssrc, first.ssrc, "one SSRC");
        assert_eq!(w[1].payload_len, 160);
    }
    assert_eq!(packets.iter().filter(|p| p.marker).count(), 1);
    let bye = c.in_dialog("BYE", "", "");
    c.send(&bye).await;
    let calls = svc.wait_calls(1).await;
    assert_eq!(calls[0].codec.as_deref(), Some("PCMA"));
}

/// Bytes no SIP element should choke on.
fn hostile_datagrams() -> Vec<Vec<u8>> {
    let valid =
        b"INVITE sip:9090@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:9090@127.0.0.1>\r\nCall-ID: hostile\r\nCSeq: 1 INVITE\r\n\
Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
            .to_vec();
    let mut out = vec![
        Vec::new(),
        b"\r\n\r\n".to_vec(),
        vec![0u8; 1],
        vec![0xffu8; 1500],
        b"GARBAGE\r\n\r\n".to_vec(),
        b"SIP/2.0 200 OK\r\n\r\n".to_vec(),
        b"INVITE\r\n".to_vec(),
        b"FOO sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKf\r\nCall-ID: f\r\nCSeq: 1 FOO\r\n\r\n".to_vec(),
        vec![b'A'; 65_000],
    ];
    for cut in (1..valid.len()).step_by(7) {
        out.push(valid[..cut].to_vec());
    }
    let mut bad_cl = valid.clone();
    bad_cl.extend_from_slice(b"trailing junk");
    out.push(
        String::from_utf8_lossy(&valid)
            .replace("Content-Length: 0", "Content-Length: 999")
            .into_bytes(),
    );
    out.push(
        String::from_utf8_lossy(&valid)
            .replace("Content-Length: 0", "Content-Length: -5")
            .into_bytes(),
    );
    out.push(bad_cl);
    let mut non_utf8 = valid.clone();
    non_utf8[40] = 0xc3;
    out.push(non_utf8);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_udp_and_tcp_bytes_do_not_stop_the_service() {
    let svc = Service::start("").await;
    let c = Client::new(svc.sip_addr()).await;
    for d in hostile_datagrams() {
        c.send_raw(&d).await;
    }
    // Over TCP: a stream of junk, a half message, an oversized head, abrupt closes.
    for chunk in [
        vec![0xffu8; 10_000],
        b"INVITE sip:9090@x SIP/2.0\r\nContent-Length: 10\r\n".to_vec(),
        vec![b'B'; 100_000],
        b"\r\n\r\n\r\n".to_vec(),
    ] {
        if let Ok(mut s) = tokio::net::TcpStream::connect(svc.sip_addr()).await {
            let _ = s.write_all(&chunk).await;
            let _ = s.shutdown().await;
        }
    }
    // The FOO request above is well framed: it must have been answered 501.
    let mut got_501 = false;
    while let Some(m) = c.recv(Duration::from_millis(300)).await {
        got_501 |= m.status() == Some(501);
    }
    assert!(got_501, "unknown method answered 501");
    // And a normal call still completes, over UDP and over TCP.
    let run = sipp(
        "after_garbage_udp",
        "uac_no_digit.xml",
        svc.sip_addr(),
        Transport::Udp,
        &[],
    )
    .await;
    assert!(run.ok(), "{}", run.explain());
    let run = sipp(
        "after_garbage_tcp",
        "uac_no_digit.xml",
        svc.sip_addr(),
        Transport::Tcp,
        &[],
    )
    .await;
    assert!(run.ok(), "{}", run.explain());
    let calls = svc.wait_calls(2).await;
    assert!(calls.iter().all(|r| r.end_reason == "local_bye"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_refuses_new_calls_and_hangs_up_active_ones_after_grace() {
    let svc = Service::start("[shutdown]\ngrace = \"1s\"\n").await;
    let mut c = Client::new(svc.sip_addr()).await;
    c.call_until_200().await;
    c.ack().await;
    let addr = svc.sip_addr();
    let calls = svc.app.calls.clone();
    let stopping = tokio::spawn(svc.app.shutdown());
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A new INVITE while draining: 503 with Retry-After.
    let late = Client::new(addr).await;
    late.send(&late.invite(support::DEMO, "late", &sdp(late.rtp_port(), "")))
        .await;
    let refused = late
        .expect(Duration::from_secs(5), |m| {
            m.status().is_some_and(|s| s >= 200)
        })
        .await;
    assert_eq!(refused.status(), Some(503), "{}", refused.0);
    assert!(refused.header("Retry-After").is_some());
    // The active call is hung up when the grace period ends.
    let bye = c
        .expect(Duration::from_secs(10), |m| m.is_request("BYE"))
        .await;
    c.answer_bye(&bye).await;
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("shutdown completes")
        .expect("join");
    let finished = calls.finished();
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].end_reason, "shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_behind_its_frame_slots_refuses_new_calls_until_it_catches_up() {
    use std::sync::atomic::Ordering;
    // Default `rtp.max_send_lag` (10 ms). The workers publish their lag once a second
    // of sending; with no call up nothing overwrites what the test sets here.
    let svc = Service::start("").await;
    let set_lag = |us: u64| {
        for w in svc.app.media.stats() {
            w.lag_us.store(us, Ordering::Relaxed);
        }
    };
    set_lag(40_000);
    let c = Client::new(svc.sip_addr()).await;
    c.send(&c.invite(support::DEMO, "overloaded", &sdp(c.rtp_port(), "")))
        .await;
    let refused = c
        .expect(Duration::from_secs(5), |m| {
            m.status().is_some_and(|s| s >= 200)
        })
        .await;
    assert_eq!(refused.status(), Some(503), "{}", refused.0);
    assert_eq!(refused.header("Retry-After"), Some("5"));
    // SIPp, a caller nobody here wrote, is refused the same way.
    let run = sipp(
        "overloaded_sipp",
        "uac_expect_503.xml",
        svc.sip_addr(),
        Transport::Udp,
        &[],
    )
    .await;
    assert!(run.ok(), "{}", run.explain());
    // Caught up: the next call is answered and runs as usual.
    set_lag(500);
    let mut ok = Client::new(svc.sip_addr()).await;
    ok.call_until_200().await;
    ok.ack().await;
    let bye = ok
        .expect(Duration::from_secs(30), |m| m.is_request("BYE"))
        .await;
    ok.answer_bye(&bye).await;
    let calls = svc.wait_calls(1).await;
    assert_eq!(calls.len(), 1, "refused calls start no call: {calls:?}");
    assert_eq!(calls[0].end_reason, "local_bye");
}
