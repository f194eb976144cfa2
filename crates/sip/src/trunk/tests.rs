//! The trunk's REGISTER and OPTIONS keepalive in virtual time, driven through the
//! endpoint so that the transactions (Timer E/F) are the real ones.

use std::time::{Duration, Instant, SystemTime};

use crate::acl::Acl;
use crate::auth::Credentials;
use crate::endpoint::{AccessConfig, Endpoint, EndpointConfig, Flow, Output, Timers};
use crate::trunk::{TrunkConfig, TrunkState, TrunkTransport};

const TRUNK: &str = "127.0.0.1:5099";

fn cfg(register: bool, options: Option<u64>, creds: bool) -> TrunkConfig {
    TrunkConfig {
        host: "trunk.example".into(),
        port: 5099,
        transport: TrunkTransport::Udp,
        caller_id: "9090".into(),
        p_asserted_identity: None,
        credentials: creds.then(|| Credentials {
            username: "tongdai".into(),
            password: "s3cret".into(),
            realm: Some("mobifone".into()),
        }),
        register,
        register_expires: Duration::from_secs(3600),
        retry_min: Duration::from_secs(5),
        retry_max: Duration::from_secs(60),
        options_interval: options.map(Duration::from_secs),
    }
}

struct Harness {
    ep: Endpoint,
    /// Every state published, in order.
    published: Vec<TrunkState<Instant>>,
    t0: Instant,
}

impl Harness {
    fn new(trunk: TrunkConfig, t0: Instant) -> (Harness, Vec<String>) {
        let ep = Endpoint::with_access(
            EndpointConfig {
                advertised: "127.0.0.1:5060".parse().unwrap(),
                timers: Timers::default(),
                user_agent: "tongdai-test".into(),
                max_legs: 10,
            },
            AccessConfig {
                acl: Acl::default(),
                trunk: Some(trunk),
            },
        );
        let mut h = Harness {
            ep,
            published: vec![],
            t0,
        };
        h.ep.set_trunk_addr(t0, TRUNK.parse().unwrap());
        let sent = h.drain();
        (h, sent)
    }

    fn drain(&mut self) -> Vec<String> {
        let mut sent = vec![];
        while let Some(o) = self.ep.poll_output() {
            match o {
                Output::Transmit { flow, bytes } => {
                    assert_eq!(flow, Flow::Udp(TRUNK.parse().unwrap()));
                    sent.push(String::from_utf8(bytes).unwrap())
                }
                Output::Event(e) => panic!("no leg events expected: {e:?}"),
                Output::Trunk(s) => self.published.push(s),
            }
        }
        sent
    }

    /// Runs the timers up to `until`; returns what was sent, with when.
    fn run_until(&mut self, until: Instant) -> Vec<(Instant, String)> {
        let mut out = vec![];
        while let Some(at) = self.ep.poll_timeout() {
            if at > until {
                break;
            }
            self.ep.handle_timeout(at);
            out.extend(self.drain().into_iter().map(|m| (at, m)));
        }
        out
    }

    /// Runs until the next request of `method` (skipping retransmissions of others).
    fn next(&mut self, method: &str, limit: Instant) -> (Instant, String) {
        while let Some(at) = self.ep.poll_timeout() {
            assert!(at <= limit, "no {method} before the limit");
            self.ep.handle_timeout(at);
            if let Some(m) = self.drain().into_iter().find(|m| m.starts_with(method)) {
                return (at, m);
            }
        }
        panic!("no {method}")
    }

    fn answer(&mut self, at: Instant, req: &str, status: u16, extra: &str) -> Vec<String> {
        let resp = format!(
            "SIP/2.0 {status} X\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=srv\r\nCall-ID: {}\r\n\
CSeq: {}\r\n{extra}Content-Length: 0\r\n\r\n",
            hdr(req, "Via"),
            hdr(req, "From"),
            hdr(req, "To"),
            hdr(req, "Call-ID"),
            hdr(req, "CSeq"),
        );
        self.ep
            .handle_bytes(at, Flow::Udp(TRUNK.parse().unwrap()), resp.as_bytes());
        self.drain()
    }

    fn status(&self) -> TrunkState<Instant> {
        self.ep.trunk_state(self.t0)
    }
}

fn hdr<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in\n{msg}"))
}

const CHALLENGE: &str =
    "WWW-Authenticate: Digest realm=\"mobifone\", nonce=\"n1\", qop=\"auth\", algorithm=MD5\r\n";

#[test]
fn register_with_challenge_then_refresh_at_80_percent() {
    let t0 = Instant::now();
    let (mut h, sent) = Harness::new(cfg(true, None, true), t0);
    assert_eq!(sent.len(), 1);
    let reg = &sent[0];
    assert_eq!(
        reg.lines().next().unwrap(),
        "REGISTER sip:trunk.example:5099 SIP/2.0"
    );
    assert_eq!(hdr(reg, "To"), "<sip:tongdai@trunk.example>");
    assert!(hdr(reg, "From").starts_with("<sip:tongdai@trunk.example>;tag="));
    assert_eq!(hdr(reg, "Contact"), "<sip:tongdai@127.0.0.1:5060>");
    assert_eq!(hdr(reg, "Expires"), "3600");
    assert_eq!(hdr(reg, "CSeq"), "1 REGISTER");
    assert!(h.status().next_register.is_some());

    let sent = h.answer(t0, reg, 401, CHALLENGE);
    let reg2 = &sent[0];
    assert_eq!(hdr(reg2, "CSeq"), "2 REGISTER");
    assert_eq!(
        hdr(reg2, "Call-ID"),
        hdr(reg, "Call-ID"),
        "one Call-ID per registration"
    );
    let auth = hdr(reg2, "Authorization");
    assert!(auth.contains("uri=\"sip:trunk.example:5099\"") && auth.contains("nc=00000001"));
    assert!(!h.status().registered);

    let at = t0 + Duration::from_millis(40);
    h.answer(
        at,
        reg2,
        200,
        "Contact: <sip:tongdai@127.0.0.1:5060>;expires=100, <sip:other@10.0.0.9>;expires=9\r\n",
    );
    let s = h.status();
    assert!(s.registered);
    assert_eq!(s.registered_until, Some(at + Duration::from_secs(100)));
    assert_eq!(s.next_register, Some(at + Duration::from_secs(80)));
    assert_eq!(s.register_status, Some(200));
    assert_eq!(s.reachable, Some(true));
    assert!(h.published.last().unwrap().registered, "published");

    // The refresh reuses the nonce with nc=2 (no extra round trip).
    let (when, refresh) = h.next("REGISTER", at + Duration::from_secs(81));
    assert_eq!(when, at + Duration::from_secs(80));
    assert_eq!(hdr(&refresh, "CSeq"), "3 REGISTER");
    assert!(hdr(&refresh, "Authorization").contains("nc=00000002"));
    // The registrar wants a fresh nonce: one more challenge round is fine.
    let sent = h.answer(when, &refresh, 401, CHALLENGE);
    assert_eq!(hdr(&sent[0], "CSeq"), "4 REGISTER");
    h.answer(when, &sent[0], 200, "Expires: 50\r\n");
    assert_eq!(
        h.status().next_register,
        Some(when + Duration::from_secs(40)),
        "Expires header when the Contact carries none"
    );
}

#[test]
fn failures_back_off_exponentially_with_a_cap_and_honour_retry_after() {
    let t0 = Instant::now();
    let (mut h, sent) = Harness::new(cfg(true, None, false), t0);
    let mut req = sent[0].clone();
    let mut now = t0;
    let mut delays = vec![];
    for _ in 0..6 {
        h.answer(now, &req, 503, "");
        let (at, next) = h.next("REGISTER", now + Duration::from_secs(3600));
        delays.push(at.duration_since(now).as_secs());
        now = at;
        req = next;
    }
    assert_eq!(delays, [5, 10, 20, 40, 60, 60]);
    assert_eq!(h.status().register_failures, 6);
    assert_eq!(h.status().register_status, Some(503));
    assert!(h.status().last_error.unwrap().contains("503"));
    h.answer(now, &req, 503, "Retry-After: 300\r\n");
    let (at, req) = h.next("REGISTER", now + Duration::from_secs(3600));
    assert_eq!(at.duration_since(now), Duration::from_secs(300));
    // Success resets the count.
    h.answer(at, &req, 200, "Expires: 600\r\n");
    let s = h.status();
    assert_eq!(
        (s.register_failures, s.registered, s.last_error),
        (0, true, None)
    );
}

#[test]
fn a_timed_out_register_marks_the_trunk_unreachable_and_the_binding_lapses() {
    let t0 = Instant::now();
    let (mut h, sent) = Harness::new(cfg(true, None, false), t0);
    h.answer(t0, &sent[0], 200, "Expires: 3600\r\n");
    // The refresh at 2880 s is never answered: Timer F after 32 s.
    let refresh = t0 + Duration::from_secs(2880);
    let sent = h.run_until(refresh + Duration::from_secs(31));
    assert!(sent.iter().all(|(_, m)| m.starts_with("REGISTER ")));
    assert!(sent.len() > 5, "Timer E retransmissions");
    assert_eq!(h.status().reachable, Some(true));
    h.run_until(refresh + Duration::from_secs(32));
    let s = h.status();
    assert_eq!(s.reachable, Some(false));
    assert_eq!(s.register_status, Some(408));
    assert!(s.registered, "the binding is still valid until 3600 s");
    assert_eq!(s.next_register, Some(refresh + Duration::from_secs(32 + 5)));
    h.run_until(t0 + Duration::from_secs(3600));
    let s = h.status();
    assert!(!s.registered, "lapsed at the granted expiry");
    assert!(s.register_failures > 3);
}

#[test]
fn interval_too_brief_is_retried_with_min_expires() {
    let t0 = Instant::now();
    let (mut h, sent) = Harness::new(cfg(true, None, false), t0);
    let sent = h.answer(t0, &sent[0], 423, "Min-Expires: 7200\r\n");
    assert_eq!(hdr(&sent[0], "Expires"), "7200");
}

#[test]
fn wrong_credentials_fail_and_retry_later() {
    let t0 = Instant::now();
    let (mut h, sent) = Harness::new(cfg(true, None, true), t0);
    let sent = h.answer(t0, &sent[0], 401, CHALLENGE);
    let sent = h.answer(t0, &sent[0], 401, CHALLENGE);
    assert!(sent.is_empty(), "one retry per challenge");
    let s = h.status();
    assert_eq!(s.register_status, Some(401));
    assert!(s.last_error.unwrap().contains("credentials"));
    assert_eq!(s.next_register, Some(t0 + Duration::from_secs(5)));
    // A challenge for a realm we have no credentials for is not answered.
    let (at, req) = h.next("REGISTER", t0 + Duration::from_secs(6));
    let sent = h.answer(
        at,
        &req,
        401,
        "WWW-Authenticate: Digest realm=\"evil\", nonce=\"x\"\r\n",
    );
    assert!(sent.is_empty());
}

#[test]
fn options_keepalive_measures_rtt_and_tracks_reachability() {
    let t0 = Instant::now();
    let (mut h, sent) = Harness::new(cfg(false, Some(30), false), t0);
    let opt = &sent[0];
    assert_eq!(
        opt.lines().next().unwrap(),
        "OPTIONS sip:trunk.example:5099 SIP/2.0"
    );
    assert!(h.status().reachable.is_none());
    h.answer(t0 + Duration::from_millis(12), opt, 200, "");
    let s = h.status();
    assert_eq!(s.reachable, Some(true));
    assert_eq!(s.last_options_rtt, Some(Duration::from_millis(12)));
    assert_eq!(s.options_status, Some(200));

    // The next probe at 30 s gets no answer: unreachable after Timer F.
    let (at, _) = h.next("OPTIONS", t0 + Duration::from_secs(31));
    assert_eq!(at, t0 + Duration::from_secs(30));
    let sent = h.run_until(at + Duration::from_secs(32));
    assert!(
        sent.iter().all(|(_, m)| m.starts_with("OPTIONS ")),
        "only retransmissions, no second probe in flight"
    );
    let s = h.status();
    assert_eq!(s.reachable, Some(false));
    assert!(s.last_error.unwrap().contains("OPTIONS"));
    assert!(h.published.iter().any(|p| p.reachable == Some(false)));

    // The next probe is answered (even with 404): reachable again.
    let (at, opt) = h.next("OPTIONS", at + Duration::from_secs(64));
    h.answer(at, &opt, 404, "");
    let s = h.status();
    assert_eq!(
        (s.reachable, s.options_status, s.last_error),
        (Some(true), Some(404), None)
    );
}

#[test]
fn tcp_transport_errors_fail_the_register_and_a_lost_idle_connection_re_registers() {
    let t0 = Instant::now();
    let mut c = cfg(true, None, false);
    c.transport = TrunkTransport::Tcp;
    let mut ep = Endpoint::with_access(
        EndpointConfig {
            advertised: "127.0.0.1:5060".parse().unwrap(),
            timers: Timers::default(),
            user_agent: "t".into(),
            max_legs: 10,
        },
        AccessConfig {
            acl: Acl::default(),
            trunk: Some(c),
        },
    );
    let addr = TRUNK.parse().unwrap();
    ep.set_trunk_addr(t0, addr);
    let mut sent = vec![];
    while let Some(o) = ep.poll_output() {
        if let Output::Transmit { flow, bytes } = o {
            assert_eq!(flow, Flow::tcp_to(addr));
            sent.push(String::from_utf8(bytes).unwrap());
        }
    }
    assert!(sent[0].contains("REGISTER sip:trunk.example:5099;transport=tcp"));
    assert!(hdr(&sent[0], "Contact").ends_with(";transport=tcp>"));
    // The connection breaks before the answer: failure now, not after Timer F, and
    // the backoff stands (a refused connect must not loop).
    ep.handle_transport_error(t0, addr);
    let s = ep.trunk_state(t0);
    assert_eq!(s.reachable, Some(false));
    assert_eq!(s.register_status, Some(503));
    assert_eq!(s.next_register, Some(t0 + Duration::from_secs(5)));
    // The retry works; later the connection drops while idle: re-register at once.
    let at = t0 + Duration::from_secs(5);
    ep.handle_timeout(at);
    let reg = std::iter::from_fn(|| ep.poll_output())
        .find_map(|o| match o {
            Output::Transmit { bytes, .. } => Some(String::from_utf8(bytes).unwrap()),
            _ => None,
        })
        .unwrap();
    let ok = format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=s\r\nCall-ID: {}\r\nCSeq: {}\r\n\
Expires: 600\r\nContent-Length: 0\r\n\r\n",
        hdr(&reg, "Via"),
        hdr(&reg, "From"),
        hdr(&reg, "To"),
        hdr(&reg, "Call-ID"),
        hdr(&reg, "CSeq")
    );
    ep.handle_bytes(at, Flow::tcp_to(addr), ok.as_bytes());
    assert!(ep.trunk_state(at).registered);
    let later = at + Duration::from_secs(100);
    ep.handle_transport_error(later, addr);
    assert_eq!(ep.trunk_state(later).next_register, Some(later));
}

#[test]
fn unregister_removes_the_binding_and_stops_everything() {
    let t0 = Instant::now();
    let (mut h, sent) = Harness::new(cfg(true, Some(30), true), t0);
    let reg = sent
        .iter()
        .find(|m| m.starts_with("REGISTER"))
        .unwrap()
        .clone();
    let sent = h.answer(t0, &reg, 401, CHALLENGE);
    h.answer(t0, &sent[0], 200, "Expires: 600\r\n");
    assert!(h.status().registered);
    let at = t0 + Duration::from_secs(10);
    assert!(h.ep.unregister(at));
    let sent = h.drain();
    assert_eq!(sent.len(), 1);
    assert_eq!(hdr(&sent[0], "Expires"), "0");
    assert!(hdr(&sent[0], "Authorization").contains("nc=00000002"));
    h.answer(at, &sent[0], 200, "");
    let s = h.status();
    assert!(!s.registered && s.next_register.is_none());
    // Nothing more is ever sent (no refresh, no keepalive) once the OPTIONS in flight ends.
    let later = h.run_until(at + Duration::from_secs(3600));
    assert!(
        later.iter().all(|(_, m)| m.starts_with("OPTIONS")),
        "{later:?}"
    );
    assert!(!h.ep.unregister(at), "only once");
}

#[test]
fn the_state_moves_to_the_wall_clock_moment_for_moment() {
    let t0 = Instant::now();
    let (mut h, sent) = Harness::new(cfg(true, None, false), t0);
    let at = t0 + Duration::from_secs(10);
    h.answer(at, &sent[0], 200, "Expires: 600\r\n");
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let later = at + Duration::from_secs(1);
    let state = h.ep.trunk_state(later);
    assert_eq!(state.updated_at, Some(later));
    let published = state.on_wall_clock(later, wall);
    assert_eq!(published.updated_at, Some(wall), "read out at `later`");
    assert_eq!(
        published.registered_until,
        Some(wall + Duration::from_secs(599)),
        "granted at `at`, one second before"
    );
    assert_eq!(
        published.next_register,
        Some(wall + Duration::from_secs(479))
    );
    assert!(published.configured && published.register && published.registered);
    assert_eq!(published.host, "trunk.example");
    assert_eq!(published.transport, Some(TrunkTransport::Udp));
}
