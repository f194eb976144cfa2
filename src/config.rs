//! Settings: `config/default.toml` (compiled in) < `--config FILE` < `TONGDAI__*` env vars.
//!
//! Every struct denies unknown fields so that a typo in an operator's file is an error at
//! start instead of a silently ignored setting.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The defaults shipped with the binary, so `tongdai serve` runs with no file at all.
pub const DEFAULT_TOML: &str = include_str!("../config/default.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("configuration file {0} does not exist")]
    Missing(PathBuf),
    #[error("configuration: {key}: {problem}")]
    Invalid { key: &'static str, problem: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub sip: SipSettings,
    pub rtp: RtpSettings,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub prompts: PromptSettings,
    pub dialplans: DialplanSettings,
    pub program: crate::program::ProgramConfig,
    pub log: LogSettings,
    pub shutdown: ShutdownSettings,
    pub api: ApiSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SipSettings {
    pub listen: SocketAddr,
    /// Empty string means "derive from `listen`".
    pub public_addr: String,
    #[serde(with = "humantime_serde")]
    pub t1: Duration,
    #[serde(with = "humantime_serde")]
    pub t2: Duration,
    #[serde(with = "humantime_serde")]
    pub t4: Duration,
    #[serde(with = "humantime_serde")]
    pub answer_delay: Duration,
    pub max_calls: usize,
    pub user_agent: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtpSettings {
    pub port_min: u16,
    pub port_max: u16,
    #[serde(with = "humantime_serde")]
    pub inactivity_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    pub listen: SocketAddr,
}

/// The HTTP API (`src/api/`): who may call it and the Vinmec queue's leases.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSettings {
    /// Bearer tokens, stored as SHA-256 hashes (`tongdai token new` prints an entry).
    #[serde(default)]
    pub tokens: Vec<ApiToken>,
    /// `/metrics` without a token (aggregate counts only, no personal data). False:
    /// supervisor or admin token required.
    pub metrics_public: bool,
    /// How long a Vinmec scheduler's claim holds an entry unless the request says.
    #[serde(with = "humantime_serde")]
    pub lease: Duration,
    /// The longest lease a request may ask for.
    #[serde(with = "humantime_serde")]
    pub max_lease: Duration,
    /// Lifetime of the one-time ticket the live page opens its event stream with.
    #[serde(with = "humantime_serde")]
    pub live_ticket_ttl: Duration,
    /// How often the live view's snapshot is rebuilt while someone watches (and at
    /// most how often call changes trigger one).
    #[serde(with = "humantime_serde")]
    pub live_refresh: Duration,
    /// Where new registrations are pushed (Vinmec's webhook); empty: no push.
    pub webhook_url: String,
    /// HMAC-SHA256 key shared with the receiver (set it through
    /// `TONGDAI__API__WEBHOOK_SECRET` rather than a file).
    pub webhook_secret: String,
    /// Longest wait between two delivery attempts of one registration.
    #[serde(with = "humantime_serde")]
    pub webhook_max_backoff: Duration,
    /// How often the outbox is looked at for due deliveries.
    #[serde(with = "humantime_serde")]
    pub webhook_poll: Duration,
}

/// One API token: who it is (logged, recorded as the actor of changes), what it may do,
/// and the SHA-256 (hex) of the secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    pub name: String,
    pub role: crate::api::Role,
    pub sha256: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptSettings {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialplanSettings {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSettings {
    #[serde(with = "humantime_serde")]
    pub grace: Duration,
}

impl Settings {
    /// Loads the layered configuration from the real process environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        Self::load_with_env(file, None)
    }

    /// Like [`Settings::load`], with an explicit environment (tests must not mutate the
    /// process environment, which is shared by parallel tests).
    pub fn load_with_env(
        file: Option<&Path>,
        env: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder().add_source(config::File::from_str(
            DEFAULT_TOML,
            config::FileFormat::Toml,
        ));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError::Missing(path.to_path_buf()));
            }
            builder = builder.add_source(
                config::File::from(path.to_path_buf()).format(config::FileFormat::Toml),
            );
        }
        let mut environment = config::Environment::with_prefix("TONGDAI")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true);
        if env.is_some() {
            environment = environment.source(env);
        }
        let settings: Settings = builder.add_source(environment).build()?.try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Settings built from the embedded defaults plus a TOML snippet (tests).
    pub fn from_toml_overrides(overrides: &str) -> Result<Settings, ConfigError> {
        let settings: Settings = config::Config::builder()
            .add_source(config::File::from_str(
                DEFAULT_TOML,
                config::FileFormat::Toml,
            ))
            .add_source(config::File::from_str(overrides, config::FileFormat::Toml))
            .build()?
            .try_deserialize()?;
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, problem: &str| {
            Err(ConfigError::Invalid {
                key,
                problem: problem.to_string(),
            })
        };
        if !self.sip.public_addr.is_empty() && self.sip.public_addr.parse::<IpAddr>().is_err() {
            return invalid("sip.public_addr", "must be an IP address or empty");
        }
        if self.sip.t1.is_zero() || self.sip.t2 < self.sip.t1 {
            return invalid("sip.t1", "must be > 0 and not above sip.t2");
        }
        if self.sip.max_calls == 0 {
            return invalid("sip.max_calls", "must be at least 1");
        }
        if self.rtp.port_min > self.rtp.port_max || self.rtp.port_min < 1024 {
            return invalid("rtp.port_min", "must be >= 1024 and not above rtp.port_max");
        }
        if self.rtp.port_max - self.rtp.port_min < 1 {
            return invalid("rtp.port_max", "the range must hold at least one even port");
        }
        if self.rtp.inactivity_timeout.is_zero() {
            return invalid("rtp.inactivity_timeout", "must be > 0");
        }
        if !(self.database.url.starts_with("sqlite:")
            || self.database.url.starts_with("postgres://")
            || self.database.url.starts_with("postgresql://"))
        {
            return invalid("database.url", "must start with sqlite: or postgres://");
        }
        if self.log.level.trim().is_empty() {
            return invalid("log.level", "must not be empty");
        }
        let mut names = std::collections::HashSet::new();
        let mut hashes = std::collections::HashSet::new();
        for t in &self.api.tokens {
            if t.name.trim().is_empty() || t.name.len() > 64 {
                return invalid("api.tokens.name", "must be 1 to 64 characters");
            }
            if !names.insert(t.name.as_str()) {
                return Err(ConfigError::Invalid {
                    key: "api.tokens.name",
                    problem: format!("duplicate token name {:?}", t.name),
                });
            }
            if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::Invalid {
                    key: "api.tokens.sha256",
                    problem: format!(
                        "token {:?}: expected 64 hex digits (SHA-256); `tongdai token hash` prints it",
                        t.name
                    ),
                });
            }
            if !hashes.insert(t.sha256.to_ascii_lowercase()) {
                return Err(ConfigError::Invalid {
                    key: "api.tokens.sha256",
                    problem: format!("token {:?} has the same secret as another token", t.name),
                });
            }
        }
        if self.api.lease.is_zero() || self.api.max_lease < self.api.lease {
            return invalid("api.lease", "must be > 0 and not above api.max_lease");
        }
        if !self.api.webhook_url.is_empty() {
            let url = &self.api.webhook_url;
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return invalid("api.webhook_url", "must start with http:// or https://");
            }
            if self.api.webhook_secret.len() < 16 {
                return invalid(
                    "api.webhook_secret",
                    "at least 16 characters when api.webhook_url is set",
                );
            }
        }
        if self.api.webhook_max_backoff.is_zero() || self.api.webhook_poll.is_zero() {
            return invalid(
                "api.webhook_poll",
                "api.webhook_poll and api.webhook_max_backoff must be > 0",
            );
        }
        if self.api.live_ticket_ttl.is_zero() || self.api.live_refresh.is_zero() {
            return invalid(
                "api.live_ticket_ttl",
                "api.live_ticket_ttl and api.live_refresh must be > 0",
            );
        }
        if let Err(e) = self.program.validate() {
            return Err(ConfigError::Invalid {
                key: "program",
                problem: e.to_string(),
            });
        }
        Ok(())
    }

    /// The address we write into Contact, Via and SDP.
    pub fn advertised_ip(&self, bound: SocketAddr) -> IpAddr {
        if let Ok(ip) = self.sip.public_addr.parse::<IpAddr>() {
            return ip;
        }
        if !bound.ip().is_unspecified() {
            return bound.ip();
        }
        local_ip_guess().unwrap_or(IpAddr::from([127, 0, 0, 1]))
    }
}

/// The interface the kernel would route a public packet from; no packet is sent
/// (connecting a UDP socket only selects a route).
fn local_ip_guess() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn embedded_defaults_load() {
        let s = Settings::load_with_env(None, Some(HashMap::new())).unwrap();
        assert_eq!(s.sip.listen, "0.0.0.0:5060".parse().unwrap());
        assert_eq!(s.http.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.rtp.inactivity_timeout, Duration::from_secs(30));
        assert_eq!(s.log.format, LogFormat::Pretty);
        assert!(s.database.url.starts_with("sqlite:"));
        assert_eq!(s.program, crate::program::ProgramConfig::default());
    }

    #[test]
    fn program_numbers_are_configuration() {
        let s = Settings::from_toml_overrides(
            "[program]\ncap = 10\ntoday = \"2021-12-01\"\nmin_charge_vnd = 500000\n",
        )
        .unwrap();
        assert_eq!(s.program.cap, 10);
        assert_eq!(s.program.min_charge_vnd, 500_000);
        assert_eq!(
            s.program.today.map(|d| d.to_string()),
            Some("2021-12-01".into())
        );
        assert_eq!(s.program.specialties.len(), 6, "built-in specialties kept");
        let err = Settings::from_toml_overrides("[program]\nregistration_end = \"2021-11-01\"\n")
            .unwrap_err();
        assert!(err.to_string().contains("registration_end"), "{err}");
    }

    #[test]
    fn env_overrides_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t.toml");
        std::fs::write(
            &file,
            "[sip]\nlisten = \"127.0.0.1:5070\"\nt1 = \"100ms\"\n",
        )
        .unwrap();
        let env = HashMap::from([
            ("TONGDAI__SIP__T1".to_string(), "50ms".to_string()),
            ("TONGDAI__LOG__FORMAT".to_string(), "json".to_string()),
            ("TONGDAI__PROGRAM__CAP".to_string(), "42".to_string()),
        ]);
        let s = Settings::load_with_env(Some(&file), Some(env)).unwrap();
        assert_eq!(s.sip.listen, "127.0.0.1:5070".parse().unwrap());
        assert_eq!(s.sip.t1, Duration::from_millis(50));
        assert_eq!(s.log.format, LogFormat::Json);
        assert_eq!(s.program.cap, 42);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        let err = Settings::from_toml_overrides("[sip]\nlisten_typo = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("listen_typo"), "{err}");
        let err = Settings::from_toml_overrides("[nosuch]\nx = 1\n").unwrap_err();
        assert!(err.to_string().contains("nosuch"), "{err}");
        let err =
            Settings::from_toml_overrides("[sip]\nlisten = \"not an address\"\n").unwrap_err();
        assert!(
            err.to_string().contains("listen") || err.to_string().contains("address"),
            "{err}"
        );
        let err = Settings::from_toml_overrides("[log]\nformat = \"xml\"\n").unwrap_err();
        assert!(err.to_string().contains("xml"), "{err}");
        let err = Settings::from_toml_overrides("[rtp]\nport_min = 30000\nport_max = 20000\n")
            .unwrap_err();
        assert!(err.to_string().contains("rtp.port_min"), "{err}");
        let err = Settings::from_toml_overrides("[sip]\nt1 = \"fast\"\n").unwrap_err();
        assert!(
            err.to_string().contains("t1") || err.to_string().contains("fast"),
            "{err}"
        );
        let env = HashMap::from([("TONGDAI__SIP__NOPE".to_string(), "1".to_string())]);
        assert!(Settings::load_with_env(None, Some(env)).is_err());
    }

    #[test]
    fn missing_config_file_is_named() {
        let err =
            Settings::load_with_env(Some(Path::new("/nonexistent/x.toml")), None).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.toml"));
    }
}
