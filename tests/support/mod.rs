//! Shared harness for the integration tests, compiled once into each test binary
//! (`tests/<binary>/main.rs` declares it with `#[macro_use] #[path = "../support/mod.rs"]
//! mod support;`): the whole service in-process on loopback ports (port 0), SIPp as a
//! real peer in a child process, and the service's own call records to assert on.
//!
//! - this module: test settings, [`Service`] (the service in-process), free ports,
//!   prompt lengths;
//! - [`api`]: the API harness (tokens per role, a clock the test sets, an HTTP client)
//!   and `api_on_both_backends!`;
//! - [`store`]: test databases (a temp SQLite file, a fresh PostgreSQL schema) and
//!   `on_both_backends!`;
//! - [`campaign`]: SIPp as the trunk and every subscriber of a campaign, its trace parsed;
//! - [`client`]: the Rust SIP/RTP test caller; [`pcap`]: RFC 4733 key pcaps.
//!
//! Not every binary uses every helper: hence `dead_code` and `unused_macros` allowed here.
#![allow(dead_code, unused_macros)]

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use tongdai::app::App;
use tongdai::call::CallRecord;
use tongdai::config::Settings;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The name libtest knows a test by, for `--exact`: its module path without the test
/// binary's crate name (`store::store_campaigns` + `f` → `store_campaigns::f`). Call it
/// with `module_path!()` from the test's module.
pub fn test_path(module: &str, test: &str) -> String {
    match module.split_once("::") {
        Some((_, inner)) => format!("{inner}::{test}"),
        None => test.to_string(),
    }
}

/// Test settings: loopback, port 0, the bundled prompts and dialplans, a fresh SQLite
/// file in `db_dir`, plus `overrides` (TOML).
pub fn settings(db_dir: &Path, overrides: &str) -> Settings {
    let base = format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
[handbook]\nlisten = \"127.0.0.1:0\"\narticle = \"{}\"\n\
[prompts]\ndir = \"{}\"\n[dialplans]\ndir = \"{}\"\n[database]\nurl = \"sqlite://{}/tongdai.db\"\n",
        repo().join("handbook/cam-nang-covid-19.md").display(),
        repo().join("prompts/vi").display(),
        repo().join("dialplans").display(),
        db_dir.display()
    );
    let merged = merge_toml(&base, overrides);
    Settings::from_toml_overrides(&merged).expect("test settings")
}

/// Merges two TOML snippets table by table (later wins, key by key within a section),
/// so tests can override keys of a section the harness also sets.
pub fn merge_toml(a: &str, b: &str) -> String {
    let mut doc: toml::Table = a.parse().expect("base toml");
    let over: toml::Table = b.parse().expect("override toml");
    for (k, v) in over {
        match (doc.get_mut(&k), v) {
            (Some(toml::Value::Table(t)), toml::Value::Table(o)) => {
                for (k2, v2) in o {
                    t.insert(k2, v2);
                }
            }
            (_, v) => {
                doc.insert(k, v);
            }
        }
    }
    toml::to_string(&doc).expect("toml")
}

pub struct Service {
    pub app: App,
    /// Holds the per-test SQLite file.
    pub dir: tempfile::TempDir,
}

impl Service {
    pub async fn start(overrides: &str) -> Service {
        let dir = tempfile::tempdir().expect("tmp");
        Self::start_in(dir, overrides).await
    }

    pub async fn start_in(dir: tempfile::TempDir, overrides: &str) -> Service {
        let app = App::start(settings(dir.path(), overrides))
            .await
            .expect("service starts");
        Service { app, dir }
    }

    /// The service on a fresh database of `db`'s kind: SQLite in `dir`, or a fresh
    /// PostgreSQL schema, returned for the test to clean up.
    pub async fn start_on(
        db: store::Db,
        dir: tempfile::TempDir,
        overrides: &str,
    ) -> (Service, Option<store::TestDb>) {
        match db {
            store::Db::Sqlite => (Self::start_in(dir, overrides).await, None),
            store::Db::Postgres => {
                let pg = store::postgres().await;
                let overrides =
                    merge_toml(overrides, &format!("[database]\nurl = \"{}\"\n", pg.url));
                (Self::start_in(dir, &overrides).await, Some(pg))
            }
        }
    }

    pub fn sip_addr(&self) -> SocketAddr {
        self.app.sip_addr
    }

    /// Waits (bounded) until `n` calls have finished and returns the finished records.
    pub async fn wait_calls(&self, n: u64) -> Vec<CallRecord> {
        let waited =
            tokio::time::timeout(Duration::from_secs(60), self.app.calls.wait_finished(n)).await;
        assert!(
            waited.is_ok(),
            "only {} of {n} calls finished",
            self.app.calls.finished_total()
        );
        self.app.calls.finished()
    }

    /// Waits until the SIP layer holds no legs or transactions that are not lingering.
    pub async fn wait_idle_legs(&self) {
        for _ in 0..500 {
            if let Some(c) = self.app.census().await
                && c.legs == 0
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("legs still active: {:?}", self.app.census().await);
    }
}

/// A UDP port that is free now, and (for SIPp media) its +2 neighbour too.
pub fn free_port_pair() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() as u16).wrapping_mul(7919) % 5000;
    loop {
        let n = NEXT.fetch_add(4, Ordering::Relaxed);
        let port = 45_000 + ((seed + n) % 15_000) / 4 * 4;
        let ok = [port, port + 1, port + 2, port + 3]
            .iter()
            .all(|p| UdpSocket::bind(("127.0.0.1", *p)).is_ok());
        if ok {
            return port;
        }
    }
}

pub fn free_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = s.local_addr().expect("addr").port();
    // TCP on the same number must be free too (SIPp binds both for -t t1).
    if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
        port
    } else {
        free_port()
    }
}

pub fn prompt_ids(record: &CallRecord) -> Vec<&str> {
    record.prompts.iter().map(|p| p.id.as_str()).collect()
}

/// Frames (20 ms packets) of a bundled prompt, read independently of the service.
pub fn prompt_frames(id: &str) -> u32 {
    let path = repo().join("prompts/vi").join(format!("{id}.wav"));
    let reader = hound::WavReader::open(&path).expect("prompt wav");
    reader.duration().div_ceil(160)
}

pub fn exists(p: &Path) -> bool {
    p.exists()
}

#[macro_use]
pub mod store;
#[macro_use]
pub mod api;
pub mod campaign;
pub mod client;
pub mod pcap;
pub mod process;
pub mod serial;
pub mod sipp;

// The runners most tests use, at the top (not every binary uses them all).
#[allow(unused_imports)]
pub use sipp::{DEMO, SippRun, Transport, sipp, sipp_to};
