//! `tongdai token new | hash`: the way an operator creates API tokens, and the entry it
//! prints is valid configuration.

use std::io::Write;
use std::process::Stdio;

use crate::support::process::command as tongdai;

#[test]
fn token_new_prints_a_token_and_a_config_entry_that_loads() {
    let out = tongdai()
        .args(["token", "new", "--name", "lan", "--role", "vinmec"])
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let token = text
        .split_whitespace()
        .find(|w| w.starts_with("td_"))
        .expect("a token");
    let entry = &text[text.find("[[api.tokens]]").expect("entry")..];
    assert!(entry.contains("name = \"lan\"") && entry.contains("role = \"vinmec\""));
    assert!(entry.contains(&tongdai::api::hash_token(token)), "{text}");
    assert!(
        !entry.contains(token),
        "the file gets the hash, not the token"
    );

    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("tokens.toml");
    std::fs::write(&file, entry).expect("write");
    let out = tongdai()
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(out.status.success(), "{out:?}");

    // A bad role is refused by the command line.
    let out = tongdai()
        .args(["token", "new", "--name", "x", "--role", "root"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    // A bad hash in the configuration is named.
    std::fs::write(
        &file,
        "[[api.tokens]]\nname = \"x\"\nrole = \"admin\"\nsha256 = \"abc\"\n",
    )
    .expect("write");
    let out = tongdai()
        .args(["check", "--config"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("api.tokens.sha256"),
        "{out:?}"
    );
}

#[test]
fn token_hash_reads_stdin() {
    let mut child = tongdai()
        .args(["token", "hash"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"abc\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}
