//! Settings: `config/default.toml` (compiled in) < `--config FILE` < `TONGDAI__*` env vars.
//!
//! Every struct denies unknown fields so that a typo in an operator's file is an error at
//! start instead of a silently ignored setting.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use tongdai_sip::acl::Acl;
use tongdai_sip::auth::Credentials;
use tongdai_sip::trunk::{TrunkConfig, TrunkTransport};

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
    pub trunk: TrunkSettings,
    pub rtp: RtpSettings,
    pub http: HttpSettings,
    pub database: DatabaseSettings,
    pub prompts: PromptSettings,
    pub dialplans: DialplanSettings,
    pub program: tongdai_domain::program::ProgramConfig,
    pub log: LogSettings,
    pub shutdown: ShutdownSettings,
    pub api: ApiSettings,
    pub dialer: DialerSettings,
    pub handbook: HandbookSettings,
}

/// `[handbook]`: the Covid-19 handbook page (`GET /s/{token}`), on a listener of its
/// own so that the public link never shares a port with the API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandbookSettings {
    pub listen: SocketAddr,
    /// How customers reach `listen` from their phones: the links start with it
    /// (`{base_url}/s/{token}`).
    pub base_url: String,
    /// The article, in Markdown; rendered once at start.
    pub article: PathBuf,
}

/// `[dialer]`: the campaign dialer inside the service (see `dialer::runtime`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DialerSettings {
    /// Place the calls of running campaigns. `false`: this instance never dials (an
    /// inbound-only node sharing the database).
    pub enabled: bool,
    /// This instance's stable name, written on every claim; at start-up only its own
    /// unfinished attempts are recovered. Empty: the host name. Keep it the same across
    /// restarts, and different for each instance sharing one PostgreSQL.
    pub instance: String,
    /// How often the campaigns table is read (start/pause/resume/stop by the CLI take
    /// effect within this).
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Slots of `sip.max_calls` that campaign calls never take: a new outbound call
    /// starts only while fewer than `max_calls − inbound_reserve` calls (inbound and
    /// outbound) are up, so the hotline always has this many free lines.
    pub inbound_reserve: usize,
}

impl DialerSettings {
    /// `instance`, or the host name when it is empty.
    pub fn instance_name(&self) -> String {
        let configured = self.instance.trim();
        if !configured.is_empty() {
            return configured.to_string();
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "tongdai".to_string())
    }
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
    /// Sources (IPs or CIDRs) allowed to start dialogs; the trunk is always added.
    /// Everyone else gets 403 (see `sip::acl`). `["0.0.0.0/0", "::/0"]` allows all.
    pub acl: Vec<String>,
}

impl SipSettings {
    /// The parsed ACL. `Settings::validate` has checked every entry, so an error cannot
    /// happen on loaded settings; if it did, the empty ACL (only the trunk) is the safe
    /// side.
    pub fn acl(&self) -> Acl {
        Acl::parse(&self.acl).unwrap_or_default()
    }
}

/// `[trunk]`: the operator's SIP trunk for outbound calls (and the source of inbound
/// ones). An empty `host` means no trunk.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkSettings {
    pub host: String,
    pub port: u16,
    pub transport: TrunkTransport,
    pub caller_id: String,
    /// Empty: no P-Asserted-Identity header.
    pub p_asserted_identity: String,
    /// Empty: no digest credentials (a challenge then fails the call / registration).
    pub username: String,
    pub password: String,
    /// Empty: answer challenges of any realm.
    pub realm: String,
    pub register: bool,
    #[serde(with = "humantime_serde")]
    pub register_expires: Duration,
    #[serde(with = "humantime_serde")]
    pub register_retry_min: Duration,
    #[serde(with = "humantime_serde")]
    pub register_retry_max: Duration,
    /// `0s` disables the OPTIONS keepalive.
    #[serde(with = "humantime_serde")]
    pub options_interval: Duration,
}

impl TrunkSettings {
    /// The SIP layer's view; `None` when no trunk is configured.
    pub fn trunk_config(&self) -> Option<TrunkConfig> {
        let host = self.host.trim();
        if host.is_empty() {
            return None;
        }
        let non_empty = |s: &str| (!s.trim().is_empty()).then(|| s.trim().to_string());
        Some(TrunkConfig {
            host: host.to_string(),
            port: self.port,
            transport: self.transport,
            caller_id: self.caller_id.trim().to_string(),
            p_asserted_identity: non_empty(&self.p_asserted_identity),
            credentials: non_empty(&self.username).map(|username| Credentials {
                username,
                password: self.password.clone(),
                realm: non_empty(&self.realm),
            }),
            register: self.register,
            register_expires: self.register_expires,
            retry_min: self.register_retry_min,
            retry_max: self.register_retry_max,
            options_interval: (!self.options_interval.is_zero()).then_some(self.options_interval),
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RtpSettings {
    pub port_min: u16,
    pub port_max: u16,
    #[serde(with = "humantime_serde")]
    pub inactivity_timeout: Duration,
    /// New calls (inbound: 503, campaigns: held) are refused while the media workers
    /// send this far behind their frame slots (95th percentile of packets, over 0.5 s with at
    /// least 100 calls up): at that point the
    /// box has no CPU for more calls, and taking them would degrade every call's audio.
    /// `0s` turns the check off.
    #[serde(with = "humantime_serde")]
    pub max_send_lag: Duration,
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

/// What an API token may do (the route table in `api` says which roles each route admits).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Vinmec,
    Fanpage,
    Supervisor,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Vinmec, Role::Fanpage, Role::Supervisor, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Vinmec => "vinmec",
            Role::Fanpage => "fanpage",
            Role::Supervisor => "supervisor",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?} (vinmec, fanpage, supervisor, admin)"))
    }
}

/// One API token: who it is (logged, recorded as the actor of changes), what it may do,
/// and the SHA-256 (hex) of the secret.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiToken {
    pub name: String,
    pub role: Role,
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
            .try_parsing(true)
            .list_separator(",")
            .with_list_parse_key("sip.acl");
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
        if let Err(e) = Acl::parse(&self.sip.acl) {
            return invalid("sip.acl", &e.to_string());
        }
        self.validate_trunk()?;
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
        let base = &self.handbook.base_url;
        if !(base.starts_with("http://") || base.starts_with("https://")) || base.ends_with('/') {
            return invalid(
                "handbook.base_url",
                "must start with http:// or https:// and not end with /",
            );
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
        if self.dialer.inbound_reserve >= self.sip.max_calls {
            return invalid(
                "dialer.inbound_reserve",
                "must be below sip.max_calls (campaigns need at least one line)",
            );
        }
        if self.dialer.poll_interval < Duration::from_millis(100) {
            return invalid("dialer.poll_interval", "must be at least 100ms");
        }
        if self.dialer.instance.trim().chars().count() > 100 {
            return invalid("dialer.instance", "must be at most 100 characters");
        }
        if let Err(e) = self.program.validate() {
            return Err(ConfigError::Invalid {
                key: "program",
                problem: e.to_string(),
            });
        }
        Ok(())
    }

    fn validate_trunk(&self) -> Result<(), ConfigError> {
        let t = &self.trunk;
        let invalid = |key, problem: &str| {
            Err(ConfigError::Invalid {
                key,
                problem: problem.to_string(),
            })
        };
        let user_ok = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+*#-_.!~".contains(c))
        };
        if !user_ok(t.caller_id.trim()) {
            return invalid("trunk.caller_id", "must be a number (digits, +, *, #)");
        }
        if !t.username.is_empty() && !user_ok(&t.username) {
            return invalid("trunk.username", "must be a plain SIP user name");
        }
        if t.username.is_empty() && !t.password.is_empty() {
            return invalid("trunk.username", "is required when trunk.password is set");
        }
        if [&t.password, &t.realm, &t.p_asserted_identity]
            .iter()
            .any(|v| v.contains(['\r', '\n', '"']))
        {
            return invalid(
                "trunk",
                "password, realm and p_asserted_identity must not contain quotes or line breaks",
            );
        }
        let host = t.host.trim();
        if host.is_empty() {
            if t.register {
                return invalid("trunk.register", "needs trunk.host");
            }
            return Ok(());
        }
        if host.contains(|c: char| c.is_whitespace() || ";@<>:/\"".contains(c))
            && host.parse::<IpAddr>().is_err()
        {
            return invalid(
                "trunk.host",
                "must be a host name or an IP address (no port, no scheme)",
            );
        }
        if t.port == 0 {
            return invalid("trunk.port", "must not be 0");
        }
        if t.register_expires < Duration::from_secs(1) {
            return invalid("trunk.register_expires", "must be at least 1s");
        }
        if t.register_retry_min.is_zero() || t.register_retry_max < t.register_retry_min {
            return invalid(
                "trunk.register_retry_min",
                "must be > 0 and not above trunk.register_retry_max",
            );
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
        assert_eq!(s.program, tongdai_domain::program::ProgramConfig::default());
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
    fn dialer_settings() {
        let s = Settings::from_toml_overrides("[dialer]\ninstance = \" node-1 \"\n").unwrap();
        assert!(s.dialer.enabled);
        assert_eq!(s.dialer.instance_name(), "node-1");
        assert_eq!(s.dialer.poll_interval, Duration::from_secs(1));
        let s = Settings::from_toml_overrides("").unwrap();
        assert!(!s.dialer.instance_name().is_empty(), "the host name");
        let e = Settings::from_toml_overrides(
            "[sip]\nmax_calls = 10\n[dialer]\ninbound_reserve = 10\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("dialer.inbound_reserve"), "{e}");
        let e = Settings::from_toml_overrides("[dialer]\npoll_interval = \"10ms\"\n").unwrap_err();
        assert!(e.to_string().contains("dialer.poll_interval"), "{e}");
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
    fn trunk_and_acl_defaults_and_validation() {
        let s = Settings::from_toml_overrides("").unwrap();
        assert!(s.trunk.trunk_config().is_none(), "no trunk by default");
        let acl = s.sip.acl();
        assert!(acl.allows("127.0.0.5".parse().unwrap()));
        assert!(acl.allows("::1".parse().unwrap()));
        assert!(!acl.allows("198.51.100.1".parse().unwrap()));

        let s = Settings::from_toml_overrides(
            "[trunk]\nhost = \"198.51.100.7\"\ntransport = \"tcp\"\nusername = \"9090\"\n\
password = \"pw\"\nregister = true\nregister_expires = \"10m\"\noptions_interval = \"0s\"\n\
p_asserted_identity = \"sip:9090@mobifone\"\n[sip]\nacl = [\"10.0.0.0/8\", \"192.0.2.1\"]\n",
        )
        .unwrap();
        let t = s.trunk.trunk_config().unwrap();
        assert_eq!(t.transport, TrunkTransport::Tcp);
        assert_eq!(t.caller_id, "9090");
        assert_eq!(t.register_expires, Duration::from_secs(600));
        assert!(t.register && t.options_interval.is_none());
        assert_eq!(t.credentials.as_ref().unwrap().password, "pw");
        assert_eq!(t.credentials.as_ref().unwrap().realm, None);
        assert_eq!(
            t.number_uri("0903123678"),
            "sip:0903123678@198.51.100.7:5060;transport=tcp"
        );
        assert!(s.sip.acl().allows("10.9.9.9".parse().unwrap()));

        for (toml, key) in [
            ("[sip]\nacl = [\"10.0.0.0/8\", \"10.0.0.300\"]\n", "sip.acl"),
            ("[trunk]\nregister = true\n", "trunk.register"),
            (
                "[trunk]\nhost = \"t.example\"\ntransport = \"sctp\"\n",
                "sctp",
            ),
            ("[trunk]\nhost = \"sip:t.example:5060\"\n", "trunk.host"),
            (
                "[trunk]\nhost = \"t\"\npassword = \"x\"\n",
                "trunk.username",
            ),
            ("[trunk]\ncaller_id = \"90 90\"\n", "trunk.caller_id"),
            (
                "[trunk]\nhost = \"t\"\nregister_retry_min = \"10m\"\nregister_retry_max = \"1m\"\n",
                "trunk.register_retry_min",
            ),
        ] {
            let err = Settings::from_toml_overrides(toml).unwrap_err().to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
        let env = HashMap::from([(
            "TONGDAI__SIP__ACL".to_string(),
            "127.0.0.1,203.0.113.0/24".to_string(),
        )]);
        let s = Settings::load_with_env(None, Some(env)).unwrap();
        assert!(s.sip.acl().allows("203.0.113.9".parse().unwrap()));
        assert!(!s.sip.acl().allows("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn missing_config_file_is_named() {
        let err =
            Settings::load_with_env(Some(Path::new("/nonexistent/x.toml")), None).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/x.toml"));
    }
}
