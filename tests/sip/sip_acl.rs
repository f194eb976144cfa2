//! The SIP ACL on the whole service: a caller (SIPp, and a raw scanner datagram) from
//! 127.0.0.2 against a service whose `sip.acl` allows only 127.0.0.1 gets 403, and no
//! call, leg or transaction is created; 127.0.0.1 is served as usual.

use std::net::UdpSocket;
use std::time::Duration;

use crate::support::{Service, Transport, sipp, sipp_to};

const ONLY_LOCALHOST: &str = "[sip]\nacl = [\"127.0.0.1/32\"]\n";

fn recv_text(sock: &UdpSocket) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("an answer within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_get_403_and_never_reach_the_ivr() {
    let svc = Service::start(ONLY_LOCALHOST).await;
    let target = svc.sip_addr();

    // SIPp calling the hotline from 127.0.0.2: 403, ACK, nothing else.
    let run = sipp_to(
        "9090",
        "acl_sipp_127_0_0_2",
        "uac_acl_forbidden.xml",
        target,
        Transport::Udp,
        &["-i", "127.0.0.2"],
    )
    .await;
    assert!(run.ok(), "{}", run.explain());
    assert!(run.messages.contains("SIP/2.0 403"), "{}", run.explain());
    assert!(
        !run.messages.contains("SIP/2.0 100"),
        "no Trying for a stranger"
    );

    // A scanner's raw OPTIONS and INVITE from 127.0.0.2.
    let scanner = UdpSocket::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    scanner
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let local = scanner.local_addr().unwrap();
    for (method, cid) in [("OPTIONS", "scan-o"), ("INVITE", "scan-i")] {
        let msg = format!(
            "{method} sip:100@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK-{cid}\r\n\
From: \"sipvicious\" <sip:100@1.1.1.1>;tag=abc\r\nTo: <sip:100@{target}>\r\nCall-ID: {cid}\r\n\
CSeq: 1 {method}\r\nMax-Forwards: 70\r\nContact: <sip:100@{local}>\r\nContent-Length: 0\r\n\r\n"
        );
        scanner.send_to(msg.as_bytes(), target).unwrap();
        let answer = recv_text(&scanner);
        assert!(answer.starts_with("SIP/2.0 403 "), "{method}: {answer}");
        for leaky in ["Server:", "User-Agent:", "Allow:", "Contact:"] {
            assert!(!answer.contains(leaky), "{method} leaks {leaky}: {answer}");
        }
    }

    let census = svc.app.census().await.unwrap();
    assert_eq!(
        (census.legs, census.transactions),
        (0, 0),
        "no state for strangers"
    );
    assert_eq!(svc.app.calls.active_count(), 0);
    assert_eq!(svc.app.calls.finished_total(), 0, "no call ever started");

    // The allowed address is served: OPTIONS from SIPp on 127.0.0.1 gets 200.
    let run = sipp(
        "acl_sipp_127_0_0_1",
        "uac_options.xml",
        target,
        Transport::Udp,
        &[],
    )
    .await;
    assert!(run.ok(), "{}", run.explain());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trunk_address_is_always_allowed() {
    // Only 127.0.0.1 is listed, but the trunk lives on 127.0.0.2: it may send calls.
    let svc = Service::start(
        "[sip]\nacl = [\"127.0.0.1/32\"]\n\
[trunk]\nhost = \"127.0.0.2\"\nport = 5099\noptions_interval = \"0s\"\n",
    )
    .await;
    let state = svc.app.sip().trunk_state().borrow().clone();
    assert!(state.configured && !state.register);
    assert_eq!(state.addr, Some("127.0.0.2:5099".parse().unwrap()));
    let run = sipp(
        "acl_trunk_127_0_0_2",
        "uac_options.xml",
        svc.sip_addr(),
        Transport::Udp,
        &["-i", "127.0.0.2"],
    )
    .await;
    assert!(run.ok(), "{}", run.explain());
    assert!(run.messages.contains("SIP/2.0 200"), "{}", run.explain());
}
