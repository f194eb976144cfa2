//! Engine behaviour, one script per rule.

use super::check;

/// A small plan exercising one menu; most scripts run on it.
const MENU: &str = r#"
[dialplan]
name = "menu"
numbers = ["1000"]
start = "greet"

[node.greet]
play = ["reg_greeting"]
next = "main"

[node.main]
menu = ["reg_main_menu"]
invalid = ["invalid_input"]
timeout = ["no_input"]
exit = "too_many"
store = "choice"
[node.main.branch]
"1" = "one"
"2" = "two"
"9" = "main"

[node.one]
play = ["specialty_1"]
hangup = true

[node.two]
play = ["specialty_2"]
hangup = true

[node.too_many]
play = ["too_many_errors"]
hangup = true
"#;

#[test]
fn happy_path_through_a_menu() {
    let engine = check(
        MENU,
        &[],
        "
        > start
        < play reg_greeting
        ? timeout none
        > finished
        < play reg_main_menu
        > finished
        ? timeout 5000
        > digit 1
        < play specialty_1
        > finished
        < hangup
        ? finished true
        ? path greet main one
        ? var choice=1
        ? var last_digits=1
        ? digits 1
        ",
    );
    assert!(engine.error().is_none());
}

#[test]
fn first_digit_timer_starts_when_the_menu_prompt_finishes() {
    check(
        MENU,
        &[],
        "
        > start
        < play reg_greeting
        > finished
        < play reg_main_menu
        // A long prompt: no timer runs while it plays.
        ? timeout none
        > wait 60000
        > finished
        ? timeout 5000
        > wait 4999
        > wait 1
        < play no_input reg_main_menu
        ",
    );
}

#[test]
fn invalid_key_then_valid_key() {
    check(
        MENU,
        &[],
        "
        > start
        < play reg_greeting
        > finished
        < play reg_main_menu
        > finished
        > digit 7
        < play invalid_input reg_main_menu
        ? var last_digits=7
        ? var choice=<unset>
        > finished
        > digit 2
        < play specialty_2
        ? var choice=2
        ? path greet main two
        ",
    );
}

#[test]
fn third_invalid_entry_goes_to_exit_without_the_invalid_prompt() {
    check(
        MENU,
        &[],
        "
        > start
        < play reg_greeting
        > finished
        < play reg_main_menu
        > finished
        > digit 5
        < play invalid_input reg_main_menu
        > finished
        > digit 6
        < play invalid_input reg_main_menu
        > finished
        > digit 7
        < play too_many_errors
        > finished
        < hangup
        ? path greet main too_many
        ? digits 567
        ",
    );
}

#[test]
fn third_silence_goes_to_exit() {
    check(
        MENU,
        &[],
        "
        > start
        < play reg_greeting
        > finished
        < play reg_main_menu
        > finished
        > wait 5000
        < play no_input reg_main_menu
        > finished
        > wait 5000
        < play no_input reg_main_menu
        > finished
        > wait 5000
        < play too_many_errors
        ? var last_digits=<unset>
        ",
    );
}

#[test]
fn failures_and_timeouts_are_counted_separately_and_reset_per_visit() {
    check(
        MENU,
        &[],
        "
        > start
        < play reg_greeting
        > finished
        < play reg_main_menu
        > finished
        > digit 5
        < play invalid_input reg_main_menu
        > finished
        > wait 5000
        < play no_input reg_main_menu
        > finished
        > digit 6
        < play invalid_input reg_main_menu
        > finished
        > wait 5000
        < play no_input reg_main_menu
        > finished
        // '9' re-enters the menu: a new visit, counters back to zero.
        > digit 9
        < play reg_main_menu
        > finished
        > digit 5
        < play invalid_input reg_main_menu
        > finished
        > digit 5
        < play invalid_input reg_main_menu
        > finished
        > digit 5
        < play too_many_errors
        ? path greet main main too_many
        ",
    );
}

const MULTI: &str = r##"
[dialplan]
name = "multi"
numbers = []
start = "code"

[node.code]
menu = ["reg_choose_specialty"]
max_digits = 4
first_digit_timeout = "4s"
inter_digit_timeout = "2s"
terminator = "#"
invalid = ["invalid_input"]
exit = "bye"
store = "code"
[node.code.branch]
"12" = "twelve"
"1234" = "full"
"_9XX" = "nine_hundreds"
"any" = "other"

[node.twelve]
play = ["specialty_1"]
hangup = true
[node.full]
play = ["specialty_2"]
hangup = true
[node.nine_hundreds]
play = ["specialty_3"]
hangup = true
[node.other]
play = ["specialty_4"]
hangup = true
[node.bye]
hangup = true
"##;

#[test]
fn inter_digit_timeout_ends_a_multi_digit_entry() {
    check(
        MULTI,
        &[],
        "
        > start
        < play reg_choose_specialty
        > finished
        ? timeout 4000
        > wait 3000
        > digit 1
        ? timeout 2000
        > wait 1500
        > digit 2
        ? timeout 2000
        > wait 1999
        > wait 1
        < play specialty_1
        ? var code=12
        ",
    );
}

#[test]
fn max_digits_ends_the_entry_at_once() {
    check(
        MULTI,
        &[],
        "
        > start
        < play reg_choose_specialty
        > finished
        > digits 1234
        < play specialty_2
        ? var code=1234
        ",
    );
}

#[test]
fn terminator_ends_the_entry_and_is_not_part_of_it() {
    check(
        MULTI,
        &[],
        "
        > start
        < play reg_choose_specialty
        > finished
        > digits 12#
        < play specialty_1
        ? var code=12
        ? digits 12#
        ",
    );
}

#[test]
fn terminator_alone_is_an_invalid_entry() {
    check(
        MULTI,
        &[],
        "
        > start
        < play reg_choose_specialty
        > finished
        > digit #
        < play invalid_input reg_choose_specialty
        ? var last_digits=
        ",
    );
}

#[test]
fn patterns_then_any() {
    check(
        MULTI,
        &[],
        "
        > start
        < play reg_choose_specialty
        > finished
        > digits 907#
        < play specialty_3
        ",
    );
    check(
        MULTI,
        &[],
        "
        > start
        < play reg_choose_specialty
        > finished
        > digits 55#
        < play specialty_4
        ? var code=55
        ",
    );
}

#[test]
fn barge_in_stops_the_prompt_and_counts_the_key() {
    check(
        MULTI,
        &[],
        "
        > start
        < play reg_choose_specialty
        > digit 1
        < stop
        ? timeout 2000
        // The stopped playback sends no `finished`; a stray one changes nothing.
        > finished
        ? timeout 2000
        > digits 2#
        < play specialty_1
        ",
    );
    check(
        MENU,
        &[],
        "
        > start
        < play reg_greeting
        > finished
        < play reg_main_menu
        > digit 2
        < stop
        < play specialty_2
        ",
    );
}

#[test]
fn barge_in_also_works_during_the_retry_prompts() {
    check(
        MENU,
        &[],
        "
        > start
        < play reg_greeting
        > finished
        < play reg_main_menu
        > finished
        > digit 4
        < play invalid_input reg_main_menu
        > digit 1
        < stop
        < play specialty_1
        ",
    );
}

#[test]
fn without_barge_in_keys_during_the_prompt_are_ignored() {
    let plan = MENU.replace("store = \"choice\"", "store = \"choice\"\nbarge_in = false");
    check(
        &plan,
        &[],
        "
        > start
        < play reg_greeting
        > finished
        < play reg_main_menu
        > digit 1
        > finished
        ? timeout 5000
        > digit 2
        < play specialty_2
        ? digits 12
        ",
    );
}

#[test]
fn keys_during_a_play_node_are_ignored_but_recorded() {
    check(
        MENU,
        &[],
        "
        > start
        < play reg_greeting
        > digit 1
        > finished
        < play reg_main_menu
        > finished
        ? timeout 5000
        ? digits 1
        ? var last_digits=<unset>
        ",
    );
}

const ACTIONS: &str = r#"
[dialplan]
name = "actions"
numbers = ["2000"]
start = "lookup"

[node.lookup]
action = "lookup"
[node.lookup.on]
found = "found"
missing = "missing"

[node.found]
play = ["reg_status_{{status}}"]
hangup = true

[node.missing]
play = ["reg_not_eligible"]
hangup = true
"#;

#[test]
fn action_outcomes_route_and_merge_variables() {
    check(
        ACTIONS,
        &[("msisdn", "84901234567")],
        "
        > start
        < action lookup
        // Keys and prompt completions are ignored while the action runs.
        > digit 1
        > finished
        > result found status=booked
        < play reg_status_booked
        ? var status=booked
        ? var msisdn=84901234567
        ? path lookup found
        ",
    );
    check(
        ACTIONS,
        &[],
        "
        > start
        < action lookup
        > result missing
        < play reg_not_eligible
        > finished
        < hangup
        ",
    );
}

#[test]
fn action_vars_are_a_snapshot_of_the_call_variables() {
    let mut engine = super::replay(ACTIONS, &[("msisdn", "849")], "> start").0;
    // `replay` drained the outputs; start a fresh one to look inside.
    engine = super::super::Engine::new(engine.plan().clone(), engine.vars().clone());
    engine.start(std::time::Instant::now());
    match engine.poll_output() {
        Some(super::super::Output::RunAction { name, vars }) => {
            assert_eq!(name, "lookup");
            assert_eq!(vars.get("msisdn").map(String::as_str), Some("849"));
        }
        other => panic!("expected RunAction, got {other:?}"),
    }
}

#[test]
fn undeclared_outcome_takes_the_error_path() {
    check(
        ACTIONS,
        &[],
        "
        > start
        < action lookup
        > result timeout
        < hangup
        ? finished true
        ? error node `lookup`: action `lookup` returned outcome `timeout`, which has no route
        ",
    );
}

#[test]
fn default_catches_other_outcomes() {
    let plan = ACTIONS.replace("missing = \"missing\"", "default = \"missing\"");
    check(
        &plan,
        &[],
        "
        > start
        < action lookup
        > result missing
        < play reg_not_eligible
        ",
    );
}

#[test]
fn set_interpolates_against_the_values_on_entry() {
    let plan = r#"
[dialplan]
name = "set"
numbers = []
start = "set"
[vars]
a = "1"
[node.set]
set = { a = "2", b = "specialty_{{a}}", c = "{{missing}}x" }
next = "say"
[node.say]
play = ["specialty_{{a}}", { var = "b" }]
hangup = true
"#;
    check(
        plan,
        &[],
        "
        > start
        < play specialty_2 specialty_1
        ? var b=specialty_1
        ? var c=x
        ",
    );
}

#[test]
fn dynamic_prompts_are_expanded() {
    let plan = r#"
[dialplan]
name = "dynamic"
numbers = []
start = "say"
[node.say]
play = [
  { var = "status_prompt" },
  { number = "places_left" },
  { date = "window_start" },
  { digits = "msisdn" },
  "specialty_{{specialty}}",
]
hangup = true
"#;
    check(
        plan,
        &[
            ("status_prompt", "reg_status_waiting"),
            ("places_left", "121"),
            ("window_start", "2021-11-26"),
            ("msisdn", "0905*"),
            ("specialty", "unsure"),
        ],
        "
        > start
        < play reg_status_waiting num_1 num_tram num_20 num_mot_tone word_ngay num_20 num_6 word_thang num_10 num_1 word_nam num_2 num_nghin num_0 num_tram num_20 num_mot_tone digit_0 digit_9 digit_0 digit_5 digit_star specialty_unsure
        > finished
        < hangup
        ",
    );
}

#[test]
fn unspeakable_dynamic_items_are_skipped_with_a_warning() {
    let plan = r#"
[dialplan]
name = "dynamic"
numbers = []
start = "say"
[node.say]
play = ["reg_success", { number = "places_left" }, { date = "d" }, "specialty_{{specialty}}", { var = "nope" }]
hangup = true
"#;
    let engine = check(
        plan,
        &[
            ("places_left", "-3"),
            ("d", "26/11/2021"),
            ("specialty", "9"),
        ],
        "
        > start
        < play reg_success
        > finished
        < hangup
        ",
    );
    assert_eq!(engine.warnings().len(), 4, "{:?}", engine.warnings());
    assert!(engine.warnings()[2].contains("specialty_9"));
}

#[test]
fn all_prompts_skipped_means_no_play_at_all() {
    let plan = r#"
[dialplan]
name = "silent"
numbers = []
start = "say"
[node.say]
play = [{ var = "nope" }]
hangup = true
"#;
    check(plan, &[], "> start\n< hangup");
}

#[test]
fn transfer_after_its_prompt() {
    let plan = r#"
[dialplan]
name = "transfer"
numbers = []
start = "agent"
[vars]
queue = "18001090"
[node.agent]
play = ["transfer_agent"]
transfer = "{{queue}}"
"#;
    check(
        plan,
        &[],
        "
        > start
        < play transfer_agent
        > digit 1
        > finished
        < transfer 18001090
        ? finished true
        > digit 2
        > finished
        ? digits 1
        ",
    );
}

#[test]
fn hangup_without_prompts_is_immediate() {
    let plan = r#"
[dialplan]
name = "bye"
numbers = []
start = "jump"
[node.jump]
goto = "bye"
[node.bye]
hangup = true
"#;
    check(
        plan,
        &[],
        "
        > start
        < hangup
        ? path jump bye
        ? finished true
        > start
        ",
    );
}

#[test]
fn loop_without_prompts_or_gathers_is_cut() {
    let plan = r#"
[dialplan]
name = "loop"
numbers = []
start = "a"
[node.a]
set = { n = "{{n}}1" }
next = "b"
[node.b]
goto = "a"
"#;
    let engine = check(
        plan,
        &[],
        "
        > start
        < hangup
        ? finished true
        ? error more than 100 transitions without a prompt or a gather (loop at node `a`)
        ",
    );
    assert_eq!(engine.path().len(), 100);
}

#[test]
fn a_loop_through_prompts_is_not_cut() {
    let plan = r#"
[dialplan]
name = "loop"
numbers = []
start = "a"
[node.a]
play = ["goodbye"]
next = "b"
[node.b]
goto = "a"
"#;
    let mut script = String::from("> start\n< play goodbye\n");
    for _ in 0..150 {
        script.push_str("> finished\n< play goodbye\n");
    }
    let engine = check(plan, &[], &script);
    assert!(engine.error().is_none());
}

#[test]
fn a_loop_through_actions_is_cut() {
    let plan = r#"
[dialplan]
name = "loop"
numbers = []
start = "a"
[node.a]
action = "lookup"
on = { default = "a" }
"#;
    let mut script = String::from("> start\n< action lookup\n");
    for _ in 0..99 {
        script.push_str("> result found\n< action lookup\n");
    }
    script.push_str("> result found\n< hangup\n? finished true\n");
    check(plan, &[], &script);
}

#[test]
fn menu_with_no_prompts_gathers_at_once() {
    let plan = r#"
[dialplan]
name = "quiet"
numbers = []
start = "m"
[node.m]
menu = []
max_timeouts = 1
exit = "bye"
branch = { "1" = "bye" }
[node.bye]
play = ["goodbye"]
hangup = true
"#;
    check(
        plan,
        &[],
        "
        > start
        ? timeout 5000
        > wait 5000
        < play goodbye
        ",
    );
}

#[test]
fn initial_vars_are_overridden_by_the_call() {
    let plan = r#"
[dialplan]
name = "vars"
numbers = []
start = "bye"
[vars]
lang = "vi"
queue = "1"
[node.bye]
hangup = true
"#;
    check(
        plan,
        &[("queue", "2")],
        "
        ? var lang=vi
        ? var queue=2
        ",
    );
}
