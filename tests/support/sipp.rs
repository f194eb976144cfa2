//! SIPp (Debian `sip-tester`) as the peer, in a child process: as the caller of the
//! service ([`sipp`], [`sipp_to`]: one call of a `tests/sipp/` scenario, its trace
//! returned) and as the far end of our calls ([`Uas`]: the subscriber's phone, the
//! trunk; started here, given its behaviour by `support::campaign` or by the test).
//! Traces go under `tests/out/` (see [`out_dir`]); a name is one test's.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use super::{free_port, free_port_pair, repo};

/// `tests/out/<name>`, emptied: where one test's SIPp writes its traces.
pub fn out_dir(name: &str) -> PathBuf {
    let dir = repo().join("tests/out").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("out dir");
    dir
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The line-check number answered by `dialplans/demo.toml`.
pub const DEMO: &str = "9091";

/// SIPp running `scenario` on `port` (and a free media port pair), its traces
/// (`messages.log`, `errors.log`) and working directory in `dir`; killed when dropped.
fn command(
    scenario: &Path,
    port: u16,
    dir: &Path,
    transport: Transport,
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("sipp");
    cmd.arg("-sf")
        .arg(scenario)
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mp", &free_port_pair().to_string()])
        .arg("-nostdin")
        .args(["-trace_msg", "-message_file"])
        .arg(dir.join("messages.log"))
        .args(["-trace_err", "-error_file"])
        .arg(dir.join("errors.log"))
        .args([
            "-t",
            match transport {
                Transport::Udp => "u1",
                Transport::Tcp => "t1",
            },
        ])
        .current_dir(dir)
        .kill_on_drop(true);
    cmd
}

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
    let dir = out_dir(name);
    let msg_file = dir.join("messages.log");
    let scenario_path = repo().join("tests/sipp").join(scenario);
    let mut cmd = command(&scenario_path, free_port(), &dir, transport);
    cmd.args(["-s", number])
        .args(["-m", "1", "-l", "1", "-timeout", "100s", "-timeout_error"])
        .args(extra)
        .arg(target.to_string());
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

/// SIPp as a UAS (the subscriber's phone, the trunk) in a child process; killed when
/// dropped.
pub struct Uas {
    pub child: tokio::process::Child,
    pub dir: PathBuf,
    pub port: u16,
}

pub struct UasResult {
    pub code: Option<i32>,
    pub messages: String,
    pub explain: String,
}

impl Uas {
    /// Starts SIPp with `scenario` on `port`, its traces (`messages.log`, `errors.log`)
    /// and working directory in `dir` (which must exist), `args` after the common ones;
    /// returns once SIPp holds its port (our bind then fails), so the first INVITE (or
    /// TCP connect) finds it.
    pub async fn spawn(
        dir: &Path,
        scenario: &Path,
        port: u16,
        transport: Transport,
        args: &[&str],
    ) -> Uas {
        let mut cmd = command(scenario, port, dir, transport);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let child = cmd.spawn().expect("sipp runs (is sip-tester installed?)");
        for _ in 0..250 {
            let taken = match transport {
                Transport::Udp => std::net::UdpSocket::bind(("127.0.0.1", port)).is_err(),
                Transport::Tcp => std::net::TcpListener::bind(("127.0.0.1", port)).is_err(),
            };
            if taken {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Uas {
            child,
            dir: dir.to_path_buf(),
            port,
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The message trace so far.
    pub fn messages(&self) -> String {
        std::fs::read_to_string(self.dir.join("messages.log")).unwrap_or_default()
    }

    /// Waits (at most `within`) for SIPp to exit after its `-m` calls.
    pub async fn finish(self, within: Duration) -> UasResult {
        let dir = self.dir.clone();
        let output = tokio::time::timeout(within, self.child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("sipp ends within {within:?}"))
            .expect("sipp output");
        let messages = std::fs::read_to_string(dir.join("messages.log")).unwrap_or_default();
        let errors = std::fs::read_to_string(dir.join("errors.log")).unwrap_or_default();
        // The trace of a long run (hundreds of calls) is read from its file instead.
        let trace = if messages.len() <= 64 * 1024 {
            messages.clone()
        } else {
            format!("(see {})", dir.join("messages.log").display())
        };
        let explain = format!(
            "sipp exit {:?}\nstdout:\n{}\nstderr:\n{}\nerrors:\n{errors}\nmessages:\n{trace}",
            output.status.code(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        UasResult {
            code: output.status.code(),
            messages,
            explain,
        }
    }

    /// Stops SIPp (SIGTERM: it flushes its trace) and returns the trace.
    pub async fn stop(mut self) -> String {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        let _ = self.child.kill().await;
        self.messages()
    }
}

/// SIPp as a trunk that answers every OPTIONS with 200 (`uas/uas_options.xml`, up to
/// 1000 of them), its traces in `out` (created if missing); killed when dropped.
pub fn options_uas(port: u16, out: &Path) -> tokio::process::Child {
    std::fs::create_dir_all(out).expect("out dir");
    tokio::process::Command::new("sipp")
        .arg("-sf")
        .arg(repo().join("tests/sipp/uas/uas_options.xml"))
        .args(["-i", "127.0.0.1", "-p", &port.to_string()])
        .args(["-mp", &free_port_pair().to_string()])
        .args(["-m", "1000", "-nostdin", "-timeout", "120s", "-t", "u1"])
        .current_dir(out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp runs (is sip-tester installed?)")
}
