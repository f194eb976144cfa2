//! `tongdai campaign …` and `tongdai dnc …` as an operator types them: the binary on a
//! fresh SQLite store, its output and exit codes (0 done, 2 bad input naming the key or
//! line, 3 no such campaign, 4 refused).

use std::path::Path;

use crate::support::process::tongdai_code;

struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Cli {
        Cli {
            dir: tempfile::tempdir().expect("tmp"),
        }
    }

    fn run(&self, args: &[&str]) -> (i32, String) {
        let db = format!("sqlite://{}/t.db", self.dir.path().display());
        tongdai_code(
            args,
            &[
                ("TONGDAI__DATABASE__URL", &db),
                ("TONGDAI__PROGRAM__TODAY", "2021-12-01"),
            ],
        )
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    }
}

fn sample() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/subscribers-sample.csv")
        .display()
        .to_string()
}

#[test]
fn campaigns_are_created_listed_shown_and_driven() {
    let cli = Cli::new();
    let (code, out) = cli.run(&["import", "subscribers", &sample()]);
    assert_eq!(code, 0, "{out}");
    let policy = cli.file(
        "p.toml",
        "max_concurrent = 10\nmax_cps = 2.5\ncalling_windows = [\"08:00-11:30\", \"13:30-20:00\"]\n",
    );
    let (code, out) = cli.run(&[
        "campaign",
        "create",
        "--kind",
        "invitation",
        "--name",
        "mời-1",
        "--policy",
        &policy,
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("created campaign 1 \"mời-1\" (invitation, dialplan invite): 5 contacts"),
        "{out}"
    );
    // Same name again: refused.
    let (code, out) = cli.run(&[
        "campaign",
        "create",
        "--kind",
        "invitation",
        "--name",
        "mời-1",
    ]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("already exists"), "{out}");
    // A survey with the default policy and dialplan.
    let (code, out) = cli.run(&["campaign", "create", "--kind", "survey", "--name", "ks-1"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("(survey, dialplan survey): 0 contacts"),
        "{out}"
    );

    let (code, out) = cli.run(&["campaign", "list"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("mời-1") && out.contains("ks-1") && out.contains("draft"),
        "{out}"
    );

    for (cmd, state) in [
        ("start", "running"),
        ("pause", "paused"),
        ("resume", "running"),
        ("stop", "stopped"),
    ] {
        let (code, out) = cli.run(&["campaign", cmd, "mời-1"]);
        assert_eq!(code, 0, "{cmd}: {out}");
        assert!(out.contains(&format!(": {state} (was")), "{cmd}: {out}");
    }
    // Illegal transitions and unknown campaigns.
    let (code, out) = cli.run(&["campaign", "resume", "1"]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("cannot resume campaign 1: it is stopped"),
        "{out}"
    );
    let (code, out) = cli.run(&["campaign", "start", "42"]);
    assert_eq!(code, 3, "{out}");
    let (code, out) = cli.run(&["campaign", "show", "nope"]);
    assert_eq!(code, 3, "{out}");

    let (code, out) = cli.run(&["campaign", "show", "1"]);
    assert_eq!(code, 0, "{out}");
    for want in [
        "campaign 1 \"mời-1\": stopped (invitation, dialplan invite)",
        "max_concurrent 10, max_cps 2.5",
        "windows 08:00-11:30 13:30-20:00",
        "contacts 5: waiting 5",
        "attempts 0",
    ] {
        assert!(out.contains(want), "{want:?} in {out}");
    }
    let (code, out) = cli.run(&["campaign", "show", "ks-1"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("survey: 0 respondents"), "{out}");
    assert!(out.contains("satisfaction (1-5): 0 answers"), "{out}");
}

#[test]
fn bad_policies_and_dialplans_are_refused_naming_the_key() {
    let cli = Cli::new();
    let bad = cli.file("bad.toml", "max_cps = 0\nring_timeout = \"2s\"\n");
    let (code, out) = cli.run(&[
        "campaign",
        "create",
        "--kind",
        "invitation",
        "--name",
        "x",
        "--policy",
        &bad,
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("campaign.max_cps") && out.contains("campaign.ring_timeout"),
        "{out}"
    );
    let typo = cli.file("typo.toml", "\nmax_cpss = 3\n");
    let (code, out) = cli.run(&[
        "campaign", "create", "--kind", "survey", "--name", "x", "--policy", &typo,
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("max_cpss") && out.contains("line 2"), "{out}");
    let wrong_kind = cli.file("kind.toml", "kind = \"survey\"\n");
    let (code, out) = cli.run(&[
        "campaign",
        "create",
        "--kind",
        "invitation",
        "--name",
        "x",
        "--policy",
        &wrong_kind,
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("campaign.kind"), "{out}");
    let plan = cli.file("plan.toml", "dialplan = \"invitation\"\n");
    let (code, out) = cli.run(&[
        "campaign",
        "create",
        "--kind",
        "invitation",
        "--name",
        "x",
        "--policy",
        &plan,
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("campaign.dialplan: no dialplan named \"invitation\"")
            && out.contains("invite"),
        "{out}"
    );
    let (code, out) = cli.run(&["campaign", "create", "--kind", "robocall", "--name", "x"]);
    assert_eq!(code, 2, "{out}");
    // Nothing was created by any of them.
    let (_, out) = cli.run(&["campaign", "list"]);
    assert!(out.contains("no campaigns"), "{out}");
}

#[test]
fn the_do_not_call_list() {
    let cli = Cli::new();
    let (code, out) = cli.run(&["dnc", "add", "0903123456", "--note", "asked CSKH"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("added"), "{out}");
    let (code, out) = cli.run(&["dnc", "add", "+84903123456"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("already on the do-not-call list"), "{out}");
    let (code, out) = cli.run(&["dnc", "add", "12345"]);
    assert_eq!(code, 2, "{out}");
    let csv = cli.file("dnc.csv", "msisdn,note\n0903000001,\n0903000002,x\n");
    let (code, out) = cli.run(&["dnc", "import", &csv]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 numbers") && out.contains("2 new"), "{out}");
    let bad = cli.file("bad.csv", "msisdn\n0903000003\n0000\n");
    let (code, out) = cli.run(&["dnc", "import", &bad]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("line 3"), "{out}");
    let (code, out) = cli.run(&["dnc", "list"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("+84903123456") && out.contains("supervisor") && out.contains("asked CSKH"),
        "{out}"
    );
    assert!(out.contains("(3 numbers)"), "{out}");
    assert!(
        !out.contains("+84903000003"),
        "the bad file loaded nothing: {out}"
    );
}
