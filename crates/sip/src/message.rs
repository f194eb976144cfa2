//! Building responses and in-dialog requests on top of rsip's message model.
//!
//! Header values are copied verbatim from the request (Via, From, To, Call-ID, CSeq,
//! Record-Route) as RFC 3261 §8.2.6.2 requires; we never re-render what a peer sent.

use std::net::SocketAddr;

use rsipstack::sip as rsip;
use rsipstack::sip::{HasHeaders, Header};

/// Methods this user agent implements, for `Allow`.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY";

/// The value of the first header called `name` (case-insensitive, long form).
pub fn header<'a>(msg: &'a impl HasHeaders, name: &str) -> Option<&'a str> {
    msg.headers()
        .iter()
        .find(|h| h.name().eq_ignore_ascii_case(name))
        .map(|h| h.value())
}

/// Values of every header called `name`, in message order.
pub fn headers<'a>(msg: &'a impl HasHeaders, name: &str) -> Vec<&'a str> {
    msg.headers()
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(name))
        .map(|h| h.value())
        .collect()
}

/// A `;name=value` parameter of a header value (outside `<...>` and quotes).
pub fn header_param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let mut depth_angle = false;
    let mut quoted = false;
    let mut start = None;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => depth_angle = true,
            '>' if !quoted => depth_angle = false,
            ';' if !quoted && !depth_angle => {
                start = Some(i);
                break;
            }
            _ => {}
        }
    }
    let params = &value[start? + 1..];
    params.split(';').find_map(|p| {
        let (k, v) = match p.split_once('=') {
            Some((k, v)) => (k.trim(), v.trim()),
            None => (p.trim(), ""),
        };
        k.eq_ignore_ascii_case(name).then_some(v)
    })
}

/// The `tag` parameter of a From/To value.
pub fn tag_of(value: &str) -> Option<&str> {
    header_param(value, "tag").filter(|t| !t.is_empty())
}

/// The URI inside a name-addr (`"Bob" <sip:bob@x>;tag=1` → `sip:bob@x`) or an addr-spec.
pub fn uri_of(value: &str) -> &str {
    if let (Some(a), Some(b)) = (value.find('<'), value.rfind('>'))
        && a < b
    {
        return value[a + 1..b].trim();
    }
    value.split(';').next().unwrap_or(value).trim()
}

/// The user part of a SIP/tel URI (`sip:0903123678@host;user=phone` → `0903123678`).
pub fn user_of(uri: &str) -> Option<&str> {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
        .or_else(|| uri.strip_prefix("tel:"))
        .or_else(|| uri.strip_prefix("SIP:"))?;
    let end = rest.find(['@', ';', '?']).unwrap_or(rest.len());
    let user = &rest[..end];
    if uri.starts_with("tel:") || rest[end..].starts_with('@') {
        let user = user.split(':').next().unwrap_or(user);
        (!user.is_empty()).then_some(user)
    } else {
        None
    }
}

/// CSeq number and method token.
pub fn cseq(msg: &impl HasHeaders) -> Option<(u32, String)> {
    let v = header(msg, "CSeq")?;
    let mut it = v.split_whitespace();
    let n = it.next()?.parse().ok()?;
    let m = it.next()?.to_ascii_uppercase();
    Some((n, m))
}

/// A fresh random token for tags and branches.
pub fn random_token(len: usize) -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A response to `req` with the mandatory headers copied from it (RFC 3261 §8.2.6).
/// `to_tag` is added to To when the request's To has none (every response but 100).
/// Record-Route is copied into 18x/2xx of dialog-creating requests (`copy_record_route`),
/// so that ACK and BYE find their way back through a proxy.
pub fn response(
    req: &rsip::Request,
    status: u16,
    to_tag: Option<&str>,
    copy_record_route: bool,
    extra: Vec<Header>,
    body: Option<(&str, Vec<u8>)>,
    user_agent: &str,
) -> rsip::Response {
    let mut hs = rsip::Headers::default();
    for h in req.headers().iter() {
        match h {
            Header::Via(_) | Header::From(_) | Header::CallId(_) | Header::CSeq(_) => {
                hs.push(h.clone())
            }
            Header::To(to) => {
                let value = to.value();
                match to_tag {
                    Some(tag) if tag_of(value).is_none() && status != 100 => {
                        hs.push(Header::To(format!("{value};tag={tag}").into()))
                    }
                    _ => hs.push(h.clone()),
                }
            }
            Header::RecordRoute(_) if copy_record_route && (101..300).contains(&status) => {
                hs.push(h.clone())
            }
            Header::Timestamp(_) if status == 100 => hs.push(h.clone()),
            _ => {}
        }
    }
    hs.push(Header::Server(user_agent.to_string().into()));
    for h in extra {
        hs.push(h);
    }
    let body = match body {
        Some((content_type, bytes)) => {
            hs.push(Header::ContentType(content_type.to_string().into()));
            bytes
        }
        None => Vec::new(),
    };
    hs.push(Header::ContentLength(body.len().to_string().into()));
    rsip::Response {
        status_code: rsip::StatusCode::from(status),
        wire_reason: None,
        version: rsip::Version::V2,
        headers: hs,
        body,
    }
}

/// A header of any name (`Header::Other`), for the ones rsip has no variant for.
pub fn other(name: &str, value: impl Into<String>) -> Header {
    Header::Other(name.to_string(), value.into())
}

/// An address's host as written in a URI or a Via (an IPv6 address in brackets).
pub fn host_string(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
    }
}

/// `sip:user@1.2.3.4:5070;transport=udp` → 1.2.3.4:5070 (default port 5060); `None`
/// for a host name, which would need a resolver.
pub fn ip_literal_addr(uri: &str) -> Option<SocketAddr> {
    let parsed = rsip::Uri::try_from(uri).ok()?;
    let ip = match parsed.host_with_port.host {
        rsip::Host::IpAddr(ip) => ip,
        rsip::Host::Domain(_) => return None,
    };
    let port = parsed.host_with_port.port.map(u16::from).unwrap_or(5060);
    Some(SocketAddr::new(ip, port))
}

/// Splits a comma-separated header list (Record-Route, Contact), respecting `<...>` and
/// quotes.
pub fn split_header_list(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut angle, mut quoted, mut start) = (false, false, 0);
    for (i, c) in v.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(v[start..i].trim().to_string());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = v[start..].trim();
    if !last.is_empty() {
        out.push(last.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:9090@127.0.0.1:5060 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-1;rport\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-0\r\n\
Record-Route: <sip:127.0.0.9;lr>\r\n\
From: \"Sub\" <sip:0903123678@127.0.0.1:5061>;tag=abc\r\n\
To: <sip:9090@127.0.0.1:5060>\r\n\
Call-ID: c1@x\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:0903123678@127.0.0.1:5061>\r\n\
Max-Forwards: 70\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn response_copies_mandatory_headers_and_adds_tag() {
        let req = rsip::Request::try_from(INVITE).unwrap();
        let resp = response(&req, 180, Some("t1"), true, vec![], None, "tongdai");
        let text = String::from_utf8(resp.to_bytes()).unwrap();
        assert!(text.starts_with("SIP/2.0 180 Ringing\r\n"), "{text}");
        let via_a = text.find("z9hG4bK-1").unwrap();
        let via_b = text.find("z9hG4bK-0").unwrap();
        assert!(via_a < via_b, "Via order kept");
        assert!(text.contains("To: <sip:9090@127.0.0.1:5060>;tag=t1"));
        assert!(text.contains("Record-Route: <sip:127.0.0.9;lr>"));
        assert!(text.contains("Content-Length: 0"));
        let trying = response(&req, 100, Some("t1"), true, vec![], None, "tongdai");
        let text = String::from_utf8(trying.to_bytes()).unwrap();
        assert!(!text.contains("tag=t1") && !text.contains("Record-Route"));
    }

    #[test]
    fn uri_helpers() {
        assert_eq!(tag_of("\"Sub\" <sip:1@x;foo=bar>;tag=abc"), Some("abc"));
        assert_eq!(tag_of("<sip:1@x;tag=inside>"), None);
        assert_eq!(uri_of("\"A\" <sip:0903@h:5060>;tag=1"), "sip:0903@h:5060");
        assert_eq!(uri_of("sip:0903@h;tag=1"), "sip:0903@h");
        assert_eq!(user_of("sip:0903123678@h;user=phone"), Some("0903123678"));
        assert_eq!(user_of("tel:+84903123678"), Some("+84903123678"));
        assert_eq!(user_of("sip:host.example"), None);
        assert_eq!(user_of("sip:u:pw@h"), Some("u"));
    }
}
