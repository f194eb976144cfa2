//! Microbenchmarks of the per-call and per-packet hot paths (criterion, short runs).
//!
//!     CARGO_TARGET_DIR=/work/target-bench cargo bench --bench hot_paths
//!
//! Every function here is sans-IO, so these numbers are pure CPU cost per operation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use tongdai_ivr::{CompileContext, Engine, Input, compile_str};
use tongdai_media::rtp::RtpSender;
use tongdai_media::sdp::{accept_answer, negotiate, render_answer, render_offer};
use tongdai_media::{LocalMedia, MediaClock, MediaSession, Prompt, Rfc4733Decoder, SessionParams};
use tongdai_sip::edge::{Inbound, classify};
use tongdai_sip::{Endpoint, EndpointConfig, Flow, Timers};

const SDP: &str = "v=0\r\no=tongdai-test 53655765 2353687637 IN IP4 127.0.0.1\r\ns=tongdai-test\r\n\
c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n";

/// An INVITE as SIPp's load scenario sends it.
fn invite(n: u64) -> Vec<u8> {
    format!(
        "INVITE sip:9091@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{n}-1-0;rport\r\n\
From: <sip:0901234567@127.0.0.1:5061>;tag={n}SIPpTag001\r\n\
To: <sip:9091@127.0.0.1:5060>\r\n\
Call-ID: {n}-bench@127.0.0.1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:0901234567@127.0.0.1:5061;transport=UDP>\r\n\
Max-Forwards: 70\r\n\
User-Agent: tongdai-bench SIPp/v3.6.1\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
    .into_bytes()
}

fn sip(c: &mut Criterion) {
    let msg = invite(1);
    c.bench_function("sip/edge_classify_invite", |b| {
        b.iter(|| {
            let r = classify(black_box(&msg));
            debug_assert!(matches!(r, Inbound::Request(_)));
            r
        })
    });

    // A fresh INVITE (new Call-ID and branch each time) through the sans-IO endpoint:
    // edge classify, transaction creation, 100 Trying serialised, Incoming leg event.
    // The endpoint is recreated every 4096 calls so its tables stay bounded (max_legs).
    let invites: Vec<Vec<u8>> = (0..4096).map(invite).collect();
    let flow = Flow::Udp("127.0.0.1:5061".parse().unwrap());
    let cfg = EndpointConfig {
        advertised: "127.0.0.1:5060".parse().unwrap(),
        timers: Timers::default(),
        user_agent: "tongdai-bench".into(),
        max_legs: 100_000,
    };
    c.bench_function("sip/endpoint_invite_to_100_and_drain", |b| {
        let mut ep = Endpoint::new(cfg.clone());
        let mut i = 0usize;
        let now = Instant::now();
        b.iter(|| {
            if i == invites.len() {
                ep = Endpoint::new(cfg.clone());
                i = 0;
            }
            ep.handle_bytes(now, flow, &invites[i]);
            i += 1;
            let mut n = 0;
            while let Some(o) = ep.poll_output() {
                black_box(&o);
                n += 1;
            }
            n
        })
    });
}

fn sdp(c: &mut Criterion) {
    let local = LocalMedia {
        addr: "127.0.0.1".parse().unwrap(),
        port: 20000,
        session_id: 42,
        session_version: 1,
    };
    c.bench_function("sdp/negotiate_and_render_answer", |b| {
        b.iter(|| {
            let neg = negotiate(black_box(SDP.as_bytes())).unwrap();
            render_answer(&neg, &local)
        })
    });
    // Outbound: our offer, then the callee's answer (SDP above) accepted.
    c.bench_function("sdp/render_offer_and_accept_answer", |b| {
        b.iter(|| {
            let offer = render_offer(&local);
            black_box(&offer);
            accept_answer(black_box(SDP.as_bytes())).unwrap()
        })
    });
}

fn rtp(c: &mut Criterion) {
    let payload = [0xffu8; 160];
    let mut out = Vec::with_capacity(1500);
    let mut sender = RtpSender::new(0x1234_5678, 1, 1, 0);
    c.bench_function("rtp/write_frame_20ms", |b| {
        b.iter(|| {
            out.clear();
            sender.write_frame(black_box(&payload), &mut out);
            out.len()
        })
    });

    // MediaSession::poll_transmit while a prompt plays: one frame due per call.
    let neg = negotiate(SDP.as_bytes()).unwrap();
    let params = SessionParams::from_negotiated(&neg, Duration::ZERO);
    let pcm: Vec<i16> = (0..8000 * 600).map(|i| ((i % 64) * 200) as i16).collect();
    let prompt = Arc::new(Prompt::from_pcm("long", &pcm));
    c.bench_function("rtp/session_poll_transmit_one_frame", |b| {
        let t0 = Instant::now();
        let mut session = MediaSession::new(t0, params.clone());
        session.play(t0, prompt.clone());
        let mut k: u32 = 0;
        let mut out = Vec::with_capacity(1500);
        b.iter(|| {
            // Advance virtual time by exactly one frame: one packet is due.
            k += 1;
            if k == 29_000 {
                session = MediaSession::new(t0, params.clone());
                session.play(t0, prompt.clone());
                k = 1;
            }
            let now = t0 + Duration::from_millis(20) * k;
            let dest: Option<SocketAddr> = session.poll_transmit(now, &mut out);
            black_box(dest);
            out.len()
        })
    });
}

/// The media worker's per-tick pass: N sessions (prompts playing, grids spread over the
/// 20 ms period) each with one frame due, through `MediaClock::handle_timeout` in
/// batches, packets built into the clock's reused buffers. Sans-IO: the `sendto`s the
/// worker then makes are not included.
fn media_clock(c: &mut Criterion) {
    let neg = negotiate(SDP.as_bytes()).unwrap();
    let params = SessionParams::from_negotiated(&neg, Duration::ZERO);
    let pcm: Vec<i16> = (0..8000 * 600).map(|i| ((i % 64) * 200) as i16).collect();
    let prompt = Arc::new(Prompt::from_pcm("long", &pcm));
    for n in [1000u32, 4500] {
        let build = |t0: Instant| {
            let mut clock: MediaClock<u32> = MediaClock::new();
            for i in 0..n {
                // Grids strictly after t0, so at t0 + 20 ms each session has exactly its
                // first frame due (a session starting at t0 would have two).
                let start = t0 + Duration::from_micros(u64::from(i + 1) * 20_000 / u64::from(n));
                let key = clock.insert(MediaSession::new(start, params.clone()), i);
                clock.play(key, start, 1, [prompt.clone()]);
            }
            // Frame 0 of the session that started at t0 is due at t0: send it, so that
            // every later 20 ms step has exactly one frame per session.
            while clock.handle_timeout(t0) {
                clock.clear_batch();
            }
            clock.clear_batch();
            clock
        };
        c.bench_function(&format!("media/clock_frame_pass_{n}_sessions"), |b| {
            let t0 = Instant::now();
            let mut clock = build(t0);
            let mut k: u32 = 0;
            b.iter(|| {
                k += 1;
                if k == 29_000 {
                    clock = build(t0);
                    k = 1;
                }
                // One 20 ms period later: every session has exactly one frame due.
                let now = t0 + Duration::from_millis(20) * k;
                let mut packets = 0;
                loop {
                    let more = clock.handle_timeout(now);
                    for (_, _, packet) in clock.transmits() {
                        black_box(packet);
                        packets += 1;
                    }
                    clock.clear_batch();
                    if !more {
                        break;
                    }
                }
                debug_assert_eq!(packets, n as usize);
                packets
            })
        });
    }
}

fn dtmf(c: &mut Criterion) {
    // One digit as peers send it: 3 interim packets + 3 redundant end packets.
    let now = Instant::now();
    c.bench_function("dtmf/rfc4733_digit_6_packets", |b| {
        let mut dec = Rfc4733Decoder::new(8000);
        let mut ts: u32 = 0;
        b.iter(|| {
            ts = ts.wrapping_add(8000);
            let mut got = None;
            for (flags, dur) in [(0x0a, 160u16), (0x0a, 320), (0x0a, 480)] {
                let d = dur.to_be_bytes();
                got = got.or(dec.handle(now, ts, &[5, flags, d[0], d[1]]));
            }
            for _ in 0..3 {
                got = got.or(dec.handle(now, ts, &[5, 0x8a, 0x02, 0x80]));
            }
            black_box(got)
        })
    });
}

const PLAN: &str = r#"
[dialplan]
name = "bench"
numbers = ["1000"]
start = "greet"

[node.greet]
play = ["welcome"]
next = "main"

[node.main]
menu = ["menu"]
invalid = ["invalid"]
timeout = ["noinput"]
exit = "bye"
store = "choice"
[node.main.branch]
"1" = "one"
"9" = "main"

[node.one]
play = ["one"]
hangup = true

[node.bye]
play = ["goodbye"]
hangup = true
"#;

fn ivr(c: &mut Criterion) {
    let ctx = CompileContext {
        prompts: ["welcome", "menu", "invalid", "noinput", "one", "goodbye"]
            .into_iter()
            .map(String::from)
            .collect::<HashSet<_>>(),
        actions: HashMap::new(),
    };
    let plan = Arc::new(compile_str("bench.toml", PLAN, &ctx).expect("plan compiles"));
    let now = Instant::now();
    // One call's worth of steps: start → play welcome → prompts finished → menu → digit 1.
    c.bench_function("ivr/engine_start_menu_digit", |b| {
        b.iter(|| {
            let mut e = Engine::new(plan.clone(), BTreeMap::new());
            e.start(now);
            while e.poll_output().is_some() {}
            e.handle(now, Input::PromptsFinished);
            while e.poll_output().is_some() {}
            e.handle(now, Input::Digit('1'));
            let mut n = 0;
            while let Some(o) = e.poll_output() {
                black_box(&o);
                n += 1;
            }
            n
        })
    });
    // A single step: a digit in a menu (the digit→reaction path of the engine).
    c.bench_function("ivr/engine_one_digit_step", |b| {
        let mut e = Engine::new(plan.clone(), BTreeMap::new());
        e.start(now);
        while e.poll_output().is_some() {}
        e.handle(now, Input::PromptsFinished);
        while e.poll_output().is_some() {}
        b.iter(|| {
            // '9' loops back into the same menu, so the engine never finishes.
            e.handle(now, Input::Digit('9'));
            let mut n = 0;
            while let Some(o) = e.poll_output() {
                black_box(&o);
                n += 1;
            }
            n
        })
    });
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = sip, sdp, rtp, media_clock, dtmf, ivr
}
criterion_main!(benches);
