//! Who may start something with us: the source-address ACL for out-of-dialog requests.
//!
//! A hotline on the public internet is found within hours by SIP scanners (sipvicious
//! `svmap`/`svwar`, friendly-scanner) that send OPTIONS and INVITEs to learn the server
//! type, the extensions and whether calls go through. The ACL is checked in the
//! endpoint before any transaction or dialog state exists:
//!
//! - a request from outside the ACL that does not belong to a dialog or transaction we
//!   already have (INVITE, OPTIONS, REGISTER, MESSAGE, …, and in-dialog-looking requests
//!   that match nothing) gets a bare **403** — no `Server`, `Allow` or `Contact`, so the
//!   scanner learns nothing it did not already know;
//! - OPTIONS is *not* exempt: its 200 would reveal `Allow` and the user agent, which is
//!   exactly what scanners fingerprint. Monitoring proxies (Kamailio's dispatcher) are
//!   in the ACL anyway;
//! - an ACK or a malformed message from outside is dropped silently (nothing may or
//!   needs to be answered);
//! - requests inside an existing dialog pass from any address: on an outbound call the
//!   callee may send its BYE or re-INVITE straight from its own address.
//!
//! The trunk's addresses are always allowed (added by the driver once resolved).

use std::net::IpAddr;

use ipnet::IpNet;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acl {
    nets: Vec<IpNet>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is neither an IP address nor a CIDR network (e.g. 203.0.113.0/24)")]
pub struct AclParseError {
    pub value: String,
}

impl Acl {
    /// Parses CIDRs (`10.1.0.0/16`, `::1/128`) and bare addresses (a host route).
    /// `0.0.0.0/0` (with `::/0`) allows everyone.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Acl, AclParseError> {
        let mut nets = Vec::with_capacity(entries.len());
        for e in entries {
            let s = e.as_ref().trim();
            let net = s
                .parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| AclParseError {
                    value: s.to_string(),
                })?;
            nets.push(net);
        }
        Ok(Acl { nets })
    }

    /// Everyone (tests of the plain inbound behaviour, and `"0.0.0.0/0"`).
    pub fn allow_all() -> Acl {
        Acl::parse(&["0.0.0.0/0", "::/0"]).unwrap_or_default()
    }

    /// Adds one address (the trunk's, once resolved).
    pub fn allow_ip(&mut self, ip: IpAddr) {
        if !self.allows(ip) {
            self.nets.push(IpNet::from(ip));
        }
    }

    /// Whether `ip` may start a dialog. IPv4-mapped IPv6 sources (`::ffff:a.b.c.d`, what
    /// a dual-stack socket reports) are checked as the IPv4 address they are.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6
                .to_ipv4_mapped()
                .map(IpAddr::V4)
                .unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        self.nets.iter().any(|n| n.contains(&ip))
    }

    pub fn entries(&self) -> &[IpNet] {
        &self.nets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_and_bare_addresses() {
        let acl = Acl::parse(&["127.0.0.1", "203.0.113.0/24", "2001:db8::/32"]).unwrap();
        assert!(acl.allows(ip("127.0.0.1")));
        assert!(!acl.allows(ip("127.0.0.2")));
        assert!(acl.allows(ip("203.0.113.77")));
        assert!(!acl.allows(ip("203.0.114.1")));
        assert!(acl.allows(ip("2001:db8::5")));
        assert!(acl.allows(ip("::ffff:203.0.113.9")), "v4-mapped source");
        assert!(!acl.allows(ip("::1")));
    }

    #[test]
    fn allow_all_and_empty() {
        assert!(Acl::allow_all().allows(ip("198.51.100.1")));
        assert!(Acl::allow_all().allows(ip("2001:db8::1")));
        let none = Acl::parse::<&str>(&[]).unwrap();
        assert!(!none.allows(ip("127.0.0.1")));
        let mut trunk_only = none.clone();
        trunk_only.allow_ip(ip("198.51.100.7"));
        assert!(trunk_only.allows(ip("198.51.100.7")));
    }

    #[test]
    fn bad_entries_are_named() {
        let e = Acl::parse(&["10.0.0.0/8", "10.0.0.0/33"]).unwrap_err();
        assert_eq!(e.value, "10.0.0.0/33");
        assert!(Acl::parse(&["trunk.example"]).is_err());
    }
}
