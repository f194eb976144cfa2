//! Shared harness for the black-box tests: the whole service in-process on loopback
//! ports (port 0), SIPp as a real peer in a child process, and the service's own call
//! records to assert on.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use tongdai::app::App;
use tongdai::call::CallRecord;
use tongdai::config::Settings;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Test settings: loopback, port 0, the bundled prompts and dialplans, a fresh SQLite
/// file in `db_dir`, plus `overrides` (TOML).
pub fn settings(db_dir: &Path, overrides: &str) -> Settings {
    let base = format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\n\
[prompts]\ndir = \"{}\"\n[dialplans]\ndir = \"{}\"\n[database]\nurl = \"sqlite://{}/tongdai.db\"\n",
        repo().join("prompts/vi").display(),
        repo().join("dialplans").display(),
        db_dir.display()
    );
    let merged = merge_toml(&base, overrides);
    Settings::from_toml_overrides(&merged).expect("test settings")
}

/// Merges two TOML snippets table by table (later wins), so tests can override keys of
/// a section the harness also sets.
fn merge_toml(a: &str, b: &str) -> String {
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

pub struct SippRun {
    pub output: Output,
    pub messages: String,
    pub dir: PathBuf,
}

impl SippRun {
    pub fn ok(&self) -> bool {
        self.output.status.success()
    }
    pub fn explain(&self) -> String {
        format!(
            "sipp exit {:?}\nstdout:\n{}\nstderr:\n{}\nmessages:\n{}",
            self.output.status.code(),
            String::from_utf8_lossy(&self.output.stdout),
            String::from_utf8_lossy(&self.output.stderr),
            self.messages
        )
    }
}

pub enum Transport {
    Udp,
    Tcp,
}

/// The line-check number answered by `dialplans/demo.toml`.
pub const DEMO: &str = "9091";

/// Runs one SIPp scenario from `tests/sipp/` against the demo number.
pub async fn sipp(
    name: &str,
    scenario: &str,
    target: SocketAddr,
    transport: Transport,
    extra: &[&str],
) -> SippRun {
    sipp_to(DEMO, name, scenario, target, transport, extra).await
}

/// Runs one SIPp scenario from `tests/sipp/` calling `number`, with a 120 s ceiling.
pub async fn sipp_to(
    number: &str,
    name: &str,
    scenario: &str,
    target: SocketAddr,
    transport: Transport,
    extra: &[&str],
) -> SippRun {
    let dir = repo().join("tests/out").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("out dir");
    let msg_file = dir.join("messages.log");
    let port = free_port().to_string();
    let media = free_port_pair().to_string();
    let scenario_path = repo().join("tests/sipp").join(scenario);
    let mut cmd = tokio::process::Command::new("sipp");
    cmd.arg("-sf")
        .arg(&scenario_path)
        .args(["-s", number, "-i", "127.0.0.1", "-p", &port, "-mp", &media])
        .args([
            "-m",
            "1",
            "-l",
            "1",
            "-nostdin",
            "-timeout",
            "100s",
            "-timeout_error",
        ])
        .args(["-trace_msg", "-message_file"])
        .arg(&msg_file)
        .args(["-trace_err", "-error_file"])
        .arg(dir.join("errors.log"))
        .args([
            "-t",
            match transport {
                Transport::Udp => "u1",
                Transport::Tcp => "t1",
            },
        ])
        .args(extra)
        .arg(target.to_string())
        .current_dir(&dir)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("sipp finished within 120 s")
        .expect("sipp runs (is the sip-tester package installed?)");
    let messages = std::fs::read_to_string(&msg_file).unwrap_or_default();
    let _ = std::fs::write(dir.join("stdout.log"), &output.stdout);
    SippRun {
        output,
        messages,
        dir,
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

pub mod client;
pub mod pcap;
