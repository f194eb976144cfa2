//! The socket edge: every datagram (or stream-framed message) goes through
//! [`classify`] before anything else in the stack sees it.
//!
//! Why this exists: `rsipstack`'s parser is lenient in ways that hurt a public
//! hotline. It silently drops what it cannot parse (so a caller with a slightly
//! odd phone never gets an answer and retransmits for 32 s), its `Method` is a
//! closed enum (RFC 3261 §8.2.1 wants a 501 for an unknown method, not silence),
//! a non-UTF-8 byte in one header line makes it drop every header after it, and it
//! neither rejects a bad `Content-Length` nor knows that over UDP a *smaller*
//! `Content-Length` truncates the message (RFC 3261 §18.3).
//!
//! So the edge does three things, all sans-IO:
//! 1. **framing and line-level normalisation** of the raw bytes (keepalives, head/body
//!    split, LWS unfolding, compact header names, `Content-Length`), never a full
//!    SIP grammar — `rsip` still does the parsing;
//! 2. **stateless validation** of what `rsip` parsed (RFC 3261 §8.2, RFC 4475), in
//!    [`validate_request`], which the endpoint can reuse;
//! 3. building a **minimal reply** for whatever it rejects, from the parsed request
//!    when there is one and from the raw Via/From/To/Call-ID/CSeq lines otherwise,
//!    so that the sender's client transaction stops retransmitting.
//!
//! Nothing here may panic on network data: all slicing goes through `get`, and a
//! fuzz-style test feeds mutated RFC 4475 messages through it.

use rsip::Header;
use rsipstack::sip as rsip;
use std::fmt::Write as _;

/// Largest datagram we accept. Anything larger never arrives over UDP (the IPv4/6
/// payload limit); over TCP the [`super::framing::StreamFramer`] enforces its own
/// limit before a message gets here.
pub const MAX_DATAGRAM: usize = 65_535;

/// Value of the `Server` header on every reply built here (RFC 3261 §20.35).
pub const SERVER_NAME: &str = "tongdai";

/// What one inbound datagram (or one framed stream message) turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub enum Inbound {
    /// A request that parsed and passed [`validate_request`].
    Request(rsip::Request),
    /// A response that parsed and is fit for the transaction layer.
    Response(rsip::Response),
    /// RFC 5626 CRLF / CRLFCRLF ping or a whitespace-only datagram: not a message.
    KeepAlive,
    /// A request we answer statelessly with an error. `reason` says why (for
    /// logs/metrics); `reply` holds the complete response bytes to send back to
    /// the source, or `None` when no usable reply can be built (no Via or no
    /// CSeq), in which case the request is only logged.
    Reject {
        status: u16,
        reason: String,
        reply: Option<Vec<u8>>,
    },
    /// Garbage, an unusable response, or an invalid ACK: nothing may be answered
    /// (RFC 3261 never answers responses or ACKs).
    Drop { reason: String },
}

/// A stateless rejection of a parsed request: the status to answer with, why,
/// and the headers RFC 3261 requires on that status (e.g. `Unsupported` on 420,
/// `Accept` on 415).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {reason}")]
pub struct Rejection {
    pub status: u16,
    pub reason: String,
    pub extra_headers: Vec<(String, String)>,
}

impl Rejection {
    pub fn new(status: u16, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            extra_headers: Vec::new(),
        }
    }

    fn bad(reason: impl Into<String>) -> Self {
        Self::new(400, reason)
    }

    fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.extra_headers.push((name.to_string(), value.into()));
        self
    }
}

/// The standard reason phrase for the status codes this module produces
/// (RFC 3261 §21); the status line of our replies always uses it, while the
/// diagnostic text stays in logs.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        486 => "Busy Here",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        _ => "Error",
    }
}

// ---------------------------------------------------------------------------
// classify
// ---------------------------------------------------------------------------

/// Classifies one UDP datagram (or one message framed by
/// [`super::framing::StreamFramer`]). Never panics, whatever the bytes.
///
/// Over UDP the datagram is the whole message, so a `Content-Length` larger than
/// the bytes present is an error and a smaller one truncates (RFC 3261 §18.3);
/// a missing `Content-Length` means "the rest of the datagram".
pub fn classify(datagram: &[u8]) -> Inbound {
    // (1) keepalives: RFC 5626 §4.4.1 CRLF pings and whitespace-only datagrams.
    if datagram
        .iter()
        .all(|b| matches!(b, b'\r' | b'\n' | b' ' | b'\t'))
    {
        return Inbound::KeepAlive;
    }
    // RFC 3261 §7.5: CRLFs before the start line are ignored.
    let data = trim_leading_crlf(datagram);

    if data.starts_with(b"SIP/") {
        return classify_response(data);
    }
    let start = first_line(data);
    if !looks_like_request_line(start) {
        return Inbound::Drop {
            reason: "not a SIP message (no SIP-Version on the start line)".into(),
        };
    }
    // An ACK is never answered (RFC 3261 §17.2.1): a bad ACK is dropped.
    let is_ack = start.starts_with(b"ACK ");
    match classify_request(data) {
        Inbound::Reject { reason, .. } if is_ack => Inbound::Drop {
            reason: format!("invalid ACK: {reason}"),
        },
        other => other,
    }
}

fn trim_leading_crlf(data: &[u8]) -> &[u8] {
    let skip = data
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    data.get(skip..).unwrap_or_default()
}

fn first_line(data: &[u8]) -> &[u8] {
    let line = data.split(|&b| b == b'\n').next().unwrap_or_default();
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// A request candidate ends its first line with a `SIP/...` token; anything else
/// is garbage we do not answer (answering garbage makes us a reflector).
fn looks_like_request_line(line: &[u8]) -> bool {
    let tokens: Vec<&[u8]> = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|t| !t.is_empty())
        .collect();
    tokens.len() >= 2 && tokens.last().is_some_and(|t| starts_with_ci(t, b"SIP/"))
}

fn starts_with_ci(data: &[u8], prefix: &[u8]) -> bool {
    data.get(..prefix.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
}

/// Builds the stateless reply for a request rejected before `rsip` could parse
/// it, from the raw header lines that are valid UTF-8.
fn raw_reject(head: &[u8], status: u16, reason: impl Into<String>) -> Inbound {
    let reason = reason.into();
    let headers = lenient_headers(head);
    let reply = build_reply(
        status,
        headers.iter().map(|h| (h.name.as_str(), h.value.as_str())),
        &[],
    );
    Inbound::Reject {
        status,
        reason,
        reply,
    }
}

fn classify_request(data: &[u8]) -> Inbound {
    if data.len() > MAX_DATAGRAM {
        let head = find_head_end(data, 0).map_or(data, |(end, _)| data.get(..end).unwrap_or(data));
        return raw_reject(head, 513, format!("message of {} bytes", data.len()));
    }
    // (2) head/body split.
    let Some((head_end, body_start)) = find_head_end(data, 0) else {
        return raw_reject(data, 400, "no empty line after the header section");
    };
    let head = data.get(..head_end).unwrap_or_default();
    let rest = data.get(body_start..).unwrap_or_default();

    // (4, early) the head is text: RFC 3261 §7 says UTF-8.
    let Ok(head_str) = std::str::from_utf8(head) else {
        return raw_reject(head, 400, "header section is not valid UTF-8");
    };

    // (3) Request-Line = Method SP Request-URI SP SIP-Version (RFC 3261 §7.1).
    let raw = split_head(head_str);
    let parts: Vec<&str> = raw.start.split(' ').collect();
    let [method, uri, version] = parts.as_slice() else {
        return raw_reject(
            head,
            400,
            "Request-Line is not `Method SP Request-URI SP SIP-Version`",
        );
    };
    if method.is_empty() || uri.is_empty() || version.is_empty() {
        return raw_reject(head, 400, "empty element or extra SP in the Request-Line");
    }
    if !is_token(method) {
        return raw_reject(head, 400, "Method is not a token");
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        if starts_with_ci(version.as_bytes(), b"SIP/") {
            return raw_reject(head, 505, format!("SIP-Version {version}"));
        }
        return raw_reject(head, 400, "bad SIP-Version");
    }
    if let Err(why) = check_request_uri_syntax(uri) {
        return raw_reject(head, 400, why);
    }
    if raw.start_folded {
        return raw_reject(head, 400, "continuation line after the Request-Line");
    }

    // (4) unfold + compact forms.
    let headers = match parse_headers(&raw.lines) {
        Ok(h) => h,
        Err(why) => return raw_reject(head, 400, why),
    };

    // (5) Content-Length.
    let body = match body_by_content_length(&headers, rest) {
        Ok(b) => b,
        Err(why) => return raw_reject(head, 400, why),
    };

    // (6) method: an unknown token is well-formed but not implemented here.
    let known = method
        .parse::<rsip::Method>()
        .ok()
        .filter(|m| m.to_string() == *method);
    if known.is_none() {
        return raw_reject(head, 501, format!("method {method:?} not implemented"));
    }

    // URI scheme before rsip: rsip cannot even parse many foreign schemes
    // (`soap.beep://...`), and RFC 3261 §8.2.2.1 wants 416 for them, not 400.
    let scheme = uri.split(':').next().unwrap_or_default();
    if !is_supported_scheme(scheme) {
        return raw_reject(head, 416, format!("Request-URI scheme {scheme:?}"));
    }

    // (7) hand normalised bytes to rsip.
    let normalised = normalise(raw.start, &headers, body);
    match rsip::SipMessage::try_from(normalised.as_slice()) {
        Ok(rsip::SipMessage::Request(req)) => match validate_request(&req) {
            Ok(()) => Inbound::Request(req),
            // (8) semantic validation failed.
            Err(rej) => Inbound::Reject {
                status: rej.status,
                reply: reply_for_request(&req, &rej),
                reason: rej.reason,
            },
        },
        Ok(rsip::SipMessage::Response(_)) => Inbound::Drop {
            reason: "request turned into a response while parsing".into(),
        },
        Err(e) => raw_reject(head, 400, format!("unparseable request: {e}")),
    }
}

fn classify_response(data: &[u8]) -> Inbound {
    let drop = |reason: &str| Inbound::Drop {
        reason: format!("response dropped: {reason}"),
    };
    if data.len() > MAX_DATAGRAM {
        return drop("too large");
    }
    let Some((head_end, body_start)) = find_head_end(data, 0) else {
        return drop("no empty line after the header section");
    };
    let Some(head) = data
        .get(..head_end)
        .and_then(|h| std::str::from_utf8(h).ok())
    else {
        return drop("header section is not valid UTF-8");
    };
    let rest = data.get(body_start..).unwrap_or_default();
    let raw = split_head(head);
    // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase (RFC 3261 §7.2).
    let mut parts = raw.start.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return drop("SIP-Version is not SIP/2.0");
    }
    let code_ok = code.len() == 3
        && code.bytes().all(|b| b.is_ascii_digit())
        && code.parse::<u16>().is_ok_and(|c| (100..=699).contains(&c));
    if !code_ok || raw.start_folded {
        return drop("bad Status-Code");
    }
    let Ok(headers) = parse_headers(&raw.lines) else {
        return drop("malformed header line");
    };
    let Ok(body) = body_by_content_length(&headers, rest) else {
        return drop("bad Content-Length");
    };
    let normalised = normalise(raw.start, &headers, body);
    match rsip::SipMessage::try_from(normalised.as_slice()) {
        Ok(rsip::SipMessage::Response(resp)) => match validate_response(&resp) {
            Ok(()) => Inbound::Response(resp),
            Err(why) => drop(&why),
        },
        Ok(rsip::SipMessage::Request(_)) => drop("parsed as a request"),
        Err(e) => drop(&format!("unparseable: {e}")),
    }
}

/// Re-serialises the normalised message for `rsip`: the start line, one header
/// per line with compact names expanded, and a single `Content-Length` equal to
/// the body we decided on (rsip would otherwise read a missing one as 0).
fn normalise(start: &str, headers: &[HeaderLine], body: &[u8]) -> Vec<u8> {
    let mut out = String::with_capacity(256 + headers.len() * 64);
    out.push_str(start);
    out.push_str("\r\n");
    for h in headers.iter().filter(|h| !h.is("Content-Length")) {
        let _ = write!(out, "{}: {}\r\n", h.name, h.value);
    }
    let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

// ---------------------------------------------------------------------------
// framing helpers (shared with `framing`)
// ---------------------------------------------------------------------------

/// Finds the empty line ending the header section, tolerating bare LF line ends.
/// Returns `(head_end, body_start)`: `data[..head_end]` is the start line and
/// headers (without the last line terminator), the body begins at `body_start`.
/// `from` lets a stream framer resume the search without rescanning.
pub(crate) fn find_head_end(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while let Some(off) = data
        .get(i..)
        .and_then(|s| s.iter().position(|&b| b == b'\n'))
    {
        let lf = i + off;
        match (data.get(lf + 1), data.get(lf + 2)) {
            (Some(b'\n'), _) => return Some((lf, lf + 2)),
            (Some(b'\r'), Some(b'\n')) => return Some((lf, lf + 3)),
            _ => i = lf + 1,
        }
    }
    None
}

/// The start line and the unfolded header lines of a head.
pub(crate) struct RawHead<'a> {
    pub(crate) start: &'a str,
    pub(crate) lines: Vec<String>,
    /// A continuation line directly after the start line (never valid).
    pub(crate) start_folded: bool,
}

/// Splits a head into lines (CRLF or bare LF) and unfolds continuation lines:
/// RFC 3261 §7.3.1 says a line starting with SP/HTAB continues the previous one
/// and the folding LWS is equivalent to a single SP.
pub(crate) fn split_head(head: &str) -> RawHead<'_> {
    let mut physical = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start = physical.next().unwrap_or_default();
    let mut lines: Vec<String> = Vec::new();
    let mut start_folded = false;
    for line in physical {
        if line.starts_with([' ', '\t']) {
            match lines.last_mut() {
                Some(prev) => {
                    let keep = prev.trim_end_matches([' ', '\t']).len();
                    prev.truncate(keep);
                    prev.push(' ');
                    prev.push_str(line.trim_start_matches([' ', '\t']));
                }
                None => start_folded = true,
            }
        } else if !line.is_empty() {
            lines.push(line.to_string());
        }
    }
    RawHead {
        start,
        lines,
        start_folded,
    }
}

/// One header after unfolding, with compact names expanded to the long form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderLine {
    pub(crate) name: String,
    pub(crate) value: String,
}

impl HeaderLine {
    fn is(&self, long_name: &str) -> bool {
        self.name.eq_ignore_ascii_case(long_name)
    }
}

/// Compact header forms (RFC 3261 §7.3.3 and the IANA registry). rsip maps only
/// some of them (not `u`, `a`, `j`, `d`, `n`, `y`), so we expand all before it sees them.
pub fn expand_compact(name: &str) -> Option<&'static str> {
    let [c] = name.as_bytes() else {
        return None;
    };
    Some(match c.to_ascii_lowercase() {
        b'a' => "Accept-Contact",
        b'b' => "Referred-By",
        b'c' => "Content-Type",
        b'd' => "Request-Disposition",
        b'e' => "Content-Encoding",
        b'f' => "From",
        b'i' => "Call-ID",
        b'j' => "Reject-Contact",
        b'k' => "Supported",
        b'l' => "Content-Length",
        b'm' => "Contact",
        b'n' => "Identity-Info",
        b'o' => "Event",
        b'r' => "Refer-To",
        b's' => "Subject",
        b't' => "To",
        b'u' => "Allow-Events",
        b'v' => "Via",
        b'x' => "Session-Expires",
        b'y' => "Identity",
        _ => return None,
    })
}

fn parse_header_line(line: &str) -> Result<HeaderLine, String> {
    let Some((name, value)) = line.split_once(':') else {
        return Err("header line without a colon".into());
    };
    let name = name.trim_end_matches([' ', '\t']);
    if !is_token(name) {
        return Err("header name is not a token".into());
    }
    let name = expand_compact(name).map_or_else(|| name.to_string(), str::to_string);
    Ok(HeaderLine {
        name,
        value: value.trim_matches([' ', '\t']).to_string(),
    })
}

pub(crate) fn parse_headers(lines: &[String]) -> Result<Vec<HeaderLine>, String> {
    lines.iter().map(|l| parse_header_line(l)).collect()
}

/// Header lines that can still be read from a head we are rejecting, for the
/// reply: lines that are not UTF-8 or not `name: value` are skipped.
pub(crate) fn lenient_headers(head: &[u8]) -> Vec<HeaderLine> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    let lines = head.split(|&b| b == b'\n').skip(1);
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let text = std::str::from_utf8(line).ok();
        match (text, line.first()) {
            (Some(t), Some(b' ' | b'\t')) => {
                if let Some(c) = current.as_mut() {
                    c.push(' ');
                    c.push_str(t.trim_matches([' ', '\t']));
                }
            }
            (t, _) => {
                if let Some(c) = current.take() {
                    out.extend(parse_header_line(&c).ok());
                }
                current = t.map(str::to_string);
            }
        }
    }
    if let Some(c) = current {
        out.extend(parse_header_line(&c).ok());
    }
    out
}

/// How `Content-Length` decides the message boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ContentLength {
    Absent,
    Bytes(usize),
}

/// Reads the `Content-Length` headers: each must be 1*DIGIT and all must agree
/// (RFC 4475 §3.3.9 mcl01: conflicting values are a framing error).
pub(crate) fn content_length(headers: &[HeaderLine]) -> Result<ContentLength, String> {
    let mut found: Option<usize> = None;
    for h in headers.iter().filter(|h| h.is("Content-Length")) {
        let v = h.value.as_str();
        // More than 10 digits is absurd for any transport we run.
        if v.is_empty() || v.len() > 10 || !v.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("Content-Length {v:?} is not a number of octets"));
        }
        let n: usize = v
            .parse()
            .map_err(|_| format!("Content-Length {v:?} out of range"))?;
        match found {
            Some(prev) if prev != n => {
                return Err("multiple differing Content-Length values".into());
            }
            _ => found = Some(n),
        }
    }
    Ok(found.map_or(ContentLength::Absent, ContentLength::Bytes))
}

/// The body over UDP (RFC 3261 §18.3): `Content-Length` larger than the bytes
/// present is an error, smaller truncates (the rest is ignored), absent means
/// the rest of the datagram.
fn body_by_content_length<'a>(headers: &[HeaderLine], rest: &'a [u8]) -> Result<&'a [u8], String> {
    match content_length(headers)? {
        ContentLength::Absent => Ok(rest),
        ContentLength::Bytes(n) => rest.get(..n).ok_or_else(|| {
            format!(
                "Content-Length {n} larger than the {} body bytes present",
                rest.len()
            )
        }),
    }
}

// ---------------------------------------------------------------------------
// small grammar helpers (RFC 3261 §25.1) — character classes, not a parser
// ---------------------------------------------------------------------------

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '.' | '!' | '%' | '*' | '_' | '+' | '`' | '\'' | '~'
        )
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.chars().all(is_token_char)
}

fn is_supported_scheme(scheme: &str) -> bool {
    ["sip", "sips", "tel"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s))
}

/// Request-URI sanity (RFC 3261 §7.1/§19.1): an absoluteURI, not enclosed in
/// `<>` (RFC 4475 ltgtruri), no whitespace or control characters.
fn check_request_uri_syntax(uri: &str) -> Result<(), String> {
    if uri.starts_with('<') || uri.ends_with('>') {
        return Err("Request-URI enclosed in <>".into());
    }
    if uri.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("control character or whitespace in the Request-URI".into());
    }
    let Some((scheme, rest)) = uri.split_once(':') else {
        return Err("Request-URI has no scheme".into());
    };
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok || rest.is_empty() {
        return Err("Request-URI is not an absoluteURI".into());
    }
    Ok(())
}

/// Splits on `sep` outside quoted strings and `<...>` (URIs may contain commas
/// and semicolons).
fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    let mut angle = 0u32;
    for (i, c) in s.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            '<' => angle += 1,
            '>' => angle = angle.saturating_sub(1),
            c if c == sep && angle == 0 => {
                parts.push(s.get(start..i).unwrap_or_default());
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(s.get(start..).unwrap_or_default());
    parts
}

/// Checks that quotes balance (with `\` escapes); returns the byte index of the
/// first `<` outside a quoted string, if any.
fn scan_quotes(s: &str) -> Result<Option<usize>, &'static str> {
    let mut in_quotes = false;
    let mut escaped = false;
    let mut first_angle = None;
    for (i, c) in s.char_indices() {
        if in_quotes {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quotes = false;
            }
        } else if c == '"' {
            in_quotes = true;
        } else if c == '<' && first_angle.is_none() {
            first_angle = Some(i);
        }
    }
    if in_quotes {
        return Err("unterminated quoted string");
    }
    Ok(first_angle)
}

/// The parts of a `name-addr` / `addr-spec` header value (To, From, Contact).
#[derive(Debug)]
struct NameAddr<'a> {
    uri: &'a str,
    params: Vec<&'a str>,
}

impl<'a> NameAddr<'a> {
    fn param(&self, name: &str) -> Option<&'a str> {
        self.params.iter().find_map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim_matches([' ', '\t']))
        })
    }

    fn scheme(&self) -> &'a str {
        self.uri.split(':').next().unwrap_or_default().trim()
    }
}

/// Validates one `(name-addr / addr-spec) *(SEMI param)` value at the level RFC
/// 4475 probes: balanced quotes (quotbal), a display name that is a quoted
/// string or tokens (baddn), no LWS inside `<>` (badaspec), an addr-spec that
/// may not carry `?headers` without `<>` (regbadct), no empty parameters
/// (badinv01).
fn parse_name_addr(value: &str) -> Result<NameAddr<'_>, &'static str> {
    let value = value.trim_matches([' ', '\t']);
    let (uri, params_part) = match scan_quotes(value)? {
        Some(lt) => {
            let display = value
                .get(..lt)
                .unwrap_or_default()
                .trim_matches([' ', '\t']);
            if !display.is_empty() && !is_display_name(display) {
                return Err("display name is neither a quoted string nor tokens");
            }
            let after = value.get(lt + 1..).unwrap_or_default();
            let Some(gt) = after.find('>') else {
                return Err("missing '>'");
            };
            let uri = after.get(..gt).unwrap_or_default();
            if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err("whitespace inside <addr-spec>");
            }
            let rest = after
                .get(gt + 1..)
                .unwrap_or_default()
                .trim_matches([' ', '\t']);
            let params = match rest.strip_prefix(';') {
                Some(p) => Some(p),
                None if rest.is_empty() => None,
                None => return Err("text after '>' that is not a parameter"),
            };
            (uri, params)
        }
        None => {
            if value.contains('"') {
                return Err("quoted string without <addr-spec>");
            }
            let (uri, params) = match value.split_once(';') {
                Some((u, p)) => (u.trim_matches([' ', '\t']), Some(p)),
                None => (value, None),
            };
            if uri.contains(['?', ',']) {
                return Err("addr-spec with '?' or ',' must be enclosed in <>");
            }
            if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err("whitespace inside addr-spec");
            }
            (uri, params)
        }
    };
    if uri.is_empty() || !uri.contains(':') {
        return Err("URI without a scheme");
    }
    let mut params = Vec::new();
    if let Some(p) = params_part {
        for param in split_unquoted(p, ';') {
            let param = param.trim_matches([' ', '\t']);
            let name = param.split('=').next().unwrap_or_default();
            if !is_token(name.trim_matches([' ', '\t'])) {
                return Err("empty or malformed header parameter");
            }
            params.push(param);
        }
    }
    Ok(NameAddr { uri, params })
}

fn is_display_name(display: &str) -> bool {
    if let Some(inner) = display.strip_prefix('"') {
        // One quoted string: scan_quotes already proved the quotes balance, so the
        // closing quote must be the last character.
        return inner.ends_with('"') && split_unquoted(display, ' ').len() == 1;
    }
    display
        .split([' ', '\t'])
        .filter(|t| !t.is_empty())
        .all(is_token)
}

/// Via syntax at the level RFC 4475 badinv01 probes: every via-parm has
/// `protocol / version / transport`, a sent-by, and non-empty parameters.
fn check_via(value: &str) -> Result<(), &'static str> {
    for parm in split_unquoted(value, ',') {
        via_parm_params(parm)?;
    }
    Ok(())
}

/// Returns the parameters of one via-parm, checking its shape.
fn via_parm_params(parm: &str) -> Result<Vec<&str>, &'static str> {
    let mut pieces = split_unquoted(parm, ';').into_iter();
    let sent = pieces.next().unwrap_or_default().trim_matches([' ', '\t']);
    let mut slash = sent.splitn(3, '/');
    let name = slash.next().unwrap_or_default().trim();
    let version = slash.next().unwrap_or_default().trim();
    let rest = slash.next().unwrap_or_default().trim();
    if !is_token(name) || !is_token(version) {
        return Err("Via sent-protocol malformed");
    }
    let mut words = rest.split([' ', '\t']).filter(|w| !w.is_empty());
    let transport = words.next().unwrap_or_default();
    let host = words.next().unwrap_or_default();
    if !is_token(transport) || host.is_empty() || words.next().is_some() {
        return Err("Via sent-by malformed");
    }
    let mut params = Vec::new();
    for p in pieces {
        let p = p.trim_matches([' ', '\t']);
        let pname = p.split('=').next().unwrap_or_default().trim();
        if !is_token(pname) {
            return Err("empty or malformed Via parameter");
        }
        params.push(p);
    }
    Ok(params)
}

/// The `branch` of the top Via, if the top via-parm has one.
fn top_branch(req: &rsip::Request) -> Option<String> {
    let top = req.headers.iter().find_map(|h| match h {
        Header::Via(v) => Some(v.value().to_string()),
        _ => None,
    })?;
    let first = split_unquoted(&top, ',').into_iter().next()?.to_string();
    let params = via_parm_params(&first).ok()?;
    params.iter().find_map(|p| {
        let (n, v) = p.split_once('=')?;
        n.trim()
            .eq_ignore_ascii_case("branch")
            .then(|| v.trim().to_string())
    })
}

// ---------------------------------------------------------------------------
// validation
// ---------------------------------------------------------------------------

fn values<'a>(req: &'a rsip::Request, long_name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    req.headers
        .iter()
        .filter(move |h| h.name().eq_ignore_ascii_case(long_name))
        .map(|h| h.value())
}

fn single<'a>(req: &'a rsip::Request, long_name: &'static str) -> Result<&'a str, Rejection> {
    let mut it = values(req, long_name);
    let first = it
        .next()
        .ok_or_else(|| Rejection::bad(format!("missing {long_name}")))?;
    if it.next().is_some() {
        return Err(Rejection::bad(format!("more than one {long_name}")));
    }
    Ok(first)
}

fn comma_tokens<'a>(req: &'a rsip::Request, long_name: &'a str) -> Vec<&'a str> {
    values(req, long_name)
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .filter(|t| !t.is_empty())
        .collect()
}

/// Stateless semantic validation of a parsed request (RFC 3261 §8.2 in its
/// order, plus the RFC 4475 §3.1.2/§3.3 cases). Public so the endpoint can run
/// the same checks on requests it builds or receives from elsewhere.
///
/// The caller must never send a response to an ACK (RFC 3261 §17): a failed ACK
/// is dropped, which [`classify`] does.
pub fn validate_request(req: &rsip::Request) -> Result<(), Rejection> {
    let method = req.method.to_string();
    let is_ack_or_cancel = matches!(req.method, rsip::Method::Ack | rsip::Method::Cancel);

    // Mandatory, single-valued headers (RFC 3261 §8.1.1; RFC 4475 insuf, multi01).
    if values(req, "Via").next().is_none() {
        return Err(Rejection::bad("missing Via"));
    }
    let to = single(req, "To")?;
    let from = single(req, "From")?;
    let call_id = single(req, "Call-ID")?;
    if call_id.trim().is_empty() || call_id.contains(char::is_whitespace) {
        return Err(Rejection::bad("malformed Call-ID"));
    }
    let cseq = single(req, "CSeq")?;

    // CSeq: 32-bit number and the Request-Line method (RFC 4475 mismatch01, scalar02).
    let mut cseq_parts = cseq.split_whitespace();
    let (Some(num), Some(cseq_method), None) =
        (cseq_parts.next(), cseq_parts.next(), cseq_parts.next())
    else {
        return Err(Rejection::bad("malformed CSeq"));
    };
    if !num.bytes().all(|b| b.is_ascii_digit()) || num.parse::<u32>().is_err() {
        return Err(Rejection::bad("CSeq number is not a 32-bit value"));
    }
    if cseq_method != method {
        return Err(Rejection::bad(format!(
            "CSeq method {cseq_method} does not match {method}"
        )));
    }

    // Max-Forwards: 0..=255 (RFC 3261 §20.22; RFC 4475 scalar02). Optional (inv2543).
    let mut max_forwards = None;
    for (i, v) in values(req, "Max-Forwards").enumerate() {
        let n = (i == 0 && !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .then(|| v.parse::<u8>().ok())
            .flatten()
            .ok_or_else(|| Rejection::bad("Max-Forwards is not a single value in 0..=255"))?;
        max_forwards = Some(n);
    }
    for v in values(req, "Expires") {
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) || v.parse::<u32>().is_err() {
            return Err(Rejection::bad("Expires is not a 32-bit delta-seconds"));
        }
    }

    // Via syntax and a real transaction id (RFC 4475 badinv01, badbranch).
    for v in values(req, "Via") {
        check_via(v).map_err(Rejection::bad)?;
    }
    if top_branch(req).as_deref() == Some("z9hG4bK") {
        return Err(Rejection::bad(
            "top Via branch is the bare magic cookie (no transaction id)",
        ));
    }

    // Address headers (RFC 4475 quotbal, baddn, badaspec, regbadct).
    let to_addr = parse_name_addr(to).map_err(|e| Rejection::bad(format!("To: {e}")))?;
    parse_name_addr(from).map_err(|e| Rejection::bad(format!("From: {e}")))?;
    for contact in values(req, "Contact") {
        if contact.trim() == "*" {
            continue;
        }
        for c in split_unquoted(contact, ',') {
            parse_name_addr(c).map_err(|e| Rejection::bad(format!("Contact: {e}")))?;
        }
    }

    // Request-URI (RFC 3261 §8.2.2.1): scheme we can serve, no headers (escruri).
    let scheme_ok = match &req.uri.scheme {
        Some(rsip::Scheme::Sip | rsip::Scheme::Sips) => true,
        Some(rsip::Scheme::Other(s)) => s.eq_ignore_ascii_case("tel"),
        None => false,
    };
    if !scheme_ok {
        return Err(Rejection::new(416, "Request-URI scheme not supported"));
    }
    if !req.uri.headers.is_empty() {
        return Err(Rejection::bad("Request-URI carries ?headers"));
    }
    // A REGISTER's To is the address-of-record: a SIP or SIPS URI (RFC 3261 §10.2;
    // RFC 4475 unksm2: "a registrar would reject this request with a 400").
    if req.method == rsip::Method::Register {
        let s = to_addr.scheme();
        if !(s.eq_ignore_ascii_case("sip") || s.eq_ignore_ascii_case("sips")) {
            return Err(Rejection::bad(
                "REGISTER To is not a SIP/SIPS address-of-record",
            ));
        }
    }

    // Loop/hop limit. We never forward, but an INVITE arriving with 0 hops left
    // cannot be bridged onward by the B2BUA; OPTIONS/REGISTER are served locally
    // (RFC 4475 zeromf: an endpoint processes them).
    if max_forwards == Some(0)
        && !matches!(
            req.method,
            rsip::Method::Options | rsip::Method::Register | rsip::Method::Ack
        )
    {
        return Err(Rejection::new(483, "Max-Forwards is 0"));
    }

    // Require (RFC 3261 §8.2.2.3): we support no extensions; never for ACK/CANCEL.
    if !is_ack_or_cancel {
        let required = comma_tokens(req, "Require");
        if !required.is_empty() {
            return Err(Rejection::new(420, "unsupported Require option-tags")
                .with_header("Unsupported", required.join(", ")));
        }
    }

    // Content (RFC 3261 §8.2.3).
    let content_type = values(req, "Content-Type").next();
    if !req.body.is_empty() && content_type.is_none() {
        return Err(Rejection::bad("body without Content-Type"));
    }
    if !is_ack_or_cancel {
        let encodings = comma_tokens(req, "Content-Encoding");
        if encodings
            .iter()
            .any(|e| !e.eq_ignore_ascii_case("identity"))
        {
            return Err(Rejection::new(415, "unsupported Content-Encoding")
                .with_header("Accept-Encoding", "identity"));
        }
    }
    if req.method == rsip::Method::Invite {
        if let Some(ct) = content_type
            && !req.body.is_empty()
            && !is_sdp_content(ct, &req.body)
        {
            return Err(Rejection::new(415, "INVITE body is not SDP")
                .with_header("Accept", "application/sdp"));
        }
        // Our answer to an INVITE must carry SDP (RFC 4475 sdp01: 406, not 400).
        let accepts: Vec<&str> = comma_tokens(req, "Accept");
        if values(req, "Accept").next().is_some() && !accepts.iter().any(|a| accepts_sdp(a)) {
            return Err(
                Rejection::new(406, "Accept excludes application/sdp").with_header(
                    "Warning",
                    format!("399 {SERVER_NAME} \"Only application/sdp bodies are supported\""),
                ),
            );
        }
    }
    Ok(())
}

fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn accepts_sdp(accept: &str) -> bool {
    matches!(
        media_type(accept).as_str(),
        "application/sdp" | "application/*" | "*/*"
    )
}

/// SDP, or a multipart/mixed body with an SDP part (RFC 5621 bodies from SBCs
/// carrying SDP + ISUP).
fn is_sdp_content(content_type: &str, body: &[u8]) -> bool {
    match media_type(content_type).as_str() {
        "application/sdp" => true,
        "multipart/mixed" => String::from_utf8_lossy(body)
            .to_ascii_lowercase()
            .contains("application/sdp"),
        _ => false,
    }
}

/// Response checks that matter to a UA: the headers transaction matching needs,
/// a 32-bit CSeq (RFC 4475 scalarlg), and exactly one Via value — a UAC discards a
/// response with more than one (RFC 3261 §8.1.3.3; RFC 4475 bcast).
fn validate_response(resp: &rsip::Response) -> Result<(), String> {
    let count = |name: &str| {
        resp.headers
            .iter()
            .filter(|h| h.name().eq_ignore_ascii_case(name))
            .count()
    };
    for name in ["From", "To", "Call-ID", "CSeq"] {
        if count(name) != 1 {
            return Err(format!("needs exactly one {name}"));
        }
    }
    let vias: Vec<&str> = resp
        .headers
        .iter()
        .filter(|h| matches!(h, Header::Via(_)))
        .flat_map(|h| split_unquoted(h.value(), ','))
        .collect();
    if vias.len() != 1 {
        return Err("a UA accepts only responses with exactly one Via".into());
    }
    let cseq = resp
        .headers
        .iter()
        .find(|h| matches!(h, Header::CSeq(_)))
        .map(|h| h.value())
        .unwrap_or_default();
    let mut parts = cseq.split_whitespace();
    let ok = parts.next().is_some_and(|n| n.parse::<u32>().is_ok())
        && parts.next().is_some_and(is_token)
        && parts.next().is_none();
    if !ok {
        return Err("CSeq is not `32-bit-number method`".into());
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// replies
// ---------------------------------------------------------------------------

/// The stateless reply to `req` for `rejection`: see [`build_reply`].
pub fn reply_for_request(req: &rsip::Request, rejection: &Rejection) -> Option<Vec<u8>> {
    build_reply(
        rejection.status,
        req.headers.iter().map(|h| (h.name(), h.value())),
        &rejection.extra_headers,
    )
}

/// Builds a minimal response (RFC 3261 §8.2.6.2): status line, every Via in
/// order, From, To (with a To-tag added if absent), Call-ID, CSeq, `extra`,
/// `Server` and `Content-Length: 0`. Needs at least a Via (where to send it) and
/// a CSeq (how the client matches it); returns `None` otherwise.
///
/// The To-tag is a hash of the request's identity, so a retransmission gets the
/// same tag, as a stateless UAS must (RFC 3261 §8.2.7).
pub fn build_reply<'a>(
    status: u16,
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    extra: &[(String, String)],
) -> Option<Vec<u8>> {
    let mut vias = Vec::new();
    let (mut from, mut to, mut call_id, mut cseq) = (None, None, None, None);
    for (name, value) in headers {
        let name = expand_compact(name).unwrap_or(name);
        let slot = match name.to_ascii_lowercase().as_str() {
            "via" => {
                vias.push(value);
                continue;
            }
            "from" => &mut from,
            "to" => &mut to,
            "call-id" => &mut call_id,
            "cseq" => &mut cseq,
            _ => continue,
        };
        slot.get_or_insert(value);
    }
    let cseq = cseq?;
    if vias.is_empty() {
        return None;
    }
    let clean = |v: &str| v.replace(['\r', '\n'], " ");
    let mut out = String::with_capacity(512);
    let _ = write!(out, "SIP/2.0 {status} {}\r\n", reason_phrase(status));
    for via in &vias {
        let _ = write!(out, "Via: {}\r\n", clean(via));
    }
    if let Some(from) = from {
        let _ = write!(out, "From: {}\r\n", clean(from));
    }
    if let Some(to) = to {
        let has_tag = parse_name_addr(to)
            .map(|na| na.param("tag").is_some())
            .unwrap_or_else(|_| to.to_ascii_lowercase().contains(";tag="));
        if has_tag {
            let _ = write!(out, "To: {}\r\n", clean(to));
        } else {
            let seed = [
                call_id.unwrap_or_default(),
                from.unwrap_or_default(),
                cseq,
                vias.first().copied().unwrap_or_default(),
            ];
            let _ = write!(out, "To: {};tag={}\r\n", clean(to), stateless_tag(&seed));
        }
    }
    if let Some(call_id) = call_id {
        let _ = write!(out, "Call-ID: {}\r\n", clean(call_id));
    }
    let _ = write!(out, "CSeq: {}\r\n", clean(cseq));
    for (name, value) in extra {
        let _ = write!(out, "{}: {}\r\n", name, clean(value));
    }
    let _ = write!(out, "Server: {SERVER_NAME}\r\nContent-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

/// FNV-1a over the request identity: deterministic, so retransmissions of a
/// rejected request get the same To-tag without us keeping state.
fn stateless_tag(parts: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes().chain(std::iter::once(0)) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("td{hash:016x}")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rsip::HeadersExt as _;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    /// The RFC 4475 corpus, kept in the repository as test data (`tests/data/rfc4475`:
    /// the RFC's own messages, byte-exact, with what we answer to each).
    pub(crate) fn corpus_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/rfc4475")
    }

    fn corpus() -> BTreeMap<String, Vec<u8>> {
        let dir = corpus_dir();
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "dat") {
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                files.insert(name, std::fs::read(&path).unwrap());
            }
        }
        assert_eq!(files.len(), 49, "RFC 4475 has 49 messages");
        files
    }

    #[derive(Debug, PartialEq)]
    enum Expect {
        Accept,
        Drop,
        Status(u16),
    }

    fn expectations() -> BTreeMap<String, Expect> {
        let path = corpus_dir().join("expected.toml");
        let table: toml::Table = std::fs::read_to_string(path).unwrap().parse().unwrap();
        table
            .into_iter()
            .map(|(name, v)| {
                let e = match v.get("expect").unwrap() {
                    toml::Value::String(s) if s == "accept" => Expect::Accept,
                    toml::Value::String(s) if s == "drop" => Expect::Drop,
                    toml::Value::Integer(i) => Expect::Status(u16::try_from(*i).unwrap()),
                    other => panic!("{name}: bad expect {other:?}"),
                };
                assert!(
                    v.get("note").and_then(|n| n.as_str()).is_some(),
                    "{name}: note"
                );
                (name, e)
            })
            .collect()
    }

    /// The first raw value of `name` (long or compact) in a message.
    fn raw_header(msg: &[u8], name: &str) -> Option<String> {
        let end = find_head_end(msg, 0).map_or(msg.len(), |(e, _)| e);
        lenient_headers(&msg[..end])
            .into_iter()
            .find(|h| h.is(name))
            .map(|h| h.value)
    }

    fn parse_reply(reply: &[u8]) -> rsip::Response {
        match rsip::SipMessage::try_from(reply) {
            Ok(rsip::SipMessage::Response(r)) => r,
            other => panic!("reply does not parse as a response: {other:?}"),
        }
    }

    fn reply_header(resp: &rsip::Response, name: &str) -> Option<String> {
        resp.headers
            .iter()
            .find(|h| h.name().eq_ignore_ascii_case(name))
            .map(|h| h.value().to_string())
    }

    #[test]
    fn rfc4475_corpus_matches_expectations() {
        let files = corpus();
        let expected = expectations();
        for name in expected.keys() {
            assert!(
                files.contains_key(name),
                "expectation for missing file {name}"
            );
        }
        let mut failures = Vec::new();
        for (name, bytes) in &files {
            let Some(exp) = expected.get(name) else {
                failures.push(format!("{name}: no expectation in expected.toml"));
                continue;
            };
            let got = classify(bytes);
            let ok = match (exp, &got) {
                (Expect::Accept, Inbound::Request(_) | Inbound::Response(_)) => true,
                (Expect::Drop, Inbound::Drop { .. }) => true,
                (Expect::Status(s), Inbound::Reject { status, reply, .. }) if s == status => {
                    let reply = reply
                        .as_deref()
                        .expect("every corpus reject has Via and CSeq");
                    let resp = parse_reply(reply);
                    assert_eq!(resp.status_code.code(), *s, "{name}");
                    for h in ["Call-ID", "CSeq"] {
                        assert_eq!(raw_header(bytes, h), reply_header(&resp, h), "{name}: {h}");
                    }
                    let vias = resp.headers.iter().filter(|h| matches!(h, Header::Via(_)));
                    assert!(vias.count() >= 1, "{name}: reply has Via");
                    if let Some(to) = reply_header(&resp, "To") {
                        assert!(to.contains("tag="), "{name}: To-tag in {to}");
                    }
                    true
                }
                _ => false,
            };
            if !ok {
                failures.push(format!("{name}: expected {exp:?}, got {}", describe(&got)));
            }
        }
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    fn describe(i: &Inbound) -> String {
        match i {
            Inbound::Request(r) => format!("Request({})", r.method),
            Inbound::Response(r) => format!("Response({})", r.status_code.code()),
            Inbound::KeepAlive => "KeepAlive".into(),
            Inbound::Reject { status, reason, .. } => format!("Reject({status}: {reason})"),
            Inbound::Drop { reason } => format!("Drop({reason})"),
        }
    }

    #[test]
    fn corpus_details() {
        let files = corpus();
        // dblreq: only the REGISTER, without the INVITE that follows in the datagram.
        let Inbound::Request(r) = classify(&files["dblreq"]) else {
            panic!()
        };
        assert_eq!(r.method, rsip::Method::Register);
        assert!(r.body.is_empty());
        // inv2543: no Content-Length over UDP -> the body is the rest of the datagram.
        let Inbound::Request(r) = classify(&files["inv2543"]) else {
            panic!()
        };
        assert_eq!(r.body.len(), 105);
        // wsinv: folding and compact forms survive into rsip.
        let Inbound::Request(r) = classify(&files["wsinv"]) else {
            panic!()
        };
        let vias: Vec<_> = r
            .headers
            .iter()
            .filter(|h| matches!(h, Header::Via(_)))
            .collect();
        assert_eq!(vias.len(), 2);
        // Unfolded: each fold became one SP; the LWS inside the value is kept.
        assert_eq!(
            vias[0].value(),
            "SIP  /   2.0 /UDP 192.0.2.2;branch=390skdjuw"
        );
        assert!(r.headers.iter().any(|h| matches!(h, Header::Contact(_))));
        assert_eq!(r.body.len(), 150);
        // bext01: Unsupported lists the tags.
        let Inbound::Reject {
            reply: Some(reply), ..
        } = classify(&files["bext01"])
        else {
            panic!()
        };
        let resp = parse_reply(&reply);
        assert_eq!(
            reply_header(&resp, "Unsupported").as_deref(),
            Some("nothingSupportsThis, nothingSupportsThisEither")
        );
        // invut: Accept on the 415.
        let Inbound::Reject {
            reply: Some(reply), ..
        } = classify(&files["invut"])
        else {
            panic!()
        };
        assert_eq!(
            reply_header(&parse_reply(&reply), "Accept").as_deref(),
            Some("application/sdp")
        );
        // transports: every Via echoed, in order.
        let Inbound::Request(req) = classify(&files["transports"]) else {
            panic!()
        };
        let reply = reply_for_request(&req, &Rejection::bad("test")).unwrap();
        let text = String::from_utf8(reply).unwrap();
        let order: Vec<_> = ["t1", "t2", "t3", "t4", "t5"]
            .iter()
            .map(|h| text.find(h).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");
    }

    const INVITE: &str = "INVITE sip:9090@tongdai.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-a1\r\n\
Via: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-a0\r\n\
Max-Forwards: 70\r\n\
From: \"Nguyen Van A\" <sip:0912345678@carrier.example>;tag=abc\r\n\
To: <sip:9090@tongdai.example>\r\n\
Call-ID: inv-1@192.0.2.1\r\n\
CSeq: 10 INVITE\r\n\
Contact: <sip:0912345678@192.0.2.1:5060>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 23\r\n\
\r\n\
v=0\r\no=- 1 1 IN IP4 x\r\n";

    fn request(bytes: &[u8]) -> rsip::Request {
        match classify(bytes) {
            Inbound::Request(r) => r,
            other => panic!("expected a request, got {}", describe(&other)),
        }
    }

    fn reject(bytes: &[u8]) -> (u16, rsip::Response) {
        match classify(bytes) {
            Inbound::Reject {
                status,
                reply: Some(reply),
                ..
            } => (status, parse_reply(&reply)),
            other => panic!("expected a reject with reply, got {}", describe(&other)),
        }
    }

    #[test]
    fn valid_invite_is_a_request() {
        let r = request(INVITE.as_bytes());
        assert_eq!(r.method, rsip::Method::Invite);
        assert_eq!(r.body, b"v=0\r\no=- 1 1 IN IP4 x\r\n");
    }

    #[test]
    fn keepalives() {
        for k in [&b""[..], b"\r\n", b"\r\n\r\n", b"\n", b" \t \r\n"] {
            assert_eq!(classify(k), Inbound::KeepAlive, "{k:?}");
        }
        // CRLFs before the start line are ignored (RFC 3261 §7.5).
        let mut m = b"\r\n\r\n".to_vec();
        m.extend_from_slice(INVITE.as_bytes());
        request(&m);
    }

    #[test]
    fn compact_headers_are_expanded() {
        let m = "OPTIONS sip:9090@tongdai.example SIP/2.0\r\n\
v: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-c\r\n\
f: <sip:a@example.com>;tag=1\r\n\
T: <sip:9090@tongdai.example>\r\n\
i: compact-1\r\n\
CSeq: 1 OPTIONS\r\n\
m: <sip:a@192.0.2.1>\r\n\
u: dialog\r\n\
k: timer\r\n\
l: 0\r\n\r\n";
        let r = request(m.as_bytes());
        assert_eq!(r.call_id_header().unwrap().value(), "compact-1");
        assert_eq!(
            r.from_header().unwrap().value(),
            "<sip:a@example.com>;tag=1"
        );
        assert_eq!(r.to_header().unwrap().value(), "<sip:9090@tongdai.example>");
        assert_eq!(
            r.via_header().unwrap().value(),
            "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-c"
        );
        assert!(r.contact_header().is_ok());
        // `u` is not mapped by rsip: it must arrive as Allow-Events, not as "u".
        assert!(r.headers.iter().any(|h| h.name() == "Allow-Events"));
    }

    #[test]
    fn folded_headers_are_unfolded() {
        let m = INVITE.replace(
            "Call-ID: inv-1@192.0.2.1\r\n",
            "Call-ID:\r\n   inv-1@192.0.2.1\r\nSubject: hello\r\n\t world\r\n",
        );
        let r = request(m.as_bytes());
        assert_eq!(r.call_id_header().unwrap().value(), "inv-1@192.0.2.1");
        let subject = r.headers.iter().find(|h| h.name() == "Subject").unwrap();
        assert_eq!(subject.value(), "hello world");
    }

    #[test]
    fn bare_lf_line_ends_are_tolerated() {
        let m = INVITE
            .replace("\r\n", "\n")
            .replace("Content-Length: 23", "Content-Length: 21");
        let r = request(m.as_bytes());
        assert_eq!(r.body, b"v=0\no=- 1 1 IN IP4 x\n");
    }

    #[test]
    fn non_utf8_in_a_header_is_400_with_a_reply() {
        let mut m = INVITE
            .replace(
                "Max-Forwards: 70\r\n",
                "Subject: \u{1}X\r\nMax-Forwards: 70\r\n",
            )
            .into_bytes();
        let at = m.windows(2).position(|w| w == b"\x01X").unwrap();
        m[at] = 0xff;
        let (status, resp) = reject(&m);
        assert_eq!(status, 400);
        assert_eq!(
            reply_header(&resp, "Call-ID").as_deref(),
            Some("inv-1@192.0.2.1")
        );
        assert_eq!(reply_header(&resp, "CSeq").as_deref(), Some("10 INVITE"));
    }

    #[test]
    fn non_utf8_body_is_fine() {
        let m = "MESSAGE sip:9090@tongdai.example SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK-b\r\n\
From: <sip:a@example.com>;tag=1\r\nTo: <sip:9090@tongdai.example>\r\n\
Call-ID: bin-1\r\nCSeq: 1 MESSAGE\r\nContent-Type: application/octet-stream\r\n\
Content-Length: 4\r\n\r\n";
        let mut bytes = m.as_bytes().to_vec();
        bytes.extend_from_slice(&[0xff, 0x00, 0xfe, 0x80]);
        assert_eq!(request(&bytes).body, vec![0xff, 0x00, 0xfe, 0x80]);
    }

    #[test]
    fn content_length_short_long_missing() {
        // Shorter: truncated, rest ignored (RFC 3261 §18.3).
        let short = INVITE.replace("Content-Length: 23", "Content-Length: 4");
        assert_eq!(request(short.as_bytes()).body, b"v=0\r");
        // Longer than the datagram: 400.
        let long = INVITE.replace("Content-Length: 23", "Content-Length: 24");
        assert_eq!(reject(long.as_bytes()).0, 400);
        // Missing over UDP: the rest of the datagram.
        let missing = INVITE.replace("Content-Length: 23\r\n", "");
        assert_eq!(request(missing.as_bytes()).body.len(), 23);
        for bad in ["-1", "abc", "99999999999999999999", "1 2", ""] {
            let m = INVITE.replace("Content-Length: 23", &format!("Content-Length: {bad}"));
            assert_eq!(reject(m.as_bytes()).0, 400, "{bad:?}");
        }
        // Duplicates that agree are fine; that disagree are not.
        let dup = INVITE.replace("Content-Length: 23", "Content-Length: 23\r\nl: 23");
        request(dup.as_bytes());
        let dup = INVITE.replace("Content-Length: 23", "Content-Length: 23\r\nl: 22");
        assert_eq!(reject(dup.as_bytes()).0, 400);
    }

    #[test]
    fn two_requests_in_one_datagram_keeps_the_first() {
        let first = INVITE.replace(
            "Content-Length: 23\r\n\r\nv=0\r\no=- 1 1 IN IP4 x\r\n",
            "Content-Length: 0\r\n\r\n",
        );
        let first = first.replace("Content-Type: application/sdp\r\n", "");
        let both = format!("{first}{INVITE}");
        let r = request(both.as_bytes());
        assert!(r.body.is_empty());
    }

    #[test]
    fn unknown_and_lowercase_methods_get_501() {
        let m = INVITE
            .replace("INVITE sip", "FROBNICATE sip")
            .replace("10 INVITE", "10 FROBNICATE");
        let (status, resp) = reject(m.as_bytes());
        assert_eq!(status, 501);
        assert_eq!(
            reply_header(&resp, "CSeq").as_deref(),
            Some("10 FROBNICATE")
        );
        // Methods are case-sensitive (RFC 3261 §7.1): rsip would read "invite" as INVITE.
        let m = INVITE
            .replace("INVITE sip", "invite sip")
            .replace("10 INVITE", "10 invite");
        assert_eq!(reject(m.as_bytes()).0, 501);
    }

    #[test]
    fn reply_shape() {
        let m = INVITE
            .replace("Require", "X")
            .replace("CSeq: 10 INVITE", "CSeq: 10 INVITE\r\nRequire: 100rel");
        let Inbound::Reject {
            status: 420,
            reply: Some(reply),
            ..
        } = classify(m.as_bytes())
        else {
            panic!()
        };
        let text = String::from_utf8(reply.clone()).unwrap();
        assert!(text.starts_with("SIP/2.0 420 Bad Extension\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-a1\r\nVia: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-a0\r\n"), "{text}");
        assert!(text.contains("\r\nServer: tongdai\r\n"));
        assert!(text.ends_with("Content-Length: 0\r\n\r\n"));
        assert!(text.contains("Unsupported: 100rel\r\n"));
        // Deterministic To-tag: a retransmission gets the same reply.
        let Inbound::Reject {
            reply: Some(again), ..
        } = classify(m.as_bytes())
        else {
            panic!()
        };
        assert_eq!(reply, again);
        // An existing To-tag is kept, not doubled.
        let m = m.replace(
            "To: <sip:9090@tongdai.example>",
            "To: <sip:9090@tongdai.example>;tag=xyz",
        );
        let (_, resp) = reject(m.as_bytes());
        assert_eq!(
            reply_header(&resp, "To").as_deref(),
            Some("<sip:9090@tongdai.example>;tag=xyz")
        );
    }

    #[test]
    fn no_via_or_no_cseq_means_no_reply() {
        let m = INVITE.replace("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-a1\r\nVia: SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK-a0\r\n", "");
        assert!(matches!(
            classify(m.as_bytes()),
            Inbound::Reject {
                status: 400,
                reply: None,
                ..
            }
        ));
        let m = INVITE.replace("CSeq: 10 INVITE\r\n", "");
        assert!(matches!(
            classify(m.as_bytes()),
            Inbound::Reject {
                status: 400,
                reply: None,
                ..
            }
        ));
    }

    #[test]
    fn bad_ack_is_dropped_not_answered() {
        // CSeq method INVITE on an ACK: a mismatch, but an ACK is never answered.
        let m = INVITE.replace("INVITE sip", "ACK sip");
        assert!(matches!(classify(m.as_bytes()), Inbound::Drop { .. }));
        let ok = INVITE
            .replace("INVITE sip", "ACK sip")
            .replace("10 INVITE", "10 ACK");
        assert_eq!(request(ok.as_bytes()).method, rsip::Method::Ack);
    }

    #[test]
    fn validation_rules() {
        let base = request(INVITE.as_bytes());
        let with = |from: &str, to: &str| {
            let m = INVITE.replace(from, to);
            validate_request(&request_unvalidated(&m))
        };
        assert_eq!(validate_request(&base), Ok(()));
        assert_eq!(
            with("Max-Forwards: 70", "Max-Forwards: 0")
                .unwrap_err()
                .status,
            483
        );
        assert_eq!(
            with("Max-Forwards: 70", "Max-Forwards: 256")
                .unwrap_err()
                .status,
            400
        );
        assert_eq!(
            with(
                "Content-Type: application/sdp",
                "Content-Type: application/sdp\r\nContent-Encoding: gzip"
            )
            .unwrap_err()
            .extra_headers,
            vec![("Accept-Encoding".to_string(), "identity".to_string())]
        );
        assert_eq!(
            with("Content-Type: application/sdp", "Content-Type: text/plain")
                .unwrap_err()
                .status,
            415
        );
        assert_eq!(
            with(
                "Content-Type: application/sdp",
                "Content-Type: multipart/mixed;boundary=x"
            )
            .unwrap_err()
            .status,
            415
        );
        assert_eq!(
            with("Call-ID: inv-1@192.0.2.1\r\n", "").unwrap_err().status,
            400
        );
        assert_eq!(with("sip:9090@tongdai.example SIP", "tel:9090 SIP"), Ok(()));
        // Require is never a reason to reject CANCEL.
        let cancel = INVITE
            .replace("INVITE sip", "CANCEL sip")
            .replace("10 INVITE", "10 CANCEL\r\nRequire: foo")
            .replace("Content-Type: application/sdp\r\nContent-Length: 23\r\n\r\nv=0\r\no=- 1 1 IN IP4 x\r\n", "Content-Length: 0\r\n\r\n");
        assert_eq!(validate_request(&request_unvalidated(&cancel)), Ok(()));
    }

    /// Parses with rsip after edge normalisation but without validation.
    fn request_unvalidated(m: &str) -> rsip::Request {
        rsip::Request::try_from(m).unwrap()
    }

    #[test]
    fn garbage_is_dropped() {
        for g in [
            &b"hello world"[..],
            b"\x00\x01\x02",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            b"SIP/2.0",
            b"\xff\xfe\r\n\r\n",
        ] {
            assert!(matches!(classify(g), Inbound::Drop { .. }), "{g:?}");
        }
    }

    #[test]
    fn every_prefix_of_an_invite_is_safe_and_incomplete() {
        let full = INVITE.as_bytes();
        for n in 0..full.len() {
            match classify(&full[..n]) {
                Inbound::Request(_) => panic!("prefix of {n} bytes became a request"),
                Inbound::Reject { status, .. } => assert_eq!(status, 400),
                _ => {}
            }
        }
        request(full);
    }

    #[test]
    fn oversized_input() {
        let mut m = INVITE
            .replace(
                "Content-Length: 23",
                &format!("Content-Length: {}", MAX_DATAGRAM),
            )
            .into_bytes();
        m.truncate(m.len() - 23);
        m.resize(m.len() + MAX_DATAGRAM, b'a');
        let (status, _) = reject(&m);
        assert_eq!(status, 513);
        let mut garbage = vec![b'x'; MAX_DATAGRAM * 2];
        garbage[10] = b'\n';
        assert!(matches!(classify(&garbage), Inbound::Drop { .. }));
    }

    /// Deterministic mutation fuzzing from the torture corpus: no input may
    /// panic, every reply must be a parseable response, every Request must
    /// re-validate, and bytes without a SIP-Version are never answered.
    #[test]
    fn mutated_corpus_never_panics() {
        let mut seed: u64 = 0x4475_9090_dead_beef;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let files: Vec<Vec<u8>> = corpus()
            .into_values()
            .chain([INVITE.as_bytes().to_vec()])
            .collect();
        let specials = b"\r\n \t:;,<>\"\\%@=?\x00\xff\xc3";
        let mut cases = 0;
        for round in 0..250 {
            for (i, original) in files.iter().enumerate() {
                let mut m = original.clone();
                let edits = (next() % 6) + 1;
                for _ in 0..edits {
                    let len = m.len().max(1);
                    let at = (next() as usize) % len;
                    match next() % 7 {
                        0 => {
                            if at < m.len() {
                                m[at] = next() as u8;
                            }
                        }
                        1 => m.insert(
                            at.min(m.len()),
                            specials[(next() as usize) % specials.len()],
                        ),
                        2 => {
                            if at < m.len() {
                                m.remove(at);
                            }
                        }
                        3 => m.truncate(at),
                        4 => {
                            let other = &files[(next() as usize) % files.len()];
                            let from = (next() as usize) % other.len().max(1);
                            let to = (from + (next() as usize) % 200).min(other.len());
                            let tail = m.split_off(at.min(m.len()));
                            m.extend_from_slice(&other[from..to]);
                            m.extend_from_slice(&tail);
                        }
                        5 => {
                            if at < m.len() {
                                m[at] = m[at].to_ascii_lowercase();
                            }
                        }
                        _ => {
                            let end = (at + (next() as usize) % 40).min(m.len());
                            let chunk = m[at.min(end)..end].to_vec();
                            m.splice(at.min(m.len())..at.min(m.len()), chunk);
                        }
                    }
                }
                cases += 1;
                check_invariants(&m, &format!("round {round} file {i}"));
            }
        }
        // Pure random bytes.
        for _ in 0..2000 {
            let len = (next() % 300) as usize;
            let m: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            cases += 1;
            check_invariants(&m, "random");
            if !m.windows(4).any(|w| w.eq_ignore_ascii_case(b"SIP/")) {
                assert!(
                    !matches!(classify(&m), Inbound::Reject { .. }),
                    "garbage answered: {m:?}"
                );
            }
        }
        assert!(cases > 10_000);
    }

    fn check_invariants(m: &[u8], what: &str) {
        match classify(m) {
            Inbound::Reject {
                reply: Some(reply),
                status,
                ..
            } => {
                let resp = parse_reply(&reply);
                assert_eq!(resp.status_code.code(), status, "{what}");
            }
            Inbound::Request(r) => {
                assert_eq!(validate_request(&r), Ok(()), "{what}");
            }
            _ => {}
        }
    }
}
