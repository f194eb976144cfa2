//! The load harness cannot rot: `benches/load/run.sh smoke` (25 short calls at 5 calls/s
//! through SIPp) against the test build of the service, on free ports. Asserts only that
//! no call failed — never a time or a rate, which a loaded 2-core CI box cannot promise.

use std::net::UdpSocket;
use std::process::Command;

fn free_port() -> u16 {
    // UDP and TCP on the same port for SIP; good enough for a test (the race is tiny).
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[test]
fn load_harness_smoke_level_has_no_failed_calls() {
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
        .env("IDLE_MAX", "100")
        .output()
        .expect("run benches/load/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = std::fs::read_to_string(&results)
        .unwrap_or_else(|e| panic!("no results file ({e})\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let row: Vec<&str> = lines.next().expect("one row").split(',').collect();
    let field = |name: &str| {
        let i = header.iter().position(|h| *h == name).expect(name);
        row[i].to_string()
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
}
