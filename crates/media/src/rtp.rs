//! RTP packetisation for our outgoing G.711 stream (RFC 3550, RFC 3551).
//!
//! The header is built by `rtp-rs`; this type only owns the per-stream counters and applies
//! the rules a receiver's jitter buffer depends on:
//!
//! * SSRC, initial sequence number and initial timestamp are random (RFC 3550 §5.1), so a
//!   restarted stream is never mistaken for the old one;
//! * the sequence number advances by one per packet *sent*, so the receiver can count loss;
//! * the timestamp advances by samples of media time (160 per 20 ms frame at 8 kHz), also for
//!   frames we decide not to send ([`RtpSender::skip`]), so media time tracks wall-clock time;
//! * the marker bit flags the first packet of a talkspurt (RFC 3551 §4.1), letting the
//!   receiver re-adapt its playout delay: we set it at the start of each prompt and after a gap.

use rtp_rs::{RtpPacketBuilder, Seq};

use super::codec::SAMPLES_PER_FRAME;

/// Size of the fixed RTP header (no CSRCs, no extension).
pub const RTP_HEADER_LEN: usize = 12;

/// The sending half of one RTP stream.
#[derive(Clone, Debug)]
pub struct RtpSender {
    ssrc: u32,
    seq: u16,
    timestamp: u32,
    payload_type: u8,
    marker_pending: bool,
}

impl RtpSender {
    /// A sender with explicit initial values (tests, or resuming a stream).
    pub fn new(ssrc: u32, initial_seq: u16, initial_ts: u32, pt: u8) -> Self {
        RtpSender {
            ssrc,
            seq: initial_seq,
            timestamp: initial_ts,
            payload_type: pt & 0x7F,
            marker_pending: false,
        }
    }

    /// A sender with random SSRC, sequence number and timestamp (RFC 3550 §5.1).
    pub fn random(pt: u8) -> Self {
        RtpSender::new(rand::random(), rand::random(), rand::random(), pt)
    }

    /// Appends one RTP packet (12-byte header + `payload`) to `out`, then advances the
    /// sequence number by 1 and the timestamp by the payload's sample count (G.711: one byte
    /// per sample, so 160 for a 20 ms frame). Clear `out` first when reusing a buffer.
    pub fn write_frame(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        let builder = RtpPacketBuilder::new()
            .payload_type(self.payload_type)
            .marked(self.marker_pending)
            .sequence(Seq::from(self.seq))
            .timestamp(self.timestamp)
            .ssrc(self.ssrc)
            .payload(payload);
        let start = out.len();
        out.resize(start + builder.target_length(), 0);
        match builder.build_into(&mut out[start..]) {
            Ok(len) => out.truncate(start + len),
            Err(e) => {
                // Unreachable in practice: the buffer is sized by the builder and the payload
                // type is masked to 7 bits. Send nothing rather than a broken packet.
                tracing::error!(?e, "failed to build RTP packet");
                out.truncate(start);
                return;
            }
        }
        self.marker_pending = false;
        self.seq = self.seq.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(payload.len() as u32);
    }

    /// Sets the marker bit on the next packet written (start of a talkspurt).
    pub fn mark_next(&mut self) {
        self.marker_pending = true;
    }

    /// Advances media time by `frames` 20 ms frames without sending (hold, late scheduler).
    /// The sequence number is untouched — nothing was lost on the wire — and the next packet
    /// carries the marker bit so the receiver resynchronises after the gap.
    pub fn skip(&mut self, frames: u32) {
        if frames == 0 {
            return;
        }
        self.timestamp = self
            .timestamp
            .wrapping_add(frames.wrapping_mul(SAMPLES_PER_FRAME as u32));
        self.marker_pending = true;
    }

    /// Changes the payload type (codec change on re-INVITE); counters continue.
    pub fn set_payload_type(&mut self, pt: u8) {
        self.payload_type = pt & 0x7F;
    }

    pub fn payload_type(&self) -> u8 {
        self.payload_type
    }

    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Sequence number of the next packet.
    pub fn seq(&self) -> u16 {
        self.seq
    }

    /// Timestamp of the next packet.
    pub fn timestamp(&self) -> u32 {
        self.timestamp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtp_rs::RtpReader;

    #[test]
    fn header_parses_back() {
        let mut s = RtpSender::new(0xDEADBEEF, 1000, 5000, 8);
        let mut out = Vec::new();
        s.write_frame(&[0xD5; 160], &mut out);
        assert_eq!(out.len(), RTP_HEADER_LEN + 160);
        let r = RtpReader::new(&out).unwrap();
        assert_eq!(r.version(), 2);
        assert_eq!(r.payload_type(), 8);
        assert_eq!(u16::from(r.sequence_number()), 1000);
        assert_eq!(r.timestamp(), 5000);
        assert_eq!(r.ssrc(), 0xDEADBEEF);
        assert!(!r.mark());
        assert_eq!(r.payload(), &[0xD5; 160][..]);
        assert_eq!((s.seq(), s.timestamp()), (1001, 5160));
    }

    #[test]
    fn seq_and_timestamp_wrap() {
        let mut s = RtpSender::new(1, 65534, u32::MAX - 159, 0);
        let mut seqs = Vec::new();
        let mut tss = Vec::new();
        for _ in 0..3 {
            let mut out = Vec::new();
            s.write_frame(&[0xFF; 160], &mut out);
            let r = RtpReader::new(&out).unwrap();
            seqs.push(u16::from(r.sequence_number()));
            tss.push(r.timestamp());
        }
        assert_eq!(seqs, vec![65534, 65535, 0]);
        assert_eq!(tss, vec![u32::MAX - 159, 0, 160]);
    }

    #[test]
    fn marker_only_on_the_marked_packet() {
        let mut s = RtpSender::new(7, 0, 0, 0);
        let mut marks = Vec::new();
        for i in 0..5 {
            if i == 2 {
                s.mark_next();
            }
            let mut out = Vec::new();
            s.write_frame(&[0xFF; 160], &mut out);
            marks.push(RtpReader::new(&out).unwrap().mark());
        }
        assert_eq!(marks, vec![false, false, true, false, false]);
    }

    #[test]
    fn skip_advances_time_not_sequence_and_marks() {
        let mut s = RtpSender::new(7, 10, 0, 0);
        s.skip(5);
        assert_eq!((s.seq(), s.timestamp()), (10, 800));
        let mut out = Vec::new();
        s.write_frame(&[0xFF; 160], &mut out);
        let r = RtpReader::new(&out).unwrap();
        assert!(r.mark());
        assert_eq!(r.timestamp(), 800);
        s.set_payload_type(8);
        out.clear();
        s.write_frame(&[0xD5; 160], &mut out);
        let r = RtpReader::new(&out).unwrap();
        assert_eq!(r.payload_type(), 8);
        assert!(!r.mark());
    }

    #[test]
    fn random_senders_differ() {
        let a = RtpSender::random(0);
        let b = RtpSender::random(0);
        assert_eq!(a.payload_type(), 0);
        assert!(a.ssrc() != b.ssrc() || a.seq() != b.seq() || a.timestamp() != b.timestamp());
    }
}
