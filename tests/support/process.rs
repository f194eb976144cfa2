//! The `tongdai` binary (the test build, `CARGO_BIN_EXE_tongdai`) in a child process, as
//! an operator runs it: one-shot commands ([`tongdai`], [`tongdai_code`], [`command`])
//! and `tongdai serve` ([`Serve`]: started with a config file and/or environment, its
//! log in a file, waited for, signalled, and killed and reaped when dropped — a test that
//! fails half-way leaves no service behind holding ports or database connections).
//!
//! Every command runs in the repository root, so the bundled relative paths
//! (`prompts/vi`, `dialplans`) resolve as they do for an operator.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use super::repo;

/// `tongdai` as a command, in the repository root, its handbook page on a free port.
pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tongdai"));
    cmd.current_dir(repo());
    // Tests run side by side: the handbook page on a free port unless a test says
    // otherwise (a later `env` wins).
    cmd.env("TONGDAI__HANDBOOK__LISTEN", "127.0.0.1:0");
    cmd
}

/// Its stdout and stderr, one after the other.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = command();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run tongdai")
}

/// Runs `tongdai <args>` with `env` added: (exited 0, stdout + stderr).
pub fn tongdai(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let out = run(args, env);
    (out.status.success(), output_text(&out))
}

/// Runs `tongdai <args>` with `env` added: (exit code, -1 if killed by a signal;
/// stdout + stderr).
pub fn tongdai_code(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = run(args, env);
    (out.status.code().unwrap_or(-1), output_text(&out))
}

/// `tongdai [--config FILE] serve` in a child process, stdout and stderr in a log file.
pub struct Serve {
    child: Child,
    log: PathBuf,
    /// Complete log lines already handed out by [`Serve::wait_line`].
    lines_read: usize,
}

impl Serve {
    /// Starts `tongdai [--config config] serve` with `env` added, writing its output to
    /// `log` (created or truncated).
    pub fn start(config: Option<&Path>, env: &[(&str, &str)], log: &Path) -> Serve {
        let file = std::fs::File::create(log).expect("log file");
        let mut cmd = command();
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        cmd.arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::from(file.try_clone().expect("log file")))
            .stderr(Stdio::from(file));
        for (k, v) in env {
            cmd.env(k, v);
        }
        Serve {
            child: cmd.spawn().expect("start tongdai serve"),
            log: log.to_path_buf(),
            lines_read: 0,
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The complete lines of the log (a line still being written is left for later).
    fn complete_lines(&self) -> Vec<String> {
        let text = self.log();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete.lines().map(str::to_owned).collect()
    }

    /// Hands the log's lines not handed out yet to `found`, in order, until it says
    /// true (then true) or `within` has passed or the service has exited (then false).
    /// Like reading the service's output line by line, but never blocking forever.
    pub fn wait_line(&mut self, within: Duration, mut found: impl FnMut(&str) -> bool) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let exited = self.child.try_wait().expect("try_wait").is_some();
            let lines = self.complete_lines();
            for line in &lines[self.lines_read.min(lines.len())..] {
                self.lines_read += 1;
                if found(line) {
                    return true;
                }
            }
            if exited || Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The log's lines after those [`Serve::wait_line`] handed out.
    pub fn rest(&self) -> Vec<String> {
        let lines = self.complete_lines();
        lines[self.lines_read.min(lines.len())..].to_vec()
    }

    /// Polls `GET {http}/readyz` until it answers 2xx (bounded: 30 s).
    pub async fn wait_ready(&self, http: &str) {
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = client.get(format!("{http}/readyz")).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{http} never became ready; log:\n{}", self.log());
    }

    /// `kill -<signal> <pid>`; the status of `kill`.
    pub fn signal(&self, signal: &str) -> ExitStatus {
        Command::new("kill")
            .args([format!("-{signal}"), self.id().to_string()])
            .status()
            .expect("kill")
    }

    /// Waits (at most `within`) for the service to exit; kills it and fails if it does
    /// not.
    pub fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "tongdai serve still running after {within:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM (the service drains and exits), then its exit status (bounded: 60 s).
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.wait(Duration::from_secs(60))
    }

    /// SIGKILL (a crash: nothing is drained), and reaps the process.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill -9");
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
