//! DTMF reception: RFC 4733 telephone-events in RTP, and SIP INFO bodies.
//!
//! RFC 4733 sends one keypress as a series of packets sharing one RTP timestamp (the event
//! start): updates with a growing duration, then (usually) three redundant End packets. Real
//! peers differ in everything else, so the decoder deliberately relies only on what §2.5
//! guarantees:
//!
//! * an event is identified by (RTP timestamp, event code) — not by sequence number (some
//!   peers repeat the same seq for the three End packets, others increment it), and not by
//!   the marker bit (it is lost with the first packet, and some peers never set it);
//! * the digit is reported exactly once, when the first End packet arrives; later End
//!   packets, duplicates and reordered stragglers are recognised by the (ts, event) memory;
//! * loss is survived: if every End packet is lost, the digit is reported when a packet of
//!   another event arrives, or after 250 ms without packets of that event ([`END_TIMEOUT`]).
//!
//! The decoder is sans-IO: it is fed `now` and asked for its next deadline.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long after the last packet of an unfinished event we assume its End packets were lost.
pub const END_TIMEOUT: Duration = Duration::from_millis(250);
/// How many reported events are remembered for de-duplication.
const MEMORY: usize = 8;
/// Reordering window: an event up to this many timestamp units (10 s at 8 kHz) older than the
/// last reported one is a straggler and ignored. Anything "older" than that is a new timeline
/// (SSRC change with a new random timestamp base), not reordering.
const REORDER_WINDOW: u32 = 80_000;

/// Where a digit came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DigitSource {
    /// RTP telephone-event (RFC 4733).
    Rfc4733,
    /// SIP INFO (`application/dtmf-relay` or `application/dtmf`).
    SipInfo,
    /// Tone detection in the audio (not implemented here; kept for the call layer's logs).
    Inband,
}

/// One keypress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DigitEvent {
    /// `0`–`9`, `*`, `#`, `A`–`D`.
    pub digit: char,
    /// When the keypress was first seen (first packet of the event), not when it was reported.
    pub at: Instant,
    pub duration_ms: u32,
    pub source: DigitSource,
}

/// RFC 4733 §3.2 event code → DTMF digit; other events (flash, tones) are not digits.
pub fn event_to_digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

/// An event seen but not yet reported (no End packet so far).
#[derive(Clone, Copy, Debug)]
struct InProgress {
    timestamp: u32,
    event: u8,
    first_seen: Instant,
    last_seen: Instant,
    duration: u16,
}

/// Sans-IO RFC 4733 receiver for one RTP stream.
#[derive(Clone, Debug)]
pub struct Rfc4733Decoder {
    clock_rate: u32,
    current: Option<InProgress>,
    /// Recently reported (timestamp, event) pairs, newest last.
    reported: VecDeque<(u32, u8)>,
    last_reported_ts: Option<u32>,
    /// A second digit produced by the same input (see [`Rfc4733Decoder::poll_event`]).
    pending: VecDeque<DigitEvent>,
}

impl Rfc4733Decoder {
    /// `clock_rate` is the telephone-event rtpmap rate (8000 with G.711).
    pub fn new(clock_rate: u32) -> Self {
        Rfc4733Decoder {
            clock_rate: clock_rate.max(1),
            current: None,
            reported: VecDeque::with_capacity(MEMORY),
            last_reported_ts: None,
            pending: VecDeque::new(),
        }
    }

    /// Feeds the payload of one telephone-event RTP packet. Returns the digit if this packet
    /// completes one. Rarely one packet completes two (the previous event lost all its End
    /// packets and this is the End of the next one): the second is kept for [`poll_event`].
    ///
    /// [`poll_event`]: Rfc4733Decoder::poll_event
    pub fn handle(
        &mut self,
        now: Instant,
        rtp_timestamp: u32,
        payload: &[u8],
    ) -> Option<DigitEvent> {
        let [event, flags, d_hi, d_lo, ..] = *payload else {
            return None;
        };
        event_to_digit(event)?;
        let end = flags & 0x80 != 0;
        let duration = u16::from_be_bytes([d_hi, d_lo]);
        let key = (rtp_timestamp, event);

        if self.reported.contains(&key) {
            return None; // redundant End packet, duplicate or late straggler
        }
        if let Some(last) = self.last_reported_ts {
            let behind = last.wrapping_sub(rtp_timestamp);
            if behind != 0 && behind <= REORDER_WINDOW {
                return None; // belongs to an event older than one already reported
            }
        }

        match self.current {
            Some(cur) if (cur.timestamp, cur.event) == key => {
                let cur = self.current.as_mut()?;
                cur.last_seen = now;
                cur.duration = cur.duration.max(duration);
            }
            Some(cur) => {
                let behind = cur.timestamp.wrapping_sub(rtp_timestamp);
                if behind != 0 && behind <= REORDER_WINDOW {
                    return None; // straggler of an event older than the one in progress
                }
                // A new event started: the previous one's End packets were all lost.
                let flushed = self.finish(cur);
                self.pending.push_back(flushed);
                self.current = Some(InProgress {
                    timestamp: rtp_timestamp,
                    event,
                    first_seen: now,
                    last_seen: now,
                    duration,
                });
            }
            None => {
                self.current = Some(InProgress {
                    timestamp: rtp_timestamp,
                    event,
                    first_seen: now,
                    last_seen: now,
                    duration,
                });
            }
        }

        if end && let Some(cur) = self.current.take() {
            let digit = self.finish(InProgress { duration, ..cur });
            self.pending.push_back(digit);
        }
        self.pending.pop_front()
    }

    /// A digit that was produced together with the one returned by the last
    /// [`handle`](Rfc4733Decoder::handle) / [`handle_timeout`](Rfc4733Decoder::handle_timeout).
    pub fn poll_event(&mut self) -> Option<DigitEvent> {
        self.pending.pop_front()
    }

    /// When an unfinished event must be reported although its End packets never came.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current.map(|c| c.last_seen + END_TIMEOUT)
    }

    /// Reports an unfinished event whose End packets were lost, once its deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) -> Option<DigitEvent> {
        if let Some(cur) = self.current
            && now >= cur.last_seen + END_TIMEOUT
        {
            self.current = None;
            let digit = self.finish(cur);
            self.pending.push_back(digit);
        }
        self.pending.pop_front()
    }

    /// Records `ev` as reported and turns it into a digit.
    fn finish(&mut self, ev: InProgress) -> DigitEvent {
        if self.reported.len() == MEMORY {
            self.reported.pop_front();
        }
        self.reported.push_back((ev.timestamp, ev.event));
        self.last_reported_ts = Some(ev.timestamp);
        DigitEvent {
            // `event_to_digit` succeeded before an InProgress was created.
            digit: event_to_digit(ev.event).unwrap_or('?'),
            at: ev.first_seen,
            duration_ms: (u64::from(ev.duration) * 1000 / u64::from(self.clock_rate)) as u32,
            source: DigitSource::Rfc4733,
        }
    }
}

/// Default duration when a SIP INFO body does not say.
const INFO_DEFAULT_DURATION_MS: u32 = 100;

/// `5`, `*`, `#`, `a`–`d`, or the RFC 4733 event number (`10` = `*`, `11` = `#`, `12`–`15`).
fn parse_digit(value: &str) -> Option<char> {
    let value = value.trim();
    let mut chars = value.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        let c = c.to_ascii_uppercase();
        return matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c);
    }
    value.parse::<u8>().ok().and_then(event_to_digit)
}

/// Parses a DTMF SIP INFO body. Supports `application/dtmf-relay` (`Signal=5` /
/// `Duration=160` lines, as sent by Cisco, Asterisk, SIPp) and `application/dtmf` (the body
/// is the digit). Returns the digit and its duration in ms (100 when absent).
pub fn parse_info_digit(content_type: &str, body: &[u8]) -> Option<(char, u32)> {
    let media_type = content_type.split(';').next()?.trim();
    let body = std::str::from_utf8(body).ok()?;
    if media_type.eq_ignore_ascii_case("application/dtmf-relay") {
        let mut digit = None;
        let mut duration = None;
        for line in body.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let key = key.trim();
            if key.eq_ignore_ascii_case("signal") {
                digit = Some(parse_digit(value)?);
            } else if key.eq_ignore_ascii_case("duration") {
                duration = value.trim().parse::<u32>().ok();
            }
        }
        Some((digit?, duration.unwrap_or(INFO_DEFAULT_DURATION_MS)))
    } else if media_type.eq_ignore_ascii_case("application/dtmf") {
        Some((parse_digit(body)?, INFO_DEFAULT_DURATION_MS))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(event: u8, end: bool, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [event, if end { 0x80 | 10 } else { 10 }, d[0], d[1]]
    }

    fn ms(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    /// Feeds (time ms, ts, payload) and collects every digit, including poll_event ones.
    fn feed(dec: &mut Rfc4733Decoder, t0: Instant, packets: &[(u64, u32, [u8; 4])]) -> Vec<char> {
        let mut out = Vec::new();
        for (t, ts, p) in packets {
            let now = ms(t0, *t);
            if let Some(d) = dec.handle_timeout(now) {
                out.push(d.digit);
            }
            if let Some(d) = dec.handle(now, *ts, p) {
                out.push(d.digit);
            }
            while let Some(d) = dec.poll_event() {
                out.push(d.digit);
            }
        }
        out
    }

    /// The pattern SIPp's shipped dtmf_2833_1.pcap uses: start, updates, 3 End packets.
    fn keypress(event: u8, ts: u32, t: u64) -> Vec<(u64, u32, [u8; 4])> {
        let mut v = vec![(t, ts, pkt(event, false, 0))];
        for i in 1..=6u16 {
            v.push((t + u64::from(i) * 20, ts, pkt(event, false, i * 160)));
        }
        for i in 0..3u64 {
            v.push((t + 140 + i * 20, ts, pkt(event, true, 1120)));
        }
        v
    }

    #[test]
    fn sipp_pattern_reports_once_with_duration() {
        let t0 = Instant::now();
        let mut dec = Rfc4733Decoder::new(8000);
        let mut got = Vec::new();
        for (t, ts, p) in keypress(5, 1000, 0) {
            if let Some(d) = dec.handle(ms(t0, t), ts, &p) {
                got.push(d);
            }
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].digit, '5');
        assert_eq!(got[0].duration_ms, 140);
        assert_eq!(got[0].at, t0, "timestamped at the start of the keypress");
        assert_eq!(got[0].source, DigitSource::Rfc4733);
        assert_eq!(dec.poll_timeout(), None);
    }

    #[test]
    fn duplicates_and_late_packets_never_re_emit() {
        let t0 = Instant::now();
        let mut dec = Rfc4733Decoder::new(8000);
        let mut pkts = keypress(1, 1000, 0);
        // Duplicate everything, then a late straggler update well after the End.
        pkts = pkts.into_iter().flat_map(|p| [p, p]).collect();
        pkts.push((400, 1000, pkt(1, false, 480)));
        pkts.push((420, 1000, pkt(1, true, 1120)));
        assert_eq!(feed(&mut dec, t0, &pkts), vec!['1']);
    }

    #[test]
    fn reordering_of_an_older_event_is_ignored() {
        let t0 = Instant::now();
        let mut dec = Rfc4733Decoder::new(8000);
        let mut pkts = keypress(1, 1000, 0);
        pkts.extend(keypress(2, 3000, 300));
        // A reordered update of a never-seen event older than the last reported one.
        pkts.push((700, 2000, pkt(9, false, 160)));
        assert_eq!(feed(&mut dec, t0, &pkts), vec!['1', '2']);
        assert_eq!(dec.poll_timeout(), None);
    }

    #[test]
    fn loss_of_start_packet() {
        let t0 = Instant::now();
        let mut dec = Rfc4733Decoder::new(8000);
        let pkts: Vec<_> = keypress(7, 500, 0).into_iter().skip(1).collect();
        assert_eq!(feed(&mut dec, t0, &pkts), vec!['7']);
        // Even only a single End packet suffices.
        let mut dec = Rfc4733Decoder::new(8000);
        assert_eq!(
            feed(&mut dec, t0, &[(0, 900, pkt(11, true, 800))]),
            vec!['#']
        );
    }

    #[test]
    fn loss_of_all_end_packets_emits_on_timeout() {
        let t0 = Instant::now();
        let mut dec = Rfc4733Decoder::new(8000);
        let pkts: Vec<_> = keypress(3, 1000, 0).into_iter().take(7).collect();
        assert!(feed(&mut dec, t0, &pkts).is_empty());
        let deadline = dec.poll_timeout().unwrap();
        assert_eq!(deadline, ms(t0, 120 + 250));
        assert_eq!(dec.handle_timeout(ms(t0, 369)), None);
        let d = dec.handle_timeout(deadline).unwrap();
        assert_eq!((d.digit, d.duration_ms), ('3', 120));
        assert_eq!(dec.poll_timeout(), None);
        // The End packets arriving after all must not re-emit.
        assert!(feed(&mut dec, t0, &[(500, 1000, pkt(3, true, 1120))]).is_empty());
    }

    #[test]
    fn loss_of_all_end_packets_emits_on_next_event() {
        let t0 = Instant::now();
        let mut dec = Rfc4733Decoder::new(8000);
        let mut pkts: Vec<_> = keypress(3, 1000, 0).into_iter().take(7).collect();
        pkts.extend(keypress(4, 2600, 200));
        assert_eq!(feed(&mut dec, t0, &pkts), vec!['3', '4']);
        // Next event arrives only as its End packet: both come out of one handle().
        let mut dec = Rfc4733Decoder::new(8000);
        let first = dec.handle(ms(t0, 0), 1000, &pkt(1, false, 160));
        assert!(first.is_none());
        let a = dec.handle(ms(t0, 100), 2000, &pkt(2, true, 800)).unwrap();
        let b = dec.poll_event().unwrap();
        assert_eq!((a.digit, b.digit), ('1', '2'));
    }

    #[test]
    fn same_digit_twice_is_two_events() {
        let t0 = Instant::now();
        let mut dec = Rfc4733Decoder::new(8000);
        let mut pkts = keypress(0, 1000, 0);
        pkts.extend(keypress(0, 3400, 300));
        assert_eq!(feed(&mut dec, t0, &pkts), vec!['0', '0']);
    }

    #[test]
    fn same_seq_or_incrementing_seq_is_irrelevant() {
        // The decoder never sees sequence numbers; three identical End packets are one digit.
        let t0 = Instant::now();
        let mut dec = Rfc4733Decoder::new(8000);
        let end = pkt(10, true, 960);
        let pkts = [(0, 42, end), (0, 42, end), (0, 42, end)];
        assert_eq!(feed(&mut dec, t0, &pkts), vec!['*']);
    }

    #[test]
    fn timestamp_wrap_around() {
        let t0 = Instant::now();
        let mut dec = Rfc4733Decoder::new(8000);
        let mut pkts = keypress(1, u32::MAX - 100, 0);
        pkts.extend(keypress(2, 1500, 300));
        // A straggler from before the wrap is older, hence ignored.
        pkts.push((700, u32::MAX - 50, pkt(6, true, 160)));
        assert_eq!(feed(&mut dec, t0, &pkts), vec!['1', '2']);
    }

    #[test]
    fn new_timeline_after_ssrc_change_is_accepted() {
        let t0 = Instant::now();
        let mut dec = Rfc4733Decoder::new(8000);
        let mut pkts = keypress(1, 3_000_000_000, 0);
        // New random timestamp base far "behind" the old one.
        pkts.extend(keypress(2, 12_345, 300));
        assert_eq!(feed(&mut dec, t0, &pkts), vec!['1', '2']);
    }

    #[test]
    fn star_hash_letters_and_garbage() {
        let t0 = Instant::now();
        let mut dec = Rfc4733Decoder::new(8000);
        let mut pkts = keypress(10, 100, 0);
        pkts.extend(keypress(11, 2000, 300));
        pkts.extend(keypress(12, 4000, 600));
        pkts.extend(keypress(15, 6000, 900));
        assert_eq!(feed(&mut dec, t0, &pkts), vec!['*', '#', 'A', 'D']);
        // Flash (16) and other events, and short payloads, are ignored.
        assert_eq!(dec.handle(ms(t0, 1200), 9000, &pkt(16, true, 800)), None);
        assert_eq!(dec.handle(ms(t0, 1200), 9000, &[1, 0x80]), None);
        assert_eq!(dec.handle(ms(t0, 1200), 9000, &[]), None);
        assert_eq!(dec.poll_timeout(), None);
    }

    #[test]
    fn info_dtmf_relay() {
        let ct = "application/dtmf-relay";
        assert_eq!(
            parse_info_digit(ct, b"Signal=5\r\nDuration=160\r\n"),
            Some(('5', 160))
        );
        assert_eq!(
            parse_info_digit(
                "Application/DTMF-Relay; charset=utf-8",
                b"signal = *\nduration= 250\n"
            ),
            Some(('*', 250))
        );
        assert_eq!(parse_info_digit(ct, b"Signal= #"), Some(('#', 100)));
        assert_eq!(parse_info_digit(ct, b"Signal=11\r\n"), Some(('#', 100)));
        assert_eq!(parse_info_digit(ct, b"Signal=10\r\n"), Some(('*', 100)));
        assert_eq!(parse_info_digit(ct, b"SIGNAL=d\r\n"), Some(('D', 100)));
        assert_eq!(
            parse_info_digit(ct, b"Signal=1\r\nDuration=abc\r\n"),
            Some(('1', 100))
        );
        // Malformed.
        assert_eq!(parse_info_digit(ct, b"Duration=160\r\n"), None);
        assert_eq!(parse_info_digit(ct, b"Signal=E\r\n"), None);
        assert_eq!(parse_info_digit(ct, b"Signal=16\r\n"), None);
        assert_eq!(parse_info_digit(ct, b"Signal=\r\n"), None);
        assert_eq!(parse_info_digit(ct, b""), None);
        assert_eq!(parse_info_digit(ct, &[0xff, 0xfe]), None);
    }

    #[test]
    fn info_dtmf() {
        assert_eq!(parse_info_digit("application/dtmf", b"5"), Some(('5', 100)));
        assert_eq!(
            parse_info_digit("application/dtmf", b"#\r\n"),
            Some(('#', 100))
        );
        assert_eq!(
            parse_info_digit("APPLICATION/DTMF", b"11"),
            Some(('#', 100))
        );
        assert_eq!(
            parse_info_digit("application/dtmf", b"12"),
            Some(('A', 100))
        );
        assert_eq!(parse_info_digit("application/dtmf", b"55"), None);
        assert_eq!(parse_info_digit("application/dtmf", b""), None);
        assert_eq!(parse_info_digit("application/sdp", b"5"), None);
        assert_eq!(parse_info_digit("text/plain", b"Signal=5"), None);
    }
}
