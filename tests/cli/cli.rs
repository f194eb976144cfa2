//! The command line: `tongdai check` accepts the bundled configuration and prompts and
//! refuses bad ones with a message naming the file and the problem.

use std::path::Path;
use std::time::Duration;

use crate::support::process::{Serve, tongdai};

fn write_wav(path: &Path, rate: u32, channels: u16, bits: u16) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("wav");
    for i in 0..1600 {
        if bits == 8 {
            w.write_sample((i % 100) as i8).expect("sample");
        } else {
            w.write_sample((i % 1000) as i16).expect("sample");
        }
    }
    w.finalize().expect("finalize");
}

/// A copy of the bundled prompts with one file replaced.
fn prompts_with(replace: &str, rate: u32, channels: u16, bits: u16) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts/vi");
    for entry in std::fs::read_dir(src).expect("prompts dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy");
    }
    write_wav(
        &dir.path().join(format!("{replace}.wav")),
        rate,
        channels,
        bits,
    );
    dir
}

#[test]
fn check_accepts_the_bundled_defaults() {
    let (ok, out) = tongdai(&["check"], &[]);
    assert!(ok, "{out}");
    assert!(out.contains("ok:"), "{out}");
}

#[test]
fn check_names_a_prompt_with_the_wrong_format() {
    for (rate, channels, bits, words) in [
        (22_050, 1, 16, "22050"),
        (8_000, 2, 16, "channel"),
        (8_000, 1, 8, "bit"),
    ] {
        let dir = prompts_with("goodbye", rate, channels, bits);
        let (ok, out) = tongdai(
            &["check"],
            &[("TONGDAI__PROMPTS__DIR", dir.path().to_str().unwrap())],
        );
        assert!(!ok, "must refuse: {out}");
        assert!(out.contains("goodbye.wav"), "names the file: {out}");
        assert!(
            out.to_lowercase().contains(words),
            "says what is wrong: {out}"
        );
    }
}

#[test]
fn check_names_a_missing_prompt() {
    let dir = prompts_with("extra", 8_000, 1, 16);
    std::fs::remove_file(dir.path().join("goodbye.wav")).expect("rm");
    let (ok, out) = tongdai(
        &["check"],
        &[("TONGDAI__PROMPTS__DIR", dir.path().to_str().unwrap())],
    );
    assert!(!ok);
    // Named with the dialplan file and line that needs it.
    assert!(out.contains("goodbye"), "{out}");
    assert!(
        out.contains("9090.toml:") && out.contains("demo.toml:"),
        "{out}"
    );
}

#[test]
fn serve_refuses_to_start_on_a_bad_prompt() {
    let dir = prompts_with("demo_welcome", 16_000, 1, 16);
    let (ok, out) = tongdai(
        &["serve"],
        &[
            ("TONGDAI__PROMPTS__DIR", dir.path().to_str().unwrap()),
            ("TONGDAI__SIP__LISTEN", "127.0.0.1:0"),
            ("TONGDAI__HTTP__LISTEN", "127.0.0.1:0"),
        ],
    );
    assert!(!ok);
    assert!(
        out.contains("demo_welcome.wav") && out.contains("16000"),
        "{out}"
    );
}

#[test]
fn check_refuses_unknown_configuration_keys_and_bad_values() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[sip]\nlisen = \"0.0.0.0:5060\"\n").expect("write");
    let (ok, out) = tongdai(&["--config", file.to_str().unwrap(), "check"], &[]);
    assert!(!ok);
    assert!(out.contains("lisen"), "{out}");
    let (ok, out) = tongdai(&["check"], &[("TONGDAI__RTP__PORT_MIN", "70000")]);
    assert!(!ok);
    assert!(out.contains("port_min"), "{out}");
    let (ok, out) = tongdai(&["check"], &[("TONGDAI__LOG__FORMAT", "xml")]);
    assert!(!ok);
    assert!(out.contains("xml"), "{out}");
}

#[test]
fn serve_reloads_on_sighup_and_exits_cleanly_on_sigterm() {
    let data = tempfile::tempdir().expect("tmp");
    let db = format!("sqlite://{}/t.db", data.path().display());
    let mut child = Serve::start(
        None,
        &[
            ("TONGDAI__SIP__LISTEN", "127.0.0.1:0"),
            ("TONGDAI__HTTP__LISTEN", "127.0.0.1:0"),
            ("TONGDAI__LOG__FORMAT", "json"),
            ("TONGDAI__SHUTDOWN__GRACE", "1s"),
            ("TONGDAI__DATABASE__URL", &db),
        ],
        &data.path().join("serve.log"),
    );
    let up = child.wait_line(Duration::from_secs(120), |line| {
        // JSON logs: one object per line.
        let value: serde_json::Value = serde_json::from_str(line).expect("json log line");
        value["fields"]["message"] == "tongdai is up"
    });
    assert!(up, "service announced it is up");
    // SIGHUP reloads the dialplans and the service keeps running.
    let hup = child.signal("HUP");
    assert!(hup.success());
    let reloaded = child.wait_line(Duration::from_secs(60), |line| {
        line.contains("dialplans reloaded")
    });
    assert!(reloaded, "SIGHUP reloaded the dialplans");
    let killed = child.signal("TERM");
    assert!(killed.success());
    let status = child.wait(Duration::from_secs(60));
    let rest: Vec<String> = child.rest();
    assert!(
        status.success(),
        "clean exit after SIGTERM: {status:?} {rest:?}"
    );
    assert!(rest.iter().any(|l| l.contains("draining")), "{rest:?}");
}

#[test]
fn handbook_link_prints_the_same_link_each_time_and_refuses_a_missing_article() {
    use tongdai::store::{NewRegistration, RegisterOutcome, Store};
    use tongdai_domain::program::{Channel, Group, ProgramConfig};
    let data = tempfile::tempdir().expect("tmp");
    let db = format!("sqlite://{}/t.db", data.path().display());
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = Store::connect(&db).await.expect("store");
        let outcome = store
            .register(
                NewRegistration {
                    msisdn: "0903123001".into(),
                    group: Group::Two,
                    channel: Channel::Fanpage,
                    specialty: None,
                    call_id: None,
                    name: Some("Lê Văn Nam".into()),
                    fanpage_ref: Some("post-1".into()),
                },
                &ProgramConfig::default(),
                jiff::civil::date(2021, 11, 27),
                "2021-11-27T03:00:00Z".parse().expect("ts"),
            )
            .await
            .expect("register");
        assert!(matches!(outcome, RegisterOutcome::Registered(_)));
        store.close().await;
    });
    let env = [
        ("TONGDAI__DATABASE__URL", db.as_str()),
        ("TONGDAI__HANDBOOK__BASE_URL", "https://9090.example.vn"),
    ];
    let (ok, first) = tongdai(&["handbook", "link", "+84903123001"], &env);
    assert!(ok, "{first}");
    let url = first.lines().next().expect("a line");
    let token = url
        .strip_prefix("https://9090.example.vn/s/")
        .unwrap_or_else(|| panic!("{first}"));
    assert_eq!(token.len(), 22, "{first}");
    assert!(first.contains("not opened yet"), "{first}");
    let (ok, again) = tongdai(&["handbook", "link", "0903123001"], &env);
    assert!(ok, "{again}");
    assert_eq!(again.lines().next(), Some(url));
    let (ok, out) = tongdai(&["handbook", "link", "0903999999"], &env);
    assert!(!ok && out.contains("no registration"), "{out}");
    // A missing article refuses `check` (and so the start), naming the file.
    let (ok, out) = tongdai(
        &["check"],
        &[("TONGDAI__HANDBOOK__ARTICLE", "handbook/missing.md")],
    );
    assert!(!ok && out.contains("handbook/missing.md"), "{out}");
}
