//! Digest authentication as a client (RFC 3261 §22 with RFC 8760 / RFC 7616): answering
//! a trunk's `401 WWW-Authenticate` or `407 Proxy-Authenticate` challenge to our INVITE
//! or REGISTER.
//!
//! What is reused and what is ours: rsip's [`AuthTokenizer`] splits the header into
//! its scheme and `name=value` parameters (quoted strings included). Its typed
//! `WwwAuthenticate` is not used because it rejects real challenges: it only knows the
//! token `SHA256` (RFC 8760 spells it `SHA-256`) and fails on `qop="auth,auth-int"`.
//! Its `DigestGenerator` is not used for hashing because it takes rsip's closed
//! `Method`/`Uri` types (so the RFC 7616 worked example, an HTTP `GET`, cannot be checked
//! against it), counts `nc` in a `u8` and gets `-sess` wrong; hashing here is ten lines
//! over the same `md-5`/`sha2` crates, and a test checks both agree on SIP requests.
//!
//! Supported: algorithms MD5 and SHA-256, `qop=auth` (or no qop, RFC 2069 style),
//! `opaque`, `stale=true`. Not supported (the challenge is skipped, as RFC 8760 says
//! for an unknown algorithm): the `-sess` variants, SHA-512-256, `qop=auth-int` alone.

use rsipstack::sip as rsip;
use rsipstack::sip::typed::tokenizers::AuthTokenizer;

use super::message;

/// Who we are to the trunk. `realm`, when set, restricts which challenges we answer:
/// credentials are never sent to a realm they were not configured for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub realm: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Md5,
    Sha256,
}

impl Algorithm {
    /// The RFC 8760 token.
    pub fn token(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn parse(token: &str) -> Option<Algorithm> {
        let t = token.trim();
        if t.eq_ignore_ascii_case("MD5") {
            Some(Algorithm::Md5)
        } else if t.eq_ignore_ascii_case("SHA-256") || t.eq_ignore_ascii_case("SHA256") {
            Some(Algorithm::Sha256)
        } else {
            None
        }
    }

    fn hash(self, data: &str) -> String {
        use sha2::Digest as _;
        let bytes: Vec<u8> = match self {
            Algorithm::Md5 => md5::Md5::digest(data.as_bytes()).to_vec(),
            Algorithm::Sha256 => sha2::Sha256::digest(data.as_bytes()).to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// One parsed, supported challenge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// `Proxy-Authenticate` (407): answer with `Proxy-Authorization`.
    pub proxy: bool,
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// The server offered `qop=auth`: we answer with it (cnonce + nc).
    pub qop_auth: bool,
    /// `stale=true`: our credentials were right, only the nonce was old (RFC 7616
    /// §3.3), so a retry with the new nonce does not count as a second failure.
    pub stale: bool,
}

impl Challenge {
    /// Parses one `WWW-Authenticate` / `Proxy-Authenticate` value; `None` for anything we
    /// cannot answer (another scheme, an unknown algorithm, only `auth-int`, no nonce).
    pub fn parse(value: &str, proxy: bool) -> Option<Challenge> {
        let tok = AuthTokenizer::parse(value).ok()?;
        if !tok.scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let param = |name: &str| {
            tok.params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim())
        };
        let algorithm = match param("algorithm") {
            None => Algorithm::Md5,
            Some(a) => Algorithm::parse(a)?,
        };
        let qop_auth = match param("qop") {
            None => false,
            Some(list) => {
                if !list
                    .split(',')
                    .any(|q| q.trim().eq_ignore_ascii_case("auth"))
                {
                    return None;
                }
                true
            }
        };
        Some(Challenge {
            proxy,
            realm: param("realm")?.to_string(),
            nonce: param("nonce").filter(|n| !n.is_empty())?.to_string(),
            opaque: param("opaque").map(str::to_string),
            algorithm,
            qop_auth,
            stale: param("stale").is_some_and(|s| s.eq_ignore_ascii_case("true")),
        })
    }

    /// The header name of our answer.
    pub fn answer_header(&self) -> &'static str {
        if self.proxy {
            "Proxy-Authorization"
        } else {
            "Authorization"
        }
    }
}

/// The challenge of a 401/407 we should answer: per RFC 8760 §2.4 the topmost one we
/// support, among those whose realm matches the configured one (if any).
pub fn pick_challenge(resp: &rsip::Response, creds: &Credentials) -> Option<Challenge> {
    let (name, proxy) = match resp.status_code.code() {
        407 => ("Proxy-Authenticate", true),
        _ => ("WWW-Authenticate", false),
    };
    message::headers(resp, name)
        .into_iter()
        .filter_map(|v| Challenge::parse(v, proxy))
        .find(|c| creds.realm.as_deref().is_none_or(|r| r == c.realm))
}

/// The digest `response` value (RFC 7616 §3.4.1); `qop` is `(nc, cnonce)` for
/// `qop=auth`, `None` for the RFC 2069 form. (The parameters are the formula's own
/// inputs, named as in the RFC; a struct would only rename them.)
#[allow(clippy::too_many_arguments)]
pub fn digest_response(
    algorithm: Algorithm,
    username: &str,
    realm: &str,
    password: &str,
    method: &str,
    uri: &str,
    nonce: &str,
    qop: Option<(u32, &str)>,
) -> String {
    let ha1 = algorithm.hash(&format!("{username}:{realm}:{password}"));
    let ha2 = algorithm.hash(&format!("{method}:{uri}"));
    match qop {
        Some((nc, cnonce)) => {
            algorithm.hash(&format!("{ha1}:{nonce}:{nc:08x}:{cnonce}:auth:{ha2}"))
        }
        None => algorithm.hash(&format!("{ha1}:{nonce}:{ha2}")),
    }
}

/// The `Authorization` / `Proxy-Authorization` value answering `challenge` for a request
/// `method uri`. `nc` counts the requests made with this nonce (1 for the first).
pub fn authorization(
    challenge: &Challenge,
    creds: &Credentials,
    method: &str,
    uri: &str,
    cnonce: &str,
    nc: u32,
) -> String {
    let qop = challenge.qop_auth.then_some((nc, cnonce));
    let response = digest_response(
        challenge.algorithm,
        &creds.username,
        &challenge.realm,
        &creds.password,
        method,
        uri,
        &challenge.nonce,
        qop,
    );
    let mut v = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{uri}\", \
response=\"{response}\", algorithm={}",
        creds.username,
        challenge.realm,
        challenge.nonce,
        challenge.algorithm.token()
    );
    if let Some(opaque) = &challenge.opaque {
        v.push_str(&format!(", opaque=\"{opaque}\""));
    }
    if challenge.qop_auth {
        v.push_str(&format!(", qop=auth, nc={nc:08x}, cnonce=\"{cnonce}\""));
    }
    v
}

/// Remembers the challenges answered for one request stream (one call's INVITEs, or one
/// registration's REGISTERs) and enforces "at most one retry per challenge": a second
/// rejection of the same credentials is final, unless the server says `stale=true`.
#[derive(Clone, Debug, Default)]
pub struct AuthSession {
    /// The challenge we last answered, and how many requests used its nonce.
    current: Option<(Challenge, u32)>,
    /// Retries made because of a challenge that was not stale.
    plain_retries: u32,
    /// Retries made because of `stale=true` (bounded, so a broken server cannot loop us).
    stale_retries: u32,
}

/// How many `stale=true` retries in a row we accept before giving up.
const MAX_STALE_RETRIES: u32 = 2;

impl AuthSession {
    /// A 401/407 arrived. Returns the header (name, value-builder input) to retry with,
    /// or `None` when we must give up (no credentials, nothing we support, or this is
    /// the second non-stale challenge).
    pub fn on_challenge(
        &mut self,
        resp: &rsip::Response,
        creds: Option<&Credentials>,
    ) -> Option<Challenge> {
        let creds = creds?;
        let challenge = pick_challenge(resp, creds)?;
        if challenge.stale && self.current.is_some() {
            if self.stale_retries >= MAX_STALE_RETRIES {
                return None;
            }
            self.stale_retries += 1;
        } else {
            if self.plain_retries >= 1 {
                return None;
            }
            self.plain_retries += 1;
        }
        self.current = Some((challenge.clone(), 0));
        Some(challenge)
    }

    /// A request was accepted: the next challenge may be retried once again (a
    /// registration refresh hours later starts afresh).
    pub fn on_success(&mut self) {
        self.plain_retries = 0;
        self.stale_retries = 0;
    }

    /// The header to put on the next request, if we hold a challenge (the retry, and
    /// REGISTER refreshes that reuse the nonce with an incremented `nc`).
    pub fn header_for(
        &mut self,
        creds: Option<&Credentials>,
        method: &str,
        uri: &str,
    ) -> Option<(&'static str, String)> {
        let creds = creds?;
        let (challenge, uses) = self.current.as_mut()?;
        *uses += 1;
        let cnonce = message::random_token(16);
        Some((
            challenge.answer_header(),
            authorization(challenge, creds, method, uri, &cnonce, *uses),
        ))
    }

    /// Forget the nonce (a new dialog or registration Call-ID).
    pub fn reset(&mut self) {
        *self = AuthSession::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2617 §3.5 worked example (MD5, qop=auth).
    #[test]
    fn rfc2617_worked_example() {
        let r = digest_response(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
            "GET",
            "/dir/index.html",
            "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            Some((1, "0a4f113b")),
        );
        assert_eq!(r, "6629fae49393a05397450978507c4ef1");
    }

    /// RFC 7616 §3.9.1 worked example, both algorithms.
    #[test]
    fn rfc7616_worked_example_md5_and_sha256() {
        let args = |alg| {
            digest_response(
                alg,
                "Mufasa",
                "http-auth@example.org",
                "Circle of Life",
                "GET",
                "/dir/index.html",
                "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
                Some((1, "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ")),
            )
        };
        assert_eq!(args(Algorithm::Md5), "8ca523f5e9506fed4657c9700eebdbec");
        assert_eq!(
            args(Algorithm::Sha256),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    /// Our hashing agrees with rsipstack's `DigestGenerator` on SIP requests.
    #[test]
    fn agrees_with_rsipstack_digest_generator() {
        use rsipstack::sip::headers::auth::{Algorithm as RAlg, AuthQop};
        let uri = rsip::Uri::try_from("sip:0903123678@trunk.example:5060").unwrap();
        let uri_text = uri.to_string();
        for (ours, theirs) in [
            (Algorithm::Md5, RAlg::Md5),
            (Algorithm::Sha256, RAlg::Sha256),
        ] {
            for qop in [
                None,
                Some(AuthQop::Auth {
                    cnonce: "abc".into(),
                    nc: 1,
                }),
            ] {
                let generator = rsip::DigestGenerator {
                    username: "9090",
                    password: "s3cret",
                    nonce: "n0nce",
                    uri: &uri,
                    realm: "trunk",
                    method: &rsip::Method::Invite,
                    qop: qop.as_ref(),
                    algorithm: theirs,
                };
                let mine = digest_response(
                    ours,
                    "9090",
                    "trunk",
                    "s3cret",
                    "INVITE",
                    &uri_text,
                    "n0nce",
                    qop.as_ref().map(|_| (1, "abc")),
                );
                assert_eq!(mine, generator.compute(), "{ours:?} {qop:?}");
            }
        }
    }

    fn resp(status: u16, headers: &str) -> rsip::Response {
        let text = format!(
            "SIP/2.0 {status} X\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@h>;tag=1\r\n\
To: <sip:b@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n{headers}Content-Length: 0\r\n\r\n"
        );
        rsip::Response::try_from(text.as_str()).unwrap()
    }

    fn creds(realm: Option<&str>) -> Credentials {
        Credentials {
            username: "9090".into(),
            password: "pw".into(),
            realm: realm.map(str::to_string),
        }
    }

    #[test]
    fn parses_real_world_challenges() {
        let c = Challenge::parse(
            "Digest realm=\"trunk\", nonce=\"abc\", qop=\"auth,auth-int\", algorithm=SHA-256, stale=TRUE, opaque=\"o\"",
            false,
        )
        .unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha256);
        assert!(c.qop_auth && c.stale);
        assert_eq!(c.opaque.as_deref(), Some("o"));
        let c = Challenge::parse("Digest realm=\"r\",nonce=\"n\"", true).unwrap();
        assert_eq!(
            (c.algorithm, c.qop_auth, c.stale),
            (Algorithm::Md5, false, false)
        );
        assert_eq!(c.answer_header(), "Proxy-Authorization");
        assert!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess", false)
                .is_none()
        );
        assert!(
            Challenge::parse("Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"", false).is_none()
        );
        assert!(Challenge::parse("Basic realm=\"r\"", false).is_none());
        assert!(
            Challenge::parse("Digest realm=\"r\"", false).is_none(),
            "no nonce"
        );
    }

    #[test]
    fn topmost_supported_challenge_of_the_configured_realm_is_answered() {
        let r = resp(
            401,
            "WWW-Authenticate: Digest realm=\"r\", nonce=\"1\", algorithm=SHA-512-256\r\n\
WWW-Authenticate: Digest realm=\"other\", nonce=\"2\", algorithm=SHA-256\r\n\
WWW-Authenticate: Digest realm=\"r\", nonce=\"3\", algorithm=MD5\r\n",
        );
        assert_eq!(pick_challenge(&r, &creds(None)).unwrap().nonce, "2");
        assert_eq!(pick_challenge(&r, &creds(Some("r"))).unwrap().nonce, "3");
        assert!(pick_challenge(&r, &creds(Some("nope"))).is_none());
        let r = resp(
            407,
            "Proxy-Authenticate: Digest realm=\"p\", nonce=\"9\"\r\n",
        );
        assert!(pick_challenge(&r, &creds(None)).unwrap().proxy);
    }

    #[test]
    fn authorization_header_carries_qop_nc_cnonce_and_opaque() {
        let c = Challenge::parse(
            "Digest realm=\"r\", nonce=\"n\", qop=\"auth\", opaque=\"op\", algorithm=SHA-256",
            false,
        )
        .unwrap();
        let v = authorization(&c, &creds(None), "REGISTER", "sip:trunk", "cn", 2);
        let expect = digest_response(
            Algorithm::Sha256,
            "9090",
            "r",
            "pw",
            "REGISTER",
            "sip:trunk",
            "n",
            Some((2, "cn")),
        );
        assert!(
            v.starts_with("Digest username=\"9090\", realm=\"r\", nonce=\"n\", uri=\"sip:trunk\""),
            "{v}"
        );
        assert!(v.contains(&format!("response=\"{expect}\"")), "{v}");
        assert!(
            v.contains("algorithm=SHA-256") && v.contains("opaque=\"op\""),
            "{v}"
        );
        assert!(v.contains("qop=auth, nc=00000002, cnonce=\"cn\""), "{v}");
    }

    #[test]
    fn one_retry_per_challenge_except_stale() {
        let first = resp(401, "WWW-Authenticate: Digest realm=\"r\", nonce=\"1\"\r\n");
        let stale = resp(
            401,
            "WWW-Authenticate: Digest realm=\"r\", nonce=\"2\", stale=true\r\n",
        );
        let c = creds(None);
        let mut s = AuthSession::default();
        assert!(
            s.on_challenge(&first, None).is_none(),
            "no credentials, no retry"
        );
        assert!(s.on_challenge(&first, Some(&c)).is_some());
        let (name, v) = s.header_for(Some(&c), "INVITE", "sip:x@h").unwrap();
        assert_eq!(name, "Authorization");
        assert!(v.contains("nonce=\"1\""));
        assert!(s.on_challenge(&stale, Some(&c)).is_some(), "stale: retry");
        assert!(
            s.on_challenge(&first, Some(&c)).is_none(),
            "second real rejection is final"
        );
        s.on_success();
        assert!(
            s.on_challenge(&first, Some(&c)).is_some(),
            "after success, a new round"
        );
    }
}
