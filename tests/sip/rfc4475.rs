//! RFC 4475 torture messages, sent to the running service over UDP and over TCP: every
//! one is answered as the RFC says (or deliberately not answered), and afterwards the
//! service still completes a normal call with SIPp.

use std::path::PathBuf;
use std::time::Duration;

use crate::support;
use crate::support::{Service, Transport, sipp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

#[derive(Debug, Clone, PartialEq)]
enum Expect {
    /// Handed to the application: a request gets a final answer that is not a parse
    /// error (400/505…) from the edge; a response gets nothing back.
    Accept,
    /// Rejected at the edge with this status.
    Status(u16),
    /// Nothing comes back.
    Nothing,
}

fn corpus_dir() -> PathBuf {
    support::repo().join("tests/data/rfc4475")
}

fn expectations() -> Vec<(String, Expect, Expect)> {
    let text = std::fs::read_to_string(support::repo().join("tests/data/rfc4475/expected.toml"))
        .expect("expected.toml");
    let table: toml::Table = text.parse().expect("toml");
    let parse = |v: &toml::Value| match v {
        toml::Value::Integer(n) => Expect::Status(*n as u16),
        toml::Value::String(s) if s == "accept" => Expect::Accept,
        toml::Value::String(s) if s == "drop" || s == "none" => Expect::Nothing,
        other => panic!("unknown expectation {other:?}"),
    };
    let mut out: Vec<_> = table
        .iter()
        .map(|(name, v)| {
            let udp = parse(v.get("expect").expect("expect"));
            let tcp = v.get("tcp").map(parse).unwrap_or_else(|| udp.clone());
            (name.clone(), udp, tcp)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(out.len(), 49, "one expectation per torture message");
    out
}

fn is_response(bytes: &[u8]) -> bool {
    bytes.starts_with(b"SIP/")
}

/// Status codes of the responses in `text` (several may arrive, e.g. 100 then 404).
fn statuses(text: &str) -> Vec<u16> {
    text.split("SIP/2.0 ")
        .skip(1)
        .filter_map(|s| s.get(..3)?.parse().ok())
        .collect()
}

fn check(name: &str, transport: &str, expect: &Expect, bytes: &[u8], answers: &[u16]) {
    let finals: Vec<u16> = answers.iter().copied().filter(|s| *s >= 200).collect();
    match expect {
        Expect::Nothing => assert!(
            answers.is_empty(),
            "{name}/{transport}: expected silence, got {answers:?}"
        ),
        Expect::Status(code) => assert_eq!(
            finals.first(),
            Some(code),
            "{name}/{transport}: expected {code}, got {answers:?}"
        ),
        Expect::Accept if is_response(bytes) => {
            assert!(
                answers.is_empty(),
                "{name}/{transport}: a response is never answered, got {answers:?}"
            )
        }
        Expect::Accept => {
            let code = *finals
                .first()
                .unwrap_or_else(|| panic!("{name}/{transport}: no final answer ({answers:?})"));
            assert!(
                ![400, 416, 420, 505, 513].contains(&code),
                "{name}/{transport}: valid message rejected as malformed ({code})"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torture_messages_over_udp_then_a_normal_call() {
    let svc = Service::start("").await;
    for (name, expect, _) in expectations() {
        // A fresh socket per message: an unacknowledged final answer to an earlier INVITE
        // is retransmitted (Timer G) and must not land in the next message's window.
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let bytes = std::fs::read(corpus_dir().join(format!("{name}.dat"))).expect("corpus file");
        socket.send_to(&bytes, svc.sip_addr()).await.expect("send");
        let mut answers = String::new();
        let mut buf = vec![0u8; 65_536];
        // Collect what comes back within a short window (a final answer is immediate).
        while let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(250), socket.recv_from(&mut buf)).await
        {
            answers.push_str(&String::from_utf8_lossy(&buf[..n]));
            if statuses(&answers).iter().any(|s| *s >= 200) {
                break;
            }
        }
        check(&name, "udp", &expect, &bytes, &statuses(&answers));
    }
    let run = sipp(
        "rfc4475_after_udp",
        "uac_no_digit.xml",
        svc.sip_addr(),
        Transport::Udp,
        &[],
    )
    .await;
    assert!(run.ok(), "{}", run.explain());
    assert_eq!(svc.wait_calls(1).await[0].end_reason, "local_bye");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torture_messages_over_tcp_then_a_normal_call() {
    let svc = Service::start("").await;
    for (name, _, expect) in expectations() {
        let bytes = std::fs::read(corpus_dir().join(format!("{name}.dat"))).expect("corpus file");
        // One connection per message: a framing error closes the connection.
        let mut stream = TcpStream::connect(svc.sip_addr()).await.expect("connect");
        stream.write_all(&bytes).await.expect("write");
        let mut answers = String::new();
        let mut buf = vec![0u8; 65_536];
        loop {
            match tokio::time::timeout(Duration::from_millis(250), stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {
                    answers.push_str(&String::from_utf8_lossy(&buf[..n]));
                    // dblreq over TCP: the second request gets its own answer; stop at
                    // the first final one, which belongs to the first message.
                    if statuses(&answers).iter().any(|s| *s >= 200) {
                        break;
                    }
                }
                _ => break,
            }
        }
        check(&name, "tcp", &expect, &bytes, &statuses(&answers));
    }
    let run = sipp(
        "rfc4475_after_tcp",
        "uac_no_digit.xml",
        svc.sip_addr(),
        Transport::Tcp,
        &[],
    )
    .await;
    assert!(run.ok(), "{}", run.explain());
    assert_eq!(svc.wait_calls(1).await[0].end_reason, "local_bye");
}
