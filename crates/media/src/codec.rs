//! G.711 codecs (ITU-T G.711 µ-law = PCMU, A-law = PCMA), the only codecs the IVR offers.
//!
//! Why only G.711: every SIP trunk and handset speaks it, it needs no transcoding licence,
//! and because it is sample-by-sample (1 byte = 1 sample at 8 kHz) prompts can be encoded
//! once at start-up and sliced into 20 ms frames without any codec state per call.
//! The companding itself comes from `audio-codec-algorithms` (A-law is bit exact).

use audio_codec_algorithms::{decode_alaw, decode_ulaw, encode_alaw, encode_ulaw};

/// Sample rate of both G.711 variants (and their RTP clock rate), in Hz.
pub const SAMPLE_RATE: u32 = 8000;
/// Samples (= encoded bytes) in one 20 ms frame at 8 kHz.
pub const SAMPLES_PER_FRAME: usize = 160;

/// A G.711 variant negotiated in SDP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 µ-law, static RTP payload type 0 (North America/Japan; common on SIP phones).
    Pcmu,
    /// G.711 A-law, static RTP payload type 8 (the PSTN law in Vietnam and Europe).
    Pcma,
}

impl Codec {
    /// Static payload type from RFC 3551 table 4.
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }

    /// Encoding name as used in `a=rtpmap` (RFC 3551).
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }

    /// Looks a codec up by its `a=rtpmap` encoding name (case-insensitive, as SDP requires).
    pub fn from_name(name: &str) -> Option<Codec> {
        if name.eq_ignore_ascii_case("PCMU") {
            Some(Codec::Pcmu)
        } else if name.eq_ignore_ascii_case("PCMA") {
            Some(Codec::Pcma)
        } else {
            None
        }
    }

    /// Codec for a static payload type (0 or 8); dynamic types need an `a=rtpmap`.
    pub fn from_static_pt(pt: u8) -> Option<Codec> {
        match pt {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            _ => None,
        }
    }

    /// Appends the G.711 encoding of `pcm` (16-bit linear, 8 kHz) to `out`.
    pub fn encode(self, pcm: &[i16], out: &mut Vec<u8>) {
        out.reserve(pcm.len());
        match self {
            Codec::Pcmu => out.extend(pcm.iter().map(|&s| encode_ulaw(s))),
            Codec::Pcma => out.extend(pcm.iter().map(|&s| encode_alaw(s))),
        }
    }

    /// Appends the 16-bit linear decoding of `g711` to `out`.
    pub fn decode(self, g711: &[u8], out: &mut Vec<i16>) {
        out.reserve(g711.len());
        match self {
            Codec::Pcmu => out.extend(g711.iter().map(|&b| decode_ulaw(b))),
            Codec::Pcma => out.extend(g711.iter().map(|&b| decode_alaw(b))),
        }
    }

    /// The encoding of linear 0: what we send between prompts (keeps NAT bindings open).
    pub fn silence_byte(self) -> u8 {
        match self {
            Codec::Pcmu => 0xFF,
            Codec::Pcma => 0xD5,
        }
    }
}

impl std::fmt::Display for Codec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_types_and_names() {
        assert_eq!(Codec::Pcmu.payload_type(), 0);
        assert_eq!(Codec::Pcma.payload_type(), 8);
        assert_eq!(Codec::Pcmu.name(), "PCMU");
        assert_eq!(Codec::Pcma.name(), "PCMA");
        assert_eq!(Codec::from_name("pcma"), Some(Codec::Pcma));
        assert_eq!(Codec::from_name("G729"), None);
        assert_eq!(Codec::from_static_pt(0), Some(Codec::Pcmu));
        assert_eq!(Codec::from_static_pt(18), None);
    }

    #[test]
    fn silence_is_encoded_zero() {
        for codec in [Codec::Pcmu, Codec::Pcma] {
            let mut out = Vec::new();
            codec.encode(&[0], &mut out);
            assert_eq!(out, vec![codec.silence_byte()]);
        }
        assert_eq!(Codec::Pcmu.silence_byte(), 0xFF);
        assert_eq!(Codec::Pcma.silence_byte(), 0xD5);
    }

    #[test]
    fn known_values_and_round_trip() {
        let mut out = Vec::new();
        Codec::Pcmu.encode(&[i16::MAX, i16::MIN], &mut out);
        assert_eq!(out, vec![0x80, 0x00]);
        out.clear();
        Codec::Pcma.encode(&[i16::MAX, i16::MIN], &mut out);
        assert_eq!(out, vec![0xAA, 0x2A]);

        for codec in [Codec::Pcmu, Codec::Pcma] {
            let pcm: Vec<i16> = (-32000..32000).step_by(997).collect();
            let mut enc = Vec::new();
            codec.encode(&pcm, &mut enc);
            let mut dec = Vec::new();
            codec.decode(&enc, &mut dec);
            assert_eq!(dec.len(), pcm.len());
            for (a, b) in pcm.iter().zip(&dec) {
                // G.711 quantisation error is at most ~3% of the magnitude (+ small offset).
                let err = (i32::from(*a) - i32::from(*b)).abs();
                assert!(
                    err <= i32::from(a.unsigned_abs() / 16) + 40,
                    "{codec}: {a} -> {b}"
                );
            }
        }
    }
}
