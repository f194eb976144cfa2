//! Bearer tokens and roles.
//!
//! A token is 32 random bytes, written `td_` + 64 hex digits. Configuration keeps only
//! its SHA-256 (hex) with a name and a role. SHA-256 rather than a password hash
//! (argon2, bcrypt): the secrets are machine-generated with 256 bits of entropy, so a
//! leaked hash cannot be brute-forced whatever its speed — a slow, salted hash only
//! protects low-entropy *passwords* — and an unsalted digest lets a request's token be
//! found with one hash and one map lookup instead of a slow verification against every
//! configured token on every request. The lookup is by digest, so response timing says
//! nothing useful about a guessed secret.
//!
//! Roles (`Role`): `vinmec` (scheduling queue and its export), `fanpage` (group-2
//! intake), `supervisor` (read-only views, live page, metrics), `admin` (everything).
//! Every route declares the roles it admits (`api::routes()`); no token or an unknown
//! one is 401, a known token of the wrong role 403.
//!
//! The live page's event stream (`EventSource` cannot send headers) authenticates with
//! a one-time **ticket**: the page, holding the token in `sessionStorage`, posts to
//! `/api/v1/live/ticket` with its bearer token and opens the stream with
//! `?ticket=…`; the ticket is valid for `api.live_ticket_ttl` and consumed on use, so a
//! URL that ends up in a log or the browser history is worthless.

use std::collections::HashMap;
use std::sync::Mutex;

use jiff::Timestamp;
use sha2::{Digest, Sha256};

use crate::config::ApiToken;

pub use crate::config::Role;

/// Who is calling: the token's configured name and role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// The SHA-256 (lowercase hex) of a token, as configuration stores it.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh random token.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("td_{}", hex::encode(bytes))
}

/// The configured tokens, by hash.
#[derive(Debug, Default)]
pub struct Tokens {
    by_hash: HashMap<String, Caller>,
}

impl Tokens {
    pub fn new(config: &[ApiToken]) -> Tokens {
        Tokens {
            by_hash: config
                .iter()
                .map(|t| {
                    (
                        t.sha256.to_ascii_lowercase(),
                        Caller {
                            name: t.name.clone(),
                            role: t.role,
                        },
                    )
                })
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    pub fn lookup(&self, token: &str) -> Option<&Caller> {
        self.by_hash.get(&hash_token(token))
    }
}

/// One-time tickets for the live event stream (see the module docs).
#[derive(Debug, Default)]
pub struct Tickets {
    live: Mutex<HashMap<String, (Caller, Timestamp)>>,
}

impl Tickets {
    /// A new ticket for `caller`, valid until `expires`.
    pub fn issue(&self, caller: &Caller, now: Timestamp, expires: Timestamp) -> String {
        let ticket = new_token();
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.retain(|_, (_, until)| *until > now);
        live.insert(hash_token(&ticket), (caller.clone(), expires));
        ticket
    }

    /// The ticket's caller if it is live; it cannot be used again either way.
    pub fn redeem(&self, ticket: &str, now: Timestamp) -> Option<Caller> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        match live.remove(&hash_token(ticket)) {
            Some((caller, until)) if until > now => Some(caller),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_found_by_their_hash_only() {
        let token = new_token();
        assert!(token.starts_with("td_") && token.len() == 67);
        let tokens = Tokens::new(&[ApiToken {
            name: "lan".into(),
            role: Role::Vinmec,
            sha256: hash_token(&token).to_uppercase(),
        }]);
        assert_eq!(
            tokens.lookup(&token),
            Some(&Caller {
                name: "lan".into(),
                role: Role::Vinmec
            })
        );
        assert_eq!(
            tokens.lookup(&hash_token(&token)),
            None,
            "the hash is not a token"
        );
        assert_eq!(tokens.lookup("td_00"), None);
        // The digest of a known input, so configs written elsewhere agree.
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn tickets_are_single_use_and_expire() {
        let t = Tickets::default();
        let caller = Caller {
            name: "sup".into(),
            role: Role::Supervisor,
        };
        let now: Timestamp = "2021-11-27T03:00:00Z".parse().expect("ts");
        let later: Timestamp = "2021-11-27T03:01:00Z".parse().expect("ts");
        let a = t.issue(&caller, now, later);
        assert_eq!(t.redeem(&a, now), Some(caller.clone()));
        assert_eq!(t.redeem(&a, now), None, "used once");
        let b = t.issue(&caller, now, later);
        assert_eq!(t.redeem(&b, later), None, "expired");
        assert_eq!("admin".parse::<Role>(), Ok(Role::Admin));
        assert!("root".parse::<Role>().is_err());
    }
}
