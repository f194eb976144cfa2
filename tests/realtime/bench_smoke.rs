//! The load harness cannot rot: `benches/load/run.sh smoke` (25 short calls at 5 calls/s
//! through SIPp) against the test build of the service, on free ports. Asserts only
//! counts — no call failed, and the service's tokio tasks and active calls came back to
//! their pre-run values — never a time or a rate, which a loaded 2-core CI box cannot
//! promise.

use std::process::Command;

// UDP and TCP on the same port for SIP; good enough for a test (the race is tiny).
use crate::support::{self, free_port};

#[test]
fn load_harness_smoke_level_has_no_failed_calls() {
    // SIPp at 5 calls/s against the binary: alone (support::serial).
    let _alone = support::serial::alone_blocking();
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().expect("tempdir");
    let results = dir.path().join("results.csv");
    let out = Command::new("bash")
        .arg(format!("{root}/benches/load/run.sh"))
        .arg("smoke")
        .env("NO_BUILD", "1")
        .env("TONGDAI_BIN", env!("CARGO_BIN_EXE_tongdai"))
        .env("PROBE_BIN", env!("CARGO_BIN_EXE_rtp-probe"))
        .env("SIP_PORT", free_port().to_string())
        .env("HTTP_PORT", free_port().to_string())
        .env("SIPP_PORT", free_port().to_string())
        .env("RESULTS", &results)
        .env("IDLE_WAIT", "3")
        .env("IDLE_SECS", "1")
        .env("AFTER_SETTLE", "0")
        .env("IDLE_MAX", "100")
        .output()
        .expect("run benches/load/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = std::fs::read_to_string(&results)
        .unwrap_or_else(|e| panic!("no results file ({e})\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    // A real CSV reader: the free-text columns contain quoted commas.
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().expect("header").clone();
    let row = reader
        .records()
        .next()
        .expect("one row")
        .expect("a well-formed row");
    let field = |name: &str| {
        let i = header.iter().position(|h| h == name).expect(name);
        row.get(i).unwrap_or_default().to_string()
    };
    assert_eq!(field("level"), "smoke");
    assert_eq!(
        field("attempted"),
        "25",
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert_eq!(field("failed"), "0", "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert_eq!(
        field("succeeded"),
        "25",
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");

    // Back to baseline (run.sh reads GET /debug/runtime after start-up, every second, and
    // AFTER_WAIT = 5 s after SIPp's last call).
    let count = |name: &str| -> usize {
        field(name)
            .parse()
            .unwrap_or_else(|e| panic!("{name} = {:?}: {e}\nrow: {row:?}", field(name)))
    };
    let (base, peak, after) = (
        count("tasks_base"),
        count("tasks_peak"),
        count("tasks_after"),
    );
    assert!(peak > base, "the calls' tasks were seen: {row:?}");
    assert_eq!(
        count("calls_active_after"),
        0,
        "no call left active: {row:?}"
    );
    // Each call's task (and its actions' tasks) ends with the call; the media workers,
    // the SIP driver and the HTTP server are part of the base. The slack covers tasks a
    // library may start lazily on first use during the run (a database pool's connection
    // keeper, an HTTP keep-alive connection still closing) — a leak of one task per call
    // would be 25 here.
    const LAZY_TASKS_SLACK: usize = 2;
    assert!(
        after <= base + LAZY_TASKS_SLACK,
        "tasks did not return to baseline: base {base}, peak {peak}, after {after}"
    );
}
