//! Every compile-time check: a small valid plan, broken one way at a time.

use super::ctx;
use crate::{CompileContext, ErrorKind, compile_str, load_dir};

/// Valid. Line numbers in the tests below refer to this text after an edit.
const BASE: &str = r#"[dialplan]
name = "base"
numbers = ["9090"]
start = "greet"

[node.greet]
play = ["reg_greeting"]
next = "identify"

[node.identify]
action = "check_eligibility"
[node.identify.on]
eligible = "main_menu"
default = "bye"

[node.main_menu]
menu = ["reg_main_menu"]
invalid = ["invalid_input"]
timeout = ["no_input"]
exit = "bye"
[node.main_menu.branch]
"1" = "choose_specialty"
"9" = "main_menu"

[node.choose_specialty]
play = ["reg_choose_specialty"]
next = "bye"

[node.bye]
play = ["goodbye"]
hangup = true
"#;

fn errors_of(text: &str) -> Vec<String> {
    errors_with(text, &ctx())
}

fn errors_with(text: &str, ctx: &CompileContext) -> Vec<String> {
    match compile_str("dialplans/9090.toml", text, ctx) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
    }
}

/// Apply one textual edit to BASE (the edit must apply) and return the errors.
fn errors_after(from: &str, to: &str) -> Vec<String> {
    assert!(BASE.contains(from), "edit does not apply: {from}");
    errors_of(&BASE.replacen(from, to, 1))
}

fn assert_one(errors: &[String], expected: &str) {
    assert_eq!(errors, [expected.to_string()], "errors: {errors:#?}");
}

#[test]
fn base_plan_compiles() {
    assert_eq!(errors_of(BASE), Vec::<String>::new());
    let plan = compile_str("dialplans/9090.toml", BASE, &ctx()).expect("valid");
    assert_eq!(plan.name(), "base");
    assert_eq!(plan.numbers(), ["9090"]);
    assert_eq!(plan.start(), "greet");
    assert!(plan.has_node("main_menu"));
}

#[test]
fn syntax_error_reports_its_line() {
    let errors = errors_after("next = \"identify\"", "next = identify");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with("dialplans/9090.toml:8: TOML syntax error: "),
        "{errors:?}"
    );
}

#[test]
fn duplicate_key_is_a_syntax_error() {
    let errors = errors_after("next = \"identify\"", "next = \"identify\"\nnext = \"bye\"");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("dialplans/9090.toml:9: TOML syntax error: duplicate key"));
}

#[test]
fn unknown_keys_everywhere() {
    let text = BASE
        .replacen("start = \"greet\"", "start = \"greet\"\nstrat = \"x\"", 1)
        .replacen("next = \"identify\"", "next = \"identify\"\nrepeat = 2", 1)
        .replacen(
            "invalid = [\"invalid_input\"]",
            "invalid = [{ say = \"x\" }]",
            1,
        )
        + "\n[extra]\nx = 1\n";
    assert_eq!(
        errors_of(&text),
        [
            "dialplans/9090.toml:5: [dialplan]: unknown key `strat` (expected one of: name, description, numbers, start)",
            "dialplans/9090.toml:10: node `greet`: unknown key `repeat` (expected one of: play, next)",
            "dialplans/9090.toml:20: node `main_menu`: unknown key `say` (expected one of: var, number, date, digits)",
            "dialplans/9090.toml:35: unknown key `extra` (expected one of: dialplan, vars, node)",
        ]
    );
}

#[test]
fn key_of_another_kind() {
    assert_one(
        &errors_after("next = \"bye\"", "next = \"bye\"\nexit = \"bye\""),
        "dialplans/9090.toml:28: node `choose_specialty`: key `exit` does not belong in a play node",
    );
}

#[test]
fn node_with_no_kind() {
    assert_one(
        &errors_after("play = [\"reg_choose_specialty\"]\n", ""),
        "dialplans/9090.toml:25: node `choose_specialty`: node has no kind: give exactly one of play, menu, action, set, goto, transfer, hangup",
    );
}

#[test]
fn node_with_several_kinds() {
    assert_one(
        &errors_after(
            "menu = [\"reg_main_menu\"]",
            "menu = [\"reg_main_menu\"]\nplay = [\"goodbye\"]\ngoto = \"bye\"",
        ),
        "dialplans/9090.toml:16: node `main_menu`: node has several kinds (play, menu, goto): give exactly one",
    );
}

#[test]
fn unknown_nodes_in_every_kind_of_reference() {
    let text = BASE
        .replacen("next = \"identify\"", "next = \"identfy\"", 1)
        .replacen("eligible = \"main_menu\"", "eligible = \"main_meny\"", 1)
        .replacen("exit = \"bye\"", "exit = \"by\"", 1)
        .replacen(
            "\"1\" = \"choose_specialty\"",
            "\"1\" = \"chose_specialty\"",
            1,
        )
        .replacen("next = \"bye\"", "goto = \"nowhere\"", 1);
    let errors = errors_of(&text);
    for expected in [
        "dialplans/9090.toml:8: node `greet`: `next` goes to unknown node `identfy`",
        "dialplans/9090.toml:13: node `identify`: outcome `eligible` goes to unknown node `main_meny`",
        "dialplans/9090.toml:20: node `main_menu`: `exit` goes to unknown node `by`",
        "dialplans/9090.toml:22: node `main_menu`: branch \"1\" goes to unknown node `chose_specialty`",
    ] {
        assert!(
            errors.contains(&expected.to_string()),
            "missing {expected}\nin {errors:#?}"
        );
    }
    // `choose_specialty` has both play and goto now: several kinds.
    assert!(
        errors
            .iter()
            .any(|e| e.contains("several kinds (play, goto)"))
    );
    let start = errors_after("start = \"greet\"", "start = \"gret\"");
    assert_one(
        &start,
        "dialplans/9090.toml:4: [dialplan]: `start` goes to unknown node `gret`",
    );
    let goto = errors_after(
        "play = [\"reg_choose_specialty\"]\nnext = \"bye\"",
        "goto = \"nowhere\"",
    );
    assert!(
        goto.contains(
            &"dialplans/9090.toml:26: node `choose_specialty`: `goto` goes to unknown node `nowhere`"
                .to_string()
        ),
        "{goto:#?}"
    );
}

#[test]
fn a_typo_is_reported_once_not_as_unreachable_too() {
    let errors = errors_after(
        "\"1\" = \"choose_specialty\"",
        "\"1\" = \"chose_specialty\"",
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
    // The real node is unreachable now: that is true and worth saying.
    assert!(errors[1].contains("node `choose_specialty`: node is unreachable"));
}

#[test]
fn unknown_action() {
    assert_one(
        &errors_after(
            "action = \"check_eligibility\"",
            "action = \"check_elegibility\"",
        ),
        "dialplans/9090.toml:11: node `identify`: unknown action `check_elegibility`",
    );
}

#[test]
fn unhandled_outcomes_without_default() {
    assert_one(
        &errors_after("default = \"bye\"\n", "not_eligible = \"bye\"\n"),
        "dialplans/9090.toml:12: node `identify`: action `check_eligibility`: outcome(s) \"window_not_open\", \"window_closed\", \"cap_full\", \"already_registered\", \"error\" not handled and no `default`",
    );
}

#[test]
fn bad_default_is_reported_once() {
    assert_one(
        &errors_after("default = \"bye\"", "default = \"by\""),
        "dialplans/9090.toml:14: node `identify`: outcome `default` goes to unknown node `by`",
    );
}

#[test]
fn on_key_that_is_not_an_outcome() {
    assert_one(
        &errors_after(
            "default = \"bye\"",
            "default = \"bye\"\nelligible = \"bye\"",
        ),
        "dialplans/9090.toml:15: node `identify`: `on.elligible`: `elligible` is not an outcome of action `check_eligibility` (it returns \"eligible\", \"not_eligible\", \"window_not_open\", \"window_closed\", \"cap_full\", \"already_registered\", \"error\")",
    );
}

#[test]
fn missing_prompts() {
    assert_one(
        &errors_after("play = [\"goodbye\"]", "play = [\"good_bye\"]"),
        "dialplans/9090.toml:30: node `bye`: unknown prompt `good_bye`",
    );
    assert_one(
        &errors_after(
            "play = [\"goodbye\"]",
            "play = [\"speciality_{{specialty}}\"]",
        ),
        "dialplans/9090.toml:30: node `bye`: no prompt matches `speciality_{{specialty}}`",
    );
    assert_eq!(
        errors_after(
            "play = [\"goodbye\"]",
            "play = [\"specialty_{{specialty}}\", \"reg_status_{{s}}\"]"
        ),
        Vec::<String>::new()
    );
    let mut no_numbers = ctx();
    no_numbers
        .prompts
        .retain(|p| p != "num_lam" && p != "num_trieu");
    assert_eq!(
        errors_with(
            &BASE.replacen(
                "play = [\"goodbye\"]",
                "play = [{ number = \"places_left\" }]",
                1
            ),
            &no_numbers
        ),
        [
            "dialplans/9090.toml:30: node `bye`: `{ number = … }` needs prompts that do not exist: num_lam, num_trieu"
        ]
    );
    let mut no_words = ctx();
    no_words.prompts.remove("word_thang");
    assert_eq!(
        errors_with(
            &BASE.replacen(
                "play = [\"goodbye\"]",
                "play = [{ date = \"d\" }, { digits = \"m\" }, { var = \"v\" }]",
                1
            ),
            &no_words
        ),
        [
            "dialplans/9090.toml:30: node `bye`: `{ date = … }` needs prompts that do not exist: word_thang"
        ]
    );
}

#[test]
fn unreachable_node() {
    assert_one(
        &errors_after("[node.bye]", "[node.orphan]\ngoto = \"bye\"\n\n[node.bye]"),
        "dialplans/9090.toml:29: node `orphan`: node is unreachable from start node `greet`",
    );
}

#[test]
fn branch_keys_that_can_never_be_entered() {
    // max_digits = 1, no terminator: "#" is an ordinary key here.
    assert_eq!(
        errors_after(
            "\"9\" = \"main_menu\"",
            "\"9\" = \"main_menu\"\n\"12\" = \"bye\"\n\"#\" = \"bye\"\n\"x\" = \"bye\"\n\"\" = \"bye\"",
        ),
        [
            "dialplans/9090.toml:24: node `main_menu`: branch \"12\" can never be entered: it has 2 keys but max_digits = 1",
            "dialplans/9090.toml:26: node `main_menu`: branch \"x\" can never be entered: `x` is not a DTMF key",
            "dialplans/9090.toml:27: node `main_menu`: branch \"\" can never be entered: the key is empty",
        ]
    );
    // With a terminator and two digits.
    let text = BASE.replacen(
        "exit = \"bye\"",
        "exit = \"bye\"\nterminator = \"#\"\nmax_digits = 2",
        1,
    );
    let ok = text.replacen(
        "\"9\" = \"main_menu\"",
        "\"9\" = \"main_menu\"\n\"1*\" = \"bye\"\n\"_XX\" = \"bye\"",
        1,
    );
    assert_eq!(errors_of(&ok), Vec::<String>::new());
    let bad = text.replacen(
        "\"9\" = \"main_menu\"",
        "\"9#\" = \"main_menu\"\n\"_XXX\" = \"bye\"\n\"_XA\" = \"bye\"\n\"_xa\" = \"bye\"",
        1,
    );
    assert_eq!(
        errors_of(&bad),
        [
            "dialplans/9090.toml:25: node `main_menu`: branch \"9#\" can never be entered: it contains the terminator `#`, which ends the entry",
            "dialplans/9090.toml:26: node `main_menu`: branch \"_XXX\" can never be entered: it has 3 keys but max_digits = 2",
            "dialplans/9090.toml:28: node `main_menu`: `branch \"_xa\"`: same key as branch \"_XA\"",
        ]
    );
}

#[test]
fn menu_without_branches() {
    let errors = errors_after(
        "[node.main_menu.branch]\n\"1\" = \"choose_specialty\"\n\"9\" = \"main_menu\"\n",
        "branch = {}\n",
    );
    // Without its branch, `choose_specialty` is unreachable too: also true.
    assert_eq!(
        errors,
        [
            "dialplans/9090.toml:21: node `main_menu`: menu has no branches",
            "dialplans/9090.toml:23: node `choose_specialty`: node is unreachable from start node `greet`",
        ]
    );
    let errors = errors_after(
        "[node.main_menu.branch]\n\"1\" = \"choose_specialty\"\n\"9\" = \"main_menu\"\n",
        "",
    );
    assert!(
        errors.contains(
            &"dialplans/9090.toml:16: node `main_menu`: menu has no branches".to_string()
        ),
        "{errors:#?}"
    );
}

#[test]
fn start_missing() {
    let errors = errors_after("start = \"greet\"\n", "");
    assert_eq!(
        errors,
        ["dialplans/9090.toml:1: [dialplan]: missing `start`"]
    );
    assert_eq!(
        errors_of("[node.bye]\nhangup = true\n"),
        ["dialplans/9090.toml:1: missing `[dialplan]`"]
    );
}

#[test]
fn invalid_durations_and_counts() {
    let errors = errors_after(
        "exit = \"bye\"",
        "exit = \"bye\"\nfirst_digit_timeout = \"5 seconds please\"\ninter_digit_timeout = \"0s\"\nmax_digits = 0\nmax_failures = \"3\"\nbarge_in = \"yes\"\nterminator = \"##\"",
    );
    assert_eq!(errors.len(), 6, "{errors:#?}");
    assert!(errors[0].starts_with("dialplans/9090.toml:21: node `main_menu`: `first_digit_timeout` = \"5 seconds please\" is not a valid duration"));
    assert_eq!(
        errors[1],
        "dialplans/9090.toml:22: node `main_menu`: `inter_digit_timeout` = \"0s\" is not a valid duration: it must be longer than zero"
    );
    assert_eq!(
        errors[2],
        "dialplans/9090.toml:23: node `main_menu`: `max_digits`: 0 is out of range 1..=32"
    );
    assert_eq!(
        errors[3],
        "dialplans/9090.toml:24: node `main_menu`: `max_failures` must be an integer"
    );
    assert_eq!(
        errors[4],
        "dialplans/9090.toml:25: node `main_menu`: `barge_in` must be true or false"
    );
    assert_eq!(
        errors[5],
        "dialplans/9090.toml:26: node `main_menu`: `terminator`: must be one DTMF key (usually \"#\")"
    );
    assert_one(
        &errors_after(
            "exit = \"bye\"",
            "exit = \"bye\"\nfirst_digit_timeout = \"5m\"",
        ),
        "dialplans/9090.toml:21: node `main_menu`: `first_digit_timeout` = \"5m\" is not a valid duration: it must be at most 1m",
    );
}

#[test]
fn wrong_types_and_bad_templates() {
    let errors = errors_after(
        "[node.bye]",
        "[node.s]\nset = { \"bad name\" = \"x\", ok = \"{{oops\", n = 3 }\nnext = \"bye\"\n\n[node.h]\nhangup = false\n\n[node.bye]",
    );
    let joined = errors.join("\n");
    assert!(
        joined.contains(":30: node `s`: `set`: `bad name` is not a variable name"),
        "{joined}"
    );
    assert!(
        joined.contains(":30: node `s`: `set.ok`: `{{` without `}}`"),
        "{joined}"
    );
    assert!(
        joined.contains(":30: node `s`: `n` must be a string"),
        "{joined}"
    );
    assert!(
        joined.contains(":34: node `h`: `hangup` must be true"),
        "{joined}"
    );
}

#[test]
fn all_errors_are_collected_in_line_order() {
    let text = BASE
        .replacen("play = [\"reg_greeting\"]", "play = [\"reg_greting\"]", 1)
        .replacen("action = \"check_eligibility\"", "action = \"nope\"", 1)
        .replacen("play = [\"goodbye\"]", "play = [\"goodby\"]", 1);
    let errors = errors_of(&text);
    assert_eq!(
        errors,
        [
            "dialplans/9090.toml:7: node `greet`: unknown prompt `reg_greting`",
            "dialplans/9090.toml:11: node `identify`: unknown action `nope`",
            "dialplans/9090.toml:30: node `bye`: unknown prompt `goodby`",
        ]
    );
}

#[test]
fn error_kinds_are_inspectable() {
    let errors = compile_str(
        "dialplans/9090.toml",
        &BASE.replacen(
            "\"1\" = \"choose_specialty\"",
            "\"1\" = \"chose_specialty\"",
            1,
        ),
        &ctx(),
    )
    .expect_err("broken");
    assert_eq!(errors[0].line, Some(22));
    assert_eq!(errors[0].context.as_deref(), Some("node `main_menu`"));
    assert_eq!(
        errors[0].kind,
        ErrorKind::UnknownNode {
            via: "branch \"1\"".into(),
            target: "chose_specialty".into()
        }
    );
}

#[test]
fn load_dir_rejects_a_number_used_twice() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).expect("write");
    };
    write("9090.toml", BASE);
    write(
        "survey.toml",
        &BASE
            .replacen("name = \"base\"", "name = \"survey\"", 1)
            .replacen("numbers = [\"9090\"]", "numbers = [\"9091\", \"9090\"]", 1),
    );
    write("notes.txt", "not a dialplan");
    let errors = load_dir(dir.path(), &ctx()).expect_err("duplicate");
    let survey = dir.path().join("survey.toml").display().to_string();
    let first = dir.path().join("9090.toml").display().to_string();
    assert_eq!(
        errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        [format!(
            "{survey}:3: [dialplan]: number \"9090\" is already answered by {first}"
        )]
    );
    write(
        "survey.toml",
        &BASE.replacen("numbers = [\"9090\"]", "numbers = [\"9091\"]", 1),
    );
    let errors = load_dir(dir.path(), &ctx()).expect_err("duplicate name");
    assert!(
        errors[0]
            .to_string()
            .contains("dialplan name \"base\" is already used by")
    );
}

#[test]
fn load_dir_maps_numbers_to_shared_plans() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("9090.toml"), BASE).expect("write");
    let plans = load_dir(dir.path(), &ctx()).expect("loads");
    assert_eq!(plans.len(), 1);
    assert_eq!(plans.numbers().collect::<Vec<_>>(), ["9090"]);
    assert_eq!(plans.files(), [dir.path().join("9090.toml")]);
    let a = plans.for_number("9090").expect("9090");
    let b = plans.by_name("base").expect("by name");
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    assert!(plans.for_number("1900").is_none());
    // A reload is a new set; a call holding `a` keeps its plan.
    std::fs::write(
        dir.path().join("9090.toml"),
        BASE.replace("reg_greeting", "goodbye"),
    )
    .expect("write");
    let reloaded = load_dir(dir.path(), &ctx()).expect("reloads");
    assert!(!std::sync::Arc::ptr_eq(
        &a,
        &reloaded.for_number("9090").expect("9090")
    ));
    assert_eq!(a.name(), "base");
    let missing = load_dir(&dir.path().join("nope"), &ctx()).expect_err("no dir");
    assert!(
        missing[0].to_string().contains("cannot read"),
        "{}",
        missing[0]
    );
}

#[test]
fn outbound_plans_answer_no_number_and_are_found_by_name() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("9090.toml"), BASE).expect("write");
    // `numbers = []` and no `numbers` key at all both mean "outbound only".
    std::fs::write(
        dir.path().join("invite.toml"),
        BASE.replacen("name = \"base\"", "name = \"invite\"", 1)
            .replacen("numbers = [\"9090\"]", "numbers = []", 1),
    )
    .expect("write");
    std::fs::write(
        dir.path().join("survey.toml"),
        BASE.replacen("name = \"base\"\n", "", 1)
            .replacen("numbers = [\"9090\"]\n", "", 1),
    )
    .expect("write");
    let plans = load_dir(dir.path(), &ctx()).expect("loads");
    assert_eq!(plans.len(), 3);
    assert_eq!(plans.numbers().collect::<Vec<_>>(), ["9090"]);
    assert_eq!(
        plans.names().collect::<Vec<_>>(),
        ["base", "invite", "survey"]
    );
    let invite = plans.by_name("invite").expect("by name");
    assert!(invite.numbers().is_empty());
    // The plan name defaults to the file stem.
    let survey = plans.by_name("survey").expect("named after its file");
    assert!(survey.numbers().is_empty());
    assert_eq!(survey.start(), "greet");
    assert!(plans.for_number("").is_none());
    assert!(plans.by_name("invitation").is_none());
    // Two outbound plans share the "no numbers" without clashing.
    assert!(!std::sync::Arc::ptr_eq(&invite, &survey));
}

#[test]
fn syntax_errors_from_a_file_carry_its_path_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.toml"),
        "[dialplan]\nname = \"x\"\nstart = [\n",
    )
    .expect("write");
    let errors = load_dir(dir.path(), &ctx()).expect_err("syntax");
    let file = dir.path().join("bad.toml").display().to_string();
    assert!(
        errors[0].to_string().starts_with(&format!("{file}:")),
        "{}",
        errors[0]
    );
    assert!(errors[0].to_string().contains("TOML syntax error"));
}
