//! The generated RFC 4733 pcaps are what tshark (a decoder nobody here wrote) reads as
//! telephone-events with the intended key, end bits and timestamps.

use crate::support;

#[test]
fn generated_dtmf_pcap_decodes_in_tshark() {
    if std::process::Command::new("tshark")
        .arg("-v")
        .output()
        .is_err()
    {
        panic!("tshark is needed (scripts/install-test-deps.sh installs it)");
    }
    let dir = tempfile::tempdir().expect("tmp");
    let files = support::pcap::key_presses(dir.path(), "1#", 101);
    let out = std::process::Command::new("tshark")
        .args(["-r"])
        .arg(&files[1])
        .args([
            "-d",
            "udp.port==6000,rtp",
            "-o",
            "rtpevent.event_payload_type_value:101",
        ])
        .args([
            "-T",
            "fields",
            "-e",
            "rtp.timestamp",
            "-e",
            "rtpevent.event_id",
            "-e",
            "rtpevent.end_of_event",
        ])
        .output()
        .expect("tshark");
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 11, "{text}");
    assert!(
        rows.iter().all(|r| r[0] == "176000" && r[1] == "11"),
        "{text}"
    );
    assert_eq!(rows.iter().filter(|r| r[2] == "1").count(), 3, "{text}");
}
