//! SDP offer/answer (RFC 3264) for a single G.711 audio stream.
//!
//! Parsing is done by the `sdp` crate (webrtc-rs); the offer/answer decisions are ours because
//! that crate's helpers are built for JSEP/WebRTC, not for SIP trunks and desk phones:
//!
//! * we honour the *offerer's* codec preference (RFC 3264 §6.1 lets the answerer choose, but a
//!   trunk that lists PCMA first is telling us what its far end transcodes cheapest),
//! * the telephone-event payload type is whatever the offer maps (96, 100, 101 are all seen
//!   in the wild), never an assumed 101,
//! * hold is expressed either by direction attributes (RFC 3264 §8.4) or the legacy
//!   `c=0.0.0.0` (RFC 2543); both are mapped to "don't send",
//! * the answer keeps one `m=` line per offered `m=` line (RFC 3264 §6), rejecting everything
//!   but our audio stream with port 0.
//!
//! We always packetise 20 ms regardless of `a=ptime`: ptime is a receiver preference
//! (RFC 4566 §6) and every G.711 implementation accepts 20 ms frames.

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

use sdp::SessionDescription;
use sdp::description::common::Attribute;
use sdp::description::media::MediaDescription;

use super::codec::Codec;

/// Our packetisation interval, advertised in `a=ptime` and used by the RTP sender.
pub const PTIME_MS: u32 = 20;

/// Why an SDP body could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// The body is not parseable SDP (the caller answers 400 Bad Request).
    #[error("malformed SDP: {0}")]
    Malformed(String),
    /// No `m=audio` line at all (the caller answers 488 Not Acceptable Here).
    #[error("no audio stream offered")]
    NoAudio,
    /// Audio is offered but not over RTP/AVP with PCMU or PCMA (488 Not Acceptable Here).
    #[error("no common codec (we accept PCMU/PCMA over RTP/AVP)")]
    NoCommonCodec,
}

/// Media direction attribute (RFC 3264 §5.1 / §6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    #[default]
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    /// The direction we must answer with for an offer of `self` (RFC 3264 §6.1): the mirror
    /// image, so a `sendonly` hold offer is answered `recvonly`.
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }

    /// Whether, with `self` as OUR direction, we may send RTP.
    pub fn we_send(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }

    /// Whether, with `self` as OUR direction, we expect to receive RTP.
    pub fn we_receive(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }

    /// The SDP attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Parses an SDP attribute name; `None` for attributes that are not directions.
    pub fn from_attribute(key: &str) -> Option<Direction> {
        match key {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Our side of the media: where we receive RTP, and the `o=` line identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalMedia {
    pub addr: IpAddr,
    pub port: u16,
    /// `o=` sess-id: constant for the dialog.
    pub session_id: u64,
    /// `o=` sess-version: must be incremented whenever our SDP changes (RFC 3264 §8).
    pub session_version: u64,
}

/// An `m=` line of the offer that we reject (port 0) in the answer, kept so that the answer
/// has as many `m=` lines as the offer, in the same order (RFC 3264 §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedStream {
    /// Position of the `m=` line in the offer.
    pub index: usize,
    /// Media type, e.g. `video`.
    pub media: String,
    /// Transport protocol as offered, e.g. `RTP/SAVP`.
    pub proto: String,
    /// One of the offered formats (an `m=` line needs at least one, even when rejected).
    pub format: String,
}

/// The outcome of an offer/answer exchange for the audio stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Negotiated {
    pub codec: Codec,
    /// The payload type the codec was offered on (normally the static 0 or 8).
    pub codec_pt: u8,
    /// `a=rtpmap:<pt> telephone-event/8000` as mapped by the remote side, if any.
    pub telephone_event_pt: Option<u8>,
    /// Where the remote wants RTP; `None` when `c=` is 0.0.0.0/:: (legacy hold), the port is 0
    /// (stream disabled) or the address is a host name we cannot resolve sans-IO.
    pub remote_rtp: Option<SocketAddr>,
    /// The direction attribute the remote side sent.
    pub remote_direction: Direction,
    /// Our direction (the mirror image of the remote one).
    pub local_direction: Direction,
    /// Always 20: we packetise 20 ms whatever the remote asks for.
    pub ptime_ms: u32,
    /// The remote's `a=ptime`, for logging only.
    pub remote_ptime_ms: Option<u32>,
    /// Position of the chosen audio `m=` line in the remote SDP.
    pub audio_index: usize,
    /// Other `m=` lines of an offer, rejected with port 0 in our answer.
    pub rejected: Vec<RejectedStream>,
}

fn parse(body: &[u8]) -> Result<SessionDescription, SdpError> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(SdpError::Malformed("empty body".into()));
    }
    let mut cursor = Cursor::new(body);
    SessionDescription::unmarshal(&mut cursor).map_err(|e| SdpError::Malformed(e.to_string()))
}

fn proto_string(md: &MediaDescription) -> String {
    md.media_name.protos.join("/")
}

fn is_rtp_avp(md: &MediaDescription) -> bool {
    md.media_name.protos.len() == 2
        && md.media_name.protos[0] == "RTP"
        && md.media_name.protos[1] == "AVP"
}

/// `a=rtpmap:<pt> <name>/<clock>[/<channels>]` for `pt`, as (name, clock rate).
fn rtpmap(attrs: &[Attribute], pt: u8) -> Option<(&str, u32)> {
    attrs.iter().filter(|a| a.key == "rtpmap").find_map(|a| {
        let value = a.value.as_deref()?;
        let (map_pt, encoding) = value.trim().split_once(char::is_whitespace)?;
        if map_pt.parse::<u8>().ok()? != pt {
            return None;
        }
        let mut parts = encoding.trim().split('/');
        let name = parts.next()?;
        let clock = parts.next()?.trim().parse::<u32>().ok()?;
        Some((name, clock))
    })
}

/// The codec carried by payload type `pt` in this media description: the rtpmap wins when
/// present (a dynamic PT may carry PCMU/8000), otherwise the RFC 3551 static table.
fn codec_for_pt(md: &MediaDescription, pt: u8) -> Option<Codec> {
    match rtpmap(&md.attributes, pt) {
        Some((name, 8000)) => Codec::from_name(name),
        Some(_) => None,
        None => Codec::from_static_pt(pt),
    }
}

fn formats(md: &MediaDescription) -> impl Iterator<Item = u8> + '_ {
    md.media_name
        .formats
        .iter()
        .filter_map(|f| f.trim().parse::<u8>().ok())
        .filter(|pt| *pt < 128)
}

/// The first listed payload type mapped to `telephone-event/8000`. Only PTs that appear on the
/// `m=` line count (a WebRTC offer may also map telephone-event/48000 for Opus).
fn telephone_event_pt(md: &MediaDescription) -> Option<u8> {
    formats(md).find(|&pt| {
        matches!(rtpmap(&md.attributes, pt),
            Some((name, 8000)) if name.eq_ignore_ascii_case("telephone-event"))
    })
}

fn direction_in(attrs: &[Attribute]) -> Option<Direction> {
    attrs
        .iter()
        .rev()
        .find_map(|a| Direction::from_attribute(&a.key))
}

/// Media-level direction, else session-level, else sendrecv (RFC 3264 §5.1).
fn remote_direction(desc: &SessionDescription, md: &MediaDescription) -> Direction {
    direction_in(&md.attributes)
        .or_else(|| direction_in(&desc.attributes))
        .unwrap_or_default()
}

fn remote_ptime(md: &MediaDescription) -> Option<u32> {
    md.attributes
        .iter()
        .find(|a| a.key == "ptime")
        .and_then(|a| a.value.as_deref())
        .and_then(|v| v.trim().parse::<f32>().ok())
        .map(|ms| ms.round() as u32)
}

/// Media-level `c=` else session-level `c=` (RFC 4566 §5.7), combined with the `m=` port.
fn remote_rtp(
    desc: &SessionDescription,
    md: &MediaDescription,
) -> Result<Option<SocketAddr>, SdpError> {
    let port = u16::try_from(md.media_name.port.value).unwrap_or(0);
    if port == 0 {
        return Ok(None);
    }
    let conn = md
        .connection_information
        .as_ref()
        .or(desc.connection_information.as_ref())
        .ok_or_else(|| SdpError::Malformed("no c= line for the audio stream".into()))?;
    let Some(addr) = conn.address.as_ref() else {
        return Err(SdpError::Malformed("c= line without an address".into()));
    };
    // `c=IN IP4 224.2.1.1/127` carries a TTL suffix for multicast; the address is before '/'.
    let host = addr.address.split('/').next().unwrap_or_default();
    match host.parse::<IpAddr>() {
        Ok(ip) if ip.is_unspecified() => Ok(None),
        Ok(ip) => Ok(Some(SocketAddr::new(ip, port))),
        Err(_) => {
            // RFC 4566 allows an FQDN here; we cannot resolve it sans-IO. Symmetric RTP will
            // latch onto the caller's real address as soon as its first packet arrives.
            tracing::warn!(
                host,
                "SDP c= is not an IP address; waiting for symmetric RTP"
            );
            Ok(None)
        }
    }
}

/// The first `m=audio` line over RTP/AVP, with its index. An audio stream over anything else
/// (RTP/SAVP, RTP/AVPF, ...) is not usable by us: that is a codec/transport mismatch (488).
fn audio_stream(desc: &SessionDescription) -> Result<(usize, &MediaDescription), SdpError> {
    let mut saw_audio = false;
    for (i, md) in desc.media_descriptions.iter().enumerate() {
        if md.media_name.media != "audio" {
            continue;
        }
        saw_audio = true;
        if is_rtp_avp(md) {
            return Ok((i, md));
        }
    }
    if saw_audio {
        Err(SdpError::NoCommonCodec)
    } else {
        Err(SdpError::NoAudio)
    }
}

/// Negotiates an incoming offer: picks the first PCMU/PCMA format in the offer's order.
pub fn negotiate(offer: &[u8]) -> Result<Negotiated, SdpError> {
    let desc = parse(offer)?;
    let (audio_index, md) = audio_stream(&desc)?;
    let (codec_pt, codec) = formats(md)
        .find_map(|pt| codec_for_pt(md, pt).map(|c| (pt, c)))
        .ok_or(SdpError::NoCommonCodec)?;
    let remote_direction = remote_direction(&desc, md);
    let rejected = desc
        .media_descriptions
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != audio_index)
        .map(|(index, md)| RejectedStream {
            index,
            media: md.media_name.media.clone(),
            proto: proto_string(md),
            format: md
                .media_name
                .formats
                .first()
                .cloned()
                .unwrap_or_else(|| "0".into()),
        })
        .collect();
    Ok(Negotiated {
        codec,
        codec_pt,
        telephone_event_pt: telephone_event_pt(md),
        remote_rtp: remote_rtp(&desc, md)?,
        remote_direction,
        local_direction: remote_direction.answer(),
        ptime_ms: PTIME_MS,
        remote_ptime_ms: remote_ptime(md),
        audio_index,
        rejected,
    })
}

/// The codecs of our offers (outbound calls), in our order of preference: PCMU first, as
/// the Vietnamese mobile networks' G.711 interconnects use it.
pub const OFFER_CODECS: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

/// The payload type of `telephone-event/8000` in our offers (RFC 4733; 101 is what most
/// trunks and phones expect, and what the answer should echo).
pub const OFFER_TELEPHONE_EVENT_PT: u8 = 101;

/// Accepts the callee's answer to an offer rendered by [`render_offer`]: codec PCMU or
/// PCMA (the first of ours the answer kept), the answer's telephone-event PT (if it kept
/// one), where to send RTP, and our direction (the mirror of the answer's). The result is
/// the same [`Negotiated`] the inbound path gets from [`negotiate`], so both directions
/// run the same answered-call loop.
///
/// Errors: [`SdpError::Malformed`] for unparseable SDP, [`SdpError::NoAudio`] without an
/// `m=audio` line, [`SdpError::NoCommonCodec`] when the answer kept none of our codecs or
/// rejected the stream (port 0) — the caller then hangs up (BYE) the just-answered call.
pub fn accept_answer(answer: &[u8]) -> Result<Negotiated, SdpError> {
    negotiate_answer(answer, &OFFER_CODECS, OFFER_TELEPHONE_EVENT_PT)
}

/// [`accept_answer`] for an offer of other `offered` codecs (our order of preference) and
/// telephone-event PT `te_pt`.
pub fn negotiate_answer(
    answer: &[u8],
    offered: &[Codec],
    te_pt: u8,
) -> Result<Negotiated, SdpError> {
    let desc = parse(answer)?;
    let (audio_index, md) = audio_stream(&desc)?;
    if md.media_name.port.value == 0 {
        // Port 0 in an answer rejects the stream (RFC 3264 §6).
        return Err(SdpError::NoCommonCodec);
    }
    // The answer may list several of our codecs (RFC 3264 §6.1); we send the one we
    // prefer, on the payload type the answer uses for it.
    let kept: Vec<(u8, Codec)> = formats(md)
        .filter_map(|pt| codec_for_pt(md, pt).map(|c| (pt, c)))
        .collect();
    let (codec_pt, codec) = offered
        .iter()
        .find_map(|ours| kept.iter().find(|(_, c)| c == ours).copied())
        .ok_or(SdpError::NoCommonCodec)?;
    // The answerer should echo our PT, but accept whatever it mapped telephone-event to.
    let te = telephone_event_pt(md).or_else(|| {
        formats(md)
            .any(|pt| pt == te_pt && rtpmap(&md.attributes, pt).is_none())
            .then_some(te_pt)
    });
    let remote_direction = remote_direction(&desc, md);
    Ok(Negotiated {
        codec,
        codec_pt,
        telephone_event_pt: te,
        remote_rtp: remote_rtp(&desc, md)?,
        remote_direction,
        local_direction: remote_direction.answer(),
        ptime_ms: PTIME_MS,
        remote_ptime_ms: remote_ptime(md),
        audio_index,
        rejected: Vec::new(),
    })
}

fn addr_type(addr: IpAddr) -> &'static str {
    match addr {
        IpAddr::V4(_) => "IP4",
        IpAddr::V6(_) => "IP6",
    }
}

fn session_header(out: &mut String, local: &LocalMedia) {
    let at = addr_type(local.addr);
    out.push_str("v=0\r\n");
    out.push_str(&format!(
        "o=tongdai {} {} IN {at} {}\r\n",
        local.session_id, local.session_version, local.addr
    ));
    out.push_str("s=tongdai\r\n");
    out.push_str(&format!("c=IN {at} {}\r\n", local.addr));
    out.push_str("t=0 0\r\n");
}

fn audio_lines(
    out: &mut String,
    local: &LocalMedia,
    codecs: &[(u8, Codec)],
    te_pt: Option<u8>,
    dir: Direction,
) {
    out.push_str(&format!("m=audio {} RTP/AVP", local.port));
    for (pt, _) in codecs {
        out.push_str(&format!(" {pt}"));
    }
    if let Some(te) = te_pt {
        out.push_str(&format!(" {te}"));
    }
    out.push_str("\r\n");
    for (pt, codec) in codecs {
        out.push_str(&format!("a=rtpmap:{pt} {}/8000\r\n", codec.name()));
    }
    if let Some(te) = te_pt {
        out.push_str(&format!("a=rtpmap:{te} telephone-event/8000\r\n"));
        out.push_str(&format!("a=fmtp:{te} 0-16\r\n"));
    }
    out.push_str(&format!("a=ptime:{PTIME_MS}\r\n"));
    out.push_str(&format!("a={}\r\n", dir.as_str()));
}

/// Renders our answer (CRLF line ends). The audio `m=` line keeps its position among the
/// offer's `m=` lines; the others are rejected with port 0. Our port is always present, even
/// for a hold or inactive offer, so that resuming needs no new port.
pub fn render_answer(neg: &Negotiated, local: &LocalMedia) -> String {
    let mut out = String::with_capacity(320);
    session_header(&mut out, local);
    let reject = |out: &mut String, r: &RejectedStream| {
        out.push_str(&format!("m={} 0 {} {}\r\n", r.media, r.proto, r.format));
    };
    for r in neg.rejected.iter().filter(|r| r.index < neg.audio_index) {
        reject(&mut out, r);
    }
    audio_lines(
        &mut out,
        local,
        &[(neg.codec_pt, neg.codec)],
        neg.telephone_event_pt,
        neg.local_direction,
    );
    for r in neg.rejected.iter().filter(|r| r.index > neg.audio_index) {
        reject(&mut out, r);
    }
    out
}

/// Renders our offer for an outbound call (CRLF line ends): one `m=audio` line on our
/// port with PCMU (0) and PCMA (8), telephone-event/8000 on PT 101 (`0-16`), `ptime:20`,
/// sendrecv, our address in `o=`/`c=`. Accept the answer with [`accept_answer`].
pub fn render_offer(local: &LocalMedia) -> String {
    render_offer_with(&OFFER_CODECS, OFFER_TELEPHONE_EVENT_PT, local)
}

/// [`render_offer`] with other `codecs` (in order of preference, on their static payload
/// types) and telephone-event on `te_pt`.
pub fn render_offer_with(codecs: &[Codec], te_pt: u8, local: &LocalMedia) -> String {
    let mut out = String::with_capacity(320);
    session_header(&mut out, local);
    let pts: Vec<(u8, Codec)> = codecs.iter().map(|c| (c.payload_type(), *c)).collect();
    audio_lines(&mut out, local, &pts, Some(te_pt), Direction::SendRecv);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn sdp(lines: &[&str]) -> Vec<u8> {
        let mut s = lines.join("\r\n");
        s.push_str("\r\n");
        s.into_bytes()
    }

    fn local() -> LocalMedia {
        LocalMedia {
            addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)),
            port: 40000,
            session_id: 1234,
            session_version: 1,
        }
    }

    const SIPP_OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

    #[test]
    fn sipp_default_offer() {
        let n = negotiate(SIPP_OFFER.as_bytes()).unwrap();
        assert_eq!(n.codec, Codec::Pcmu);
        assert_eq!(n.codec_pt, 0);
        assert_eq!(n.telephone_event_pt, None);
        assert_eq!(n.remote_rtp, Some("127.0.0.1:6000".parse().unwrap()));
        assert_eq!(n.remote_direction, Direction::SendRecv);
        assert_eq!(n.local_direction, Direction::SendRecv);
        assert_eq!(n.ptime_ms, 20);
    }

    #[test]
    fn offer_order_is_respected() {
        let pcmu_first = sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            "m=audio 4000 RTP/AVP 0 8 101",
            "a=rtpmap:101 telephone-event/8000",
        ]);
        let n = negotiate(&pcmu_first).unwrap();
        assert_eq!((n.codec, n.codec_pt), (Codec::Pcmu, 0));

        let pcma_first = sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            "m=audio 4000 RTP/AVP 8 0 101",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000",
        ]);
        let n = negotiate(&pcma_first).unwrap();
        assert_eq!((n.codec, n.codec_pt), (Codec::Pcma, 8));
        assert_eq!(n.telephone_event_pt, Some(101));
    }

    #[test]
    fn dynamic_pt_for_g711() {
        let offer = sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            "m=audio 4000 RTP/AVP 18 110",
            "a=rtpmap:18 G729/8000",
            "a=rtpmap:110 pcma/8000",
        ]);
        let n = negotiate(&offer).unwrap();
        assert_eq!((n.codec, n.codec_pt), (Codec::Pcma, 110));
        let answer = render_answer(&n, &local());
        assert!(answer.contains("m=audio 40000 RTP/AVP 110\r\n"));
        assert!(answer.contains("a=rtpmap:110 PCMA/8000\r\n"));
    }

    #[test]
    fn only_g729_is_no_common_codec() {
        let offer = sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            "m=audio 4000 RTP/AVP 18 101",
            "a=rtpmap:18 G729/8000",
            "a=rtpmap:101 telephone-event/8000",
        ]);
        assert_eq!(negotiate(&offer), Err(SdpError::NoCommonCodec));
    }

    #[test]
    fn srtp_only_is_no_common_codec_and_video_only_is_no_audio() {
        let savp = sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            "m=audio 4000 RTP/SAVP 0",
        ]);
        assert_eq!(negotiate(&savp), Err(SdpError::NoCommonCodec));
        let video = sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            "m=video 4002 RTP/AVP 96",
            "a=rtpmap:96 H264/90000",
        ]);
        assert_eq!(negotiate(&video), Err(SdpError::NoAudio));
    }

    #[test]
    fn telephone_event_pt_is_taken_from_the_offer() {
        for pt in [96u8, 100, 101] {
            let m = format!("m=audio 4000 RTP/AVP 0 {pt}");
            let rtpmap = format!("a=rtpmap:{pt} telephone-event/8000");
            let offer = sdp(&[
                "v=0",
                "o=- 1 1 IN IP4 192.0.2.1",
                "s=-",
                "c=IN IP4 192.0.2.1",
                "t=0 0",
                &m,
                &rtpmap,
                &format!("a=fmtp:{pt} 0-15"),
            ]);
            let n = negotiate(&offer).unwrap();
            assert_eq!(n.telephone_event_pt, Some(pt));
            let answer = render_answer(&n, &local());
            assert!(answer.contains(&format!("m=audio 40000 RTP/AVP 0 {pt}\r\n")));
            assert!(answer.contains(&format!("a=fmtp:{pt} 0-16\r\n")));
        }
        // telephone-event at another clock rate (Opus-style) does not count.
        let offer = sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            "m=audio 4000 RTP/AVP 0 110",
            "a=rtpmap:110 telephone-event/48000",
        ]);
        assert_eq!(negotiate(&offer).unwrap().telephone_event_pt, None);
    }

    #[test]
    fn sendonly_is_answered_recvonly_and_inactive_inactive() {
        for (offered, answered) in [
            ("sendonly", Direction::RecvOnly),
            ("recvonly", Direction::SendOnly),
            ("inactive", Direction::Inactive),
            ("sendrecv", Direction::SendRecv),
        ] {
            let attr = format!("a={offered}");
            let offer = sdp(&[
                "v=0",
                "o=- 1 2 IN IP4 192.0.2.1",
                "s=-",
                "c=IN IP4 192.0.2.1",
                "t=0 0",
                "m=audio 4000 RTP/AVP 8",
                &attr,
            ]);
            let n = negotiate(&offer).unwrap();
            assert_eq!(n.remote_direction.as_str(), offered);
            assert_eq!(n.local_direction, answered);
            let answer = render_answer(&n, &local());
            assert!(answer.contains(&format!("a={}\r\n", answered.as_str())));
            assert!(answer.contains("m=audio 40000 "), "port stays ours on hold");
        }
        assert!(!Direction::RecvOnly.we_send() && Direction::RecvOnly.we_receive());
        assert!(Direction::SendOnly.we_send() && !Direction::SendOnly.we_receive());
        assert!(!Direction::Inactive.we_send() && !Direction::Inactive.we_receive());
    }

    #[test]
    fn legacy_hold_with_zero_address() {
        let offer = sdp(&[
            "v=0",
            "o=- 1 2 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "m=audio 4000 RTP/AVP 0",
        ]);
        let n = negotiate(&offer).unwrap();
        assert_eq!(n.remote_rtp, None);
        let port0 = sdp(&[
            "v=0",
            "o=- 1 2 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            "m=audio 0 RTP/AVP 0",
        ]);
        assert_eq!(negotiate(&port0).unwrap().remote_rtp, None);
    }

    #[test]
    fn media_level_overrides_session_level() {
        let offer = sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            "a=sendonly",
            "m=audio 4000 RTP/AVP 0",
            "c=IN IP4 198.51.100.7",
            "a=sendrecv",
        ]);
        let n = negotiate(&offer).unwrap();
        assert_eq!(n.remote_rtp, Some("198.51.100.7:4000".parse().unwrap()));
        assert_eq!(n.remote_direction, Direction::SendRecv);

        let session_only = sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            "a=sendonly",
            "m=audio 4000 RTP/AVP 0",
        ]);
        let n = negotiate(&session_only).unwrap();
        assert_eq!(n.remote_rtp, Some("192.0.2.1:4000".parse().unwrap()));
        assert_eq!(n.remote_direction, Direction::SendOnly);
        assert_eq!(n.local_direction, Direction::RecvOnly);
    }

    #[test]
    fn malformed_offers() {
        assert!(matches!(negotiate(b""), Err(SdpError::Malformed(_))));
        assert!(matches!(
            negotiate(b"hello world"),
            Err(SdpError::Malformed(_))
        ));
        assert!(matches!(
            negotiate(b"v=0\r\no=broken\r\n"),
            Err(SdpError::Malformed(_))
        ));
        let bad_port = sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            "m=audio 99999 RTP/AVP 0",
        ]);
        assert!(matches!(negotiate(&bad_port), Err(SdpError::Malformed(_))));
        let no_c = sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "t=0 0",
            "m=audio 4000 RTP/AVP 0",
        ]);
        assert!(matches!(negotiate(&no_c), Err(SdpError::Malformed(_))));
        assert!(matches!(
            negotiate(&[0xff, 0xfe, 0x00]),
            Err(SdpError::Malformed(_))
        ));
    }

    #[test]
    fn answer_round_trips_through_the_parser() {
        let n = negotiate(SIPP_OFFER.as_bytes()).unwrap();
        let answer = render_answer(&n, &local());
        assert!(answer.starts_with("v=0\r\no=tongdai 1234 1 IN IP4 10.0.0.5\r\ns=tongdai\r\n"));
        assert!(answer.ends_with("a=sendrecv\r\n"));
        assert!(answer.lines().all(|l| !l.is_empty()));
        assert_eq!(answer.matches("\r\n").count(), answer.lines().count());
        // Re-parse our answer as if it were an offer: same codec, our address.
        let back = negotiate(answer.as_bytes()).unwrap();
        assert_eq!(back.codec, Codec::Pcmu);
        assert_eq!(back.remote_rtp, Some("10.0.0.5:40000".parse().unwrap()));
        // And as an answer to an offer of ours.
        let back = negotiate_answer(answer.as_bytes(), &[Codec::Pcma, Codec::Pcmu], 101).unwrap();
        assert_eq!(back.codec, Codec::Pcmu);
    }

    #[test]
    fn ipv6_renders_ip6() {
        let mut l = local();
        l.addr = "2001:db8::5".parse().unwrap();
        let n = negotiate(SIPP_OFFER.as_bytes()).unwrap();
        let answer = render_answer(&n, &l);
        assert!(answer.contains("o=tongdai 1234 1 IN IP6 2001:db8::5\r\n"));
        assert!(answer.contains("c=IN IP6 2001:db8::5\r\n"));
        let back = negotiate(answer.as_bytes()).unwrap();
        assert_eq!(
            back.remote_rtp,
            Some("[2001:db8::5]:40000".parse().unwrap())
        );
    }

    #[test]
    fn baresip_like_offer() {
        let offer = sdp(&[
            "v=0",
            "o=- 1985312394 3837174539 IN IP4 192.168.1.20",
            "s=-",
            "c=IN IP4 192.168.1.20",
            "t=0 0",
            "m=audio 10462 RTP/AVP 96 97 9 0 8 101",
            "b=AS:101",
            "a=rtpmap:96 opus/48000/2",
            "a=fmtp:96 stereo=1;sprop-stereo=1",
            "a=rtpmap:97 L16/16000",
            "a=rtpmap:9 G722/8000",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:8 PCMA/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=fmtp:101 0-15",
            "a=sendrecv",
            "a=label:1",
            "a=ssrc:1111111 cname:abc@x",
            "a=rtcp-rsize",
        ]);
        let n = negotiate(&offer).unwrap();
        assert_eq!((n.codec, n.codec_pt), (Codec::Pcmu, 0));
        assert_eq!(n.telephone_event_pt, Some(101));
        assert_eq!(n.remote_rtp, Some("192.168.1.20:10462".parse().unwrap()));
    }

    #[test]
    fn linphone_like_offer_with_video_is_answered_with_video_rejected() {
        let offer = sdp(&[
            "v=0",
            "o=alice 3456 789 IN IP4 192.168.0.12",
            "s=Talk",
            "c=IN IP4 192.168.0.12",
            "t=0 0",
            "a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics",
            "m=audio 7078 RTP/AVP 96 97 98 0 8 18 99 100 101",
            "a=rtpmap:96 telephone-event/8000",
            "a=rtpmap:97 opus/48000/2",
            "a=fmtp:97 useinbandfec=1",
            "a=rtpmap:98 speex/16000",
            "a=rtpmap:99 telephone-event/48000",
            "a=rtpmap:100 telephone-event/16000",
            "a=rtpmap:101 speex/8000",
            "a=fmtp:18 annexb=yes",
            "a=rtcp-fb:* trr-int 1000",
            "a=ptime:30",
            "m=video 9078 RTP/AVP 102",
            "a=rtpmap:102 VP8/90000",
        ]);
        let n = negotiate(&offer).unwrap();
        assert_eq!((n.codec, n.codec_pt), (Codec::Pcmu, 0));
        assert_eq!(n.telephone_event_pt, Some(96));
        assert_eq!(n.remote_ptime_ms, Some(30));
        assert_eq!(n.ptime_ms, 20);
        let answer = render_answer(&n, &local());
        let mlines: Vec<&str> = answer.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(
            mlines,
            vec!["m=audio 40000 RTP/AVP 0 96", "m=video 0 RTP/AVP 102"]
        );
        assert!(answer.contains("a=rtpmap:96 telephone-event/8000\r\n"));
        assert!(answer.contains("a=ptime:20\r\n"));
    }

    #[test]
    fn audio_after_a_rejected_stream_keeps_its_position() {
        let offer = sdp(&[
            "v=0",
            "o=- 1 1 IN IP4 192.0.2.1",
            "s=-",
            "c=IN IP4 192.0.2.1",
            "t=0 0",
            "m=audio 4000 RTP/SAVP 0",
            "m=audio 4002 RTP/AVP 0",
        ]);
        let n = negotiate(&offer).unwrap();
        assert_eq!(n.audio_index, 1);
        assert_eq!(n.remote_rtp, Some("192.0.2.1:4002".parse().unwrap()));
        let answer = render_answer(&n, &local());
        let mlines: Vec<&str> = answer.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(
            mlines,
            vec!["m=audio 0 RTP/SAVP 0", "m=audio 40000 RTP/AVP 0"]
        );
    }

    #[test]
    fn offer_and_answer_for_outbound_calls() {
        let offer = render_offer_with(&[Codec::Pcma, Codec::Pcmu], 101, &local());
        assert!(offer.contains("m=audio 40000 RTP/AVP 8 0 101\r\n"));
        assert!(offer.contains("a=rtpmap:8 PCMA/8000\r\n"));
        assert!(offer.contains("a=rtpmap:0 PCMU/8000\r\n"));
        assert!(offer.contains("a=fmtp:101 0-16\r\n"));
        assert!(offer.contains("a=sendrecv\r\n"));
        // Our own offer, negotiated by an answerer, yields PCMA first.
        let n = negotiate(offer.as_bytes()).unwrap();
        assert_eq!(n.codec, Codec::Pcma);

        let answer = sdp(&[
            "v=0",
            "o=- 5 5 IN IP4 203.0.113.9",
            "s=-",
            "c=IN IP4 203.0.113.9",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=recvonly",
        ]);
        let n = negotiate_answer(&answer, &[Codec::Pcma, Codec::Pcmu], 101).unwrap();
        assert_eq!(n.codec, Codec::Pcmu);
        assert_eq!(n.telephone_event_pt, Some(101));
        assert_eq!(n.remote_rtp, Some("203.0.113.9:30000".parse().unwrap()));
        assert_eq!(n.local_direction, Direction::SendOnly);
        // A codec we did not offer, or a rejected stream, is not acceptable.
        assert_eq!(
            negotiate_answer(&answer, &[Codec::Pcma], 101),
            Err(SdpError::NoCommonCodec)
        );
        let rejected = sdp(&[
            "v=0",
            "o=- 5 5 IN IP4 203.0.113.9",
            "s=-",
            "c=IN IP4 203.0.113.9",
            "t=0 0",
            "m=audio 0 RTP/AVP 0",
        ]);
        assert_eq!(
            negotiate_answer(&rejected, &[Codec::Pcmu], 101),
            Err(SdpError::NoCommonCodec)
        );
    }

    #[test]
    fn our_offer_is_pcmu_pcma_and_telephone_event_101() {
        let offer = render_offer(&local());
        assert_eq!(
            offer,
            "v=0\r\n\
             o=tongdai 1234 1 IN IP4 10.0.0.5\r\n\
             s=tongdai\r\n\
             c=IN IP4 10.0.0.5\r\n\
             t=0 0\r\n\
             m=audio 40000 RTP/AVP 0 8 101\r\n\
             a=rtpmap:0 PCMU/8000\r\n\
             a=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\n\
             a=fmtp:101 0-16\r\n\
             a=ptime:20\r\n\
             a=sendrecv\r\n"
        );
        // What an answerer (our own inbound path) makes of it.
        let n = negotiate(offer.as_bytes()).unwrap();
        assert_eq!((n.codec, n.codec_pt), (Codec::Pcmu, 0));
        assert_eq!(n.telephone_event_pt, Some(101));
        assert_eq!(n.remote_rtp, Some("10.0.0.5:40000".parse().unwrap()));
    }

    fn answer(m: &str, extra: &[&str]) -> Vec<u8> {
        let mut lines = vec![
            "v=0",
            "o=callee 77 77 IN IP4 203.0.113.9",
            "s=-",
            "c=IN IP4 203.0.113.9",
            "t=0 0",
            m,
        ];
        lines.extend_from_slice(extra);
        sdp(&lines)
    }

    #[test]
    fn accepting_an_answer_gives_the_inbound_paths_negotiated() {
        // A typical trunk answer: one codec, our telephone-event PT echoed.
        let n = accept_answer(&answer(
            "m=audio 30000 RTP/AVP 8 101",
            &[
                "a=rtpmap:8 PCMA/8000",
                "a=rtpmap:101 telephone-event/8000",
                "a=fmtp:101 0-15",
                "a=ptime:20",
                "a=sendrecv",
            ],
        ))
        .unwrap();
        assert_eq!((n.codec, n.codec_pt), (Codec::Pcma, 8));
        assert_eq!(n.telephone_event_pt, Some(101));
        assert_eq!(n.remote_rtp, Some("203.0.113.9:30000".parse().unwrap()));
        assert_eq!(n.remote_direction, Direction::SendRecv);
        assert_eq!(n.local_direction, Direction::SendRecv);
        assert_eq!(n.ptime_ms, 20);
        assert!(n.rejected.is_empty());
        // The same structure the inbound path builds for an equivalent offer.
        let inbound = negotiate(&answer(
            "m=audio 30000 RTP/AVP 8 101",
            &["a=rtpmap:101 telephone-event/8000", "a=ptime:20"],
        ))
        .unwrap();
        assert_eq!(n, inbound);
    }

    #[test]
    fn the_first_of_our_codecs_the_answer_kept_wins() {
        // Both kept, in the answerer's order PCMA first: we still send PCMU.
        let n = accept_answer(&answer("m=audio 30000 RTP/AVP 8 0 101", &[])).unwrap();
        assert_eq!((n.codec, n.codec_pt), (Codec::Pcmu, 0));
        // Codecs we did not offer are passed over.
        let n = accept_answer(&answer(
            "m=audio 30000 RTP/AVP 18 8",
            &["a=rtpmap:18 G729/8000"],
        ))
        .unwrap();
        assert_eq!(n.codec, Codec::Pcma);
        // A dynamic PT for one of ours: sent on the answer's PT.
        let n = accept_answer(&answer(
            "m=audio 30000 RTP/AVP 112",
            &["a=rtpmap:112 PCMU/8000"],
        ))
        .unwrap();
        assert_eq!((n.codec, n.codec_pt), (Codec::Pcmu, 112));
        assert_eq!(
            n.telephone_event_pt, None,
            "no telephone-event: INFO digits only"
        );
    }

    #[test]
    fn answer_telephone_event_and_direction() {
        // The answerer mapped telephone-event to another PT: use its PT.
        let n = accept_answer(&answer(
            "m=audio 30000 RTP/AVP 0 96",
            &["a=rtpmap:96 telephone-event/8000", "a=recvonly"],
        ))
        .unwrap();
        assert_eq!(n.telephone_event_pt, Some(96));
        assert_eq!(n.remote_direction, Direction::RecvOnly);
        assert_eq!(n.local_direction, Direction::SendOnly, "we may only send");
        // 101 listed without an rtpmap: ours, as offered.
        let n = accept_answer(&answer("m=audio 30000 RTP/AVP 0 101", &["a=sendonly"])).unwrap();
        assert_eq!(n.telephone_event_pt, Some(101));
        assert_eq!(n.local_direction, Direction::RecvOnly);
        // Held from the start (c=0.0.0.0): nowhere to send until RTP arrives.
        let held = sdp(&[
            "v=0",
            "o=callee 77 77 IN IP4 203.0.113.9",
            "s=-",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "m=audio 30000 RTP/AVP 0",
            "a=inactive",
        ]);
        let n = accept_answer(&held).unwrap();
        assert_eq!(n.remote_rtp, None);
        assert_eq!(n.local_direction, Direction::Inactive);
    }

    #[test]
    fn answers_we_cannot_use_are_errors() {
        assert_eq!(
            accept_answer(&answer(
                "m=audio 30000 RTP/AVP 18 101",
                &["a=rtpmap:18 G729/8000", "a=rtpmap:101 telephone-event/8000"],
            )),
            Err(SdpError::NoCommonCodec),
            "no common codec"
        );
        assert_eq!(
            accept_answer(&answer("m=audio 0 RTP/AVP 0", &[])),
            Err(SdpError::NoCommonCodec),
            "stream rejected with port 0"
        );
        assert_eq!(
            accept_answer(&answer("m=audio 30000 RTP/SAVP 0", &[])),
            Err(SdpError::NoCommonCodec),
            "SRTP only"
        );
        assert_eq!(
            accept_answer(&answer(
                "m=video 30000 RTP/AVP 96",
                &["a=rtpmap:96 H264/90000"]
            )),
            Err(SdpError::NoAudio)
        );
        assert!(matches!(accept_answer(b""), Err(SdpError::Malformed(_))));
        assert!(matches!(
            accept_answer(b"v=0\r\nm=audio\r\n"),
            Err(SdpError::Malformed(_))
        ));
    }

    #[test]
    fn offer_answer_round_trip_through_our_own_answerer() {
        let mut callee = local();
        callee.addr = "198.51.100.20".parse().unwrap();
        callee.port = 50_000;
        let offer = render_offer(&local());
        let at_callee = negotiate(offer.as_bytes()).unwrap();
        let their_answer = render_answer(&at_callee, &callee);
        let n = accept_answer(their_answer.as_bytes()).unwrap();
        assert_eq!((n.codec, n.codec_pt), (Codec::Pcmu, 0));
        assert_eq!(n.telephone_event_pt, Some(101));
        assert_eq!(n.remote_rtp, Some("198.51.100.20:50000".parse().unwrap()));
        assert_eq!(n.local_direction, Direction::SendRecv);
    }

    #[test]
    fn lf_only_line_ends_are_tolerated() {
        let offer = SIPP_OFFER.replace("\r\n", "\n");
        assert_eq!(negotiate(offer.as_bytes()).unwrap().codec, Codec::Pcmu);
    }
}
