//! A small SIP/RTP test caller written in Rust: it complements SIPp (never replaces it)
//! where a test needs to misbehave on purpose (never ACK, send no RTP, send garbage) or
//! to inspect every RTP packet the service sends.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

pub struct Client {
    pub sip: UdpSocket,
    pub rtp: UdpSocket,
    pub server: SocketAddr,
    pub call_id: String,
    pub from_tag: String,
    pub to_tag: Option<String>,
    pub cseq: u32,
}

/// A received SIP message as text.
#[derive(Clone, Debug)]
pub struct Msg(pub String);

impl Msg {
    pub fn status(&self) -> Option<u16> {
        let line = self.0.lines().next()?;
        line.strip_prefix("SIP/2.0 ")?.get(..3)?.parse().ok()
    }
    pub fn is_request(&self, method: &str) -> bool {
        self.0.starts_with(&format!("{method} "))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.0.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
    }
    pub fn body(&self) -> &str {
        self.0.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
    }
}

pub fn sdp(rtp_port: u16, extra: &str) -> String {
    format!(
        "v=0\r\no=test 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio {rtp_port} RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\n{extra}"
    )
}

impl Client {
    pub async fn new(server: SocketAddr) -> Client {
        Client {
            sip: UdpSocket::bind("127.0.0.1:0").await.expect("bind sip"),
            rtp: UdpSocket::bind("127.0.0.1:0").await.expect("bind rtp"),
            server,
            call_id: format!("test-{}", rand_token()),
            from_tag: rand_token(),
            to_tag: None,
            cseq: 1,
        }
    }

    pub fn local(&self) -> SocketAddr {
        self.sip.local_addr().expect("addr")
    }

    pub fn rtp_port(&self) -> u16 {
        self.rtp.local_addr().expect("addr").port()
    }

    pub async fn send(&self, text: &str) {
        self.sip
            .send_to(text.as_bytes(), self.server)
            .await
            .expect("send");
    }

    pub async fn send_raw(&self, bytes: &[u8]) {
        self.sip.send_to(bytes, self.server).await.expect("send");
    }

    pub async fn recv(&self, within: Duration) -> Option<Msg> {
        let mut buf = vec![0u8; 65_536];
        let (n, _) = tokio::time::timeout(within, self.sip.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(Msg(String::from_utf8_lossy(&buf[..n]).into_owned()))
    }

    /// Receives until a message matches `pred` (bounded).
    pub async fn expect(&self, within: Duration, pred: impl Fn(&Msg) -> bool) -> Msg {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let msg = self
                .recv(left)
                .await
                .unwrap_or_else(|| panic!("no matching message within {within:?}"));
            if pred(&msg) {
                return msg;
            }
        }
    }

    pub fn invite(&self, user: &str, branch: &str, body: &str) -> String {
        let local = self.local();
        format!(
            "INVITE sip:{user}@{server} SIP/2.0\r\n\
Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
From: <sip:0903123678@{local}>;tag={tag}\r\n\
To: <sip:{user}@{server}>\r\n\
Call-ID: {cid}\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:0903123678@{local}>\r\n\
Max-Forwards: 70\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {len}\r\n\r\n{body}",
            server = self.server,
            tag = self.from_tag,
            cid = self.call_id,
            len = body.len(),
        )
    }

    pub fn in_dialog(&mut self, method: &str, extra: &str, body: &str) -> String {
        if method != "ACK" {
            self.cseq += 1;
        }
        let local = self.local();
        let cseq = if method == "ACK" { 1 } else { self.cseq };
        format!(
            "{method} sip:9090@{server} SIP/2.0\r\n\
Via: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
From: <sip:0903123678@{local}>;tag={tag}\r\n\
To: <sip:9090@{server}>;tag={to_tag}\r\n\
Call-ID: {cid}\r\n\
CSeq: {cseq} {method}\r\n\
Max-Forwards: 70\r\n{extra}\
Content-Length: {len}\r\n\r\n{body}",
            server = self.server,
            branch = rand_token(),
            tag = self.from_tag,
            to_tag = self.to_tag.clone().unwrap_or_default(),
            cid = self.call_id,
            len = body.len(),
        )
    }

    /// INVITE → 200 (records the To tag). Does not ACK.
    pub async fn call_until_200(&mut self) -> Msg {
        let invite = self.invite(super::DEMO, &rand_token(), &sdp(self.rtp_port(), ""));
        self.send(&invite).await;
        let ok = self
            .expect(Duration::from_secs(10), |m| {
                m.status().is_some_and(|s| s >= 200)
            })
            .await;
        assert_eq!(ok.status(), Some(200), "{}", ok.0);
        let to = ok.header("To").expect("To");
        self.to_tag = to.split("tag=").nth(1).map(|t| t.trim().to_string());
        ok
    }

    pub async fn ack(&mut self) {
        let ack = self.in_dialog("ACK", "", "");
        self.send(&ack).await;
    }

    /// Answers a BYE from the service with 200.
    pub async fn answer_bye(&self, bye: &Msg) {
        let mut resp = String::from("SIP/2.0 200 OK\r\n");
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            if let Some(v) = bye.header(name) {
                resp.push_str(&format!("{name}: {v}\r\n"));
            }
        }
        resp.push_str("Content-Length: 0\r\n\r\n");
        self.send(&resp).await;
    }
}

pub fn rand_token() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    format!(
        "{:x}{:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed) * 7_919
    )
}

/// One parsed RTP header.
#[derive(Clone, Copy, Debug)]
pub struct Rtp {
    pub pt: u8,
    pub marker: bool,
    pub seq: u16,
    pub ts: u32,
    pub ssrc: u32,
    pub payload_len: usize,
}

pub fn parse_rtp(b: &[u8]) -> Option<Rtp> {
    if b.len() < 12 || b[0] >> 6 != 2 {
        return None;
    }
    Some(Rtp {
        marker: b[1] & 0x80 != 0,
        pt: b[1] & 0x7f,
        seq: u16::from_be_bytes([b[2], b[3]]),
        ts: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        payload_len: b.len() - 12,
    })
}
