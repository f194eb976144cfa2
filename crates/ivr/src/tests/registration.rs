//! A realistic 9090 registration dialplan, compiled against the real prompt ids and
//! walked through its main paths.

use super::{check, compile};

const REGISTRATION: &str = r#"
# 9090 — online health consultation with Vinmec Hải Phòng: inbound registration.
[dialplan]
name = "9090-registration"
numbers = ["9090", "19009090"]
start = "greet"

[vars]
lang = "vi"
agent_queue = "18001090"

[node.greet]
play = ["reg_greeting"]
next = "identify"

# Eligibility: on the SMS list, inside the window, under the cap, not yet registered.
[node.identify]
action = "check_eligibility"
[node.identify.on]
eligible = "main_menu"
not_eligible = "not_eligible"
window_not_open = "window_not_open"
window_closed = "window_closed"
cap_full = "cap_full"
already_registered = "already_registered"
error = "system_error"

[node.not_eligible]
play = ["reg_not_eligible"]
next = "goodbye"

[node.window_not_open]
play = ["reg_window_not_open", { date = "window_start" }, "reg_to_date", { date = "window_end" }]
next = "goodbye"

[node.window_closed]
play = ["reg_window_closed"]
next = "goodbye"

[node.cap_full]
play = ["reg_cap_full"]
next = "goodbye"

# `status` is waiting | booked | consulted, set by the action.
[node.already_registered]
play = ["reg_already_registered", "reg_status_{{status}}"]
next = "goodbye"

[node.main_menu]
menu = ["reg_main_menu"]
invalid = ["invalid_input"]
timeout = ["no_input"]
exit = "too_many_errors"
[node.main_menu.branch]
"1" = "choose_specialty"
"2" = "details"
"9" = "main_menu"
"0" = "agent"

[node.details]
play = ["reg_program_details"]
next = "main_menu"

[node.choose_specialty]
menu = ["reg_choose_specialty"]
store = "specialty"
invalid = ["invalid_input"]
timeout = ["no_input"]
exit = "too_many_errors"
[node.choose_specialty.branch]
"_Z" = "confirm"
"7" = "unsure"
"8" = "choose_specialty"
"9" = "choose_specialty"

[node.unsure]
set = { specialty = "unsure" }
next = "confirm"

[node.confirm]
menu = ["reg_you_chose", "specialty_{{specialty}}", "reg_confirm_menu"]
invalid = ["invalid_input"]
timeout = ["no_input"]
exit = "too_many_errors"
[node.confirm.branch]
"1" = "register"
"2" = "choose_specialty"

[node.register]
action = "register"
[node.register.on]
ok = "success"
cap_full = "cap_full"
already_registered = "already_registered"
error = "system_error"

[node.success]
play = ["reg_success", "reg_places_left", { number = "places_left" }]
next = "goodbye"

[node.agent]
play = ["transfer_agent"]
transfer = "{{agent_queue}}"

[node.too_many_errors]
play = ["too_many_errors"]
hangup = true

[node.system_error]
play = ["system_error"]
hangup = true

[node.goodbye]
play = ["goodbye"]
hangup = true
"#;

#[test]
fn registration_plan_compiles() {
    let plan = compile(REGISTRATION);
    assert_eq!(plan.name(), "9090-registration");
    assert_eq!(plan.numbers(), ["9090", "19009090"]);
    assert_eq!(plan.node_names().count(), 18);
}

#[test]
fn registers_with_a_specialty() {
    let engine = check(
        REGISTRATION,
        &[("msisdn", "84901234567")],
        "
        > start
        < play reg_greeting
        > finished
        < action check_eligibility
        > result eligible
        < play reg_main_menu
        > finished
        > digit 1
        < play reg_choose_specialty
        > digit 6
        < stop
        < play reg_you_chose specialty_6 reg_confirm_menu
        > finished
        > digit 1
        < action register
        > result ok places_left=421
        < play reg_success reg_places_left num_4 num_tram num_20 num_mot_tone
        > finished
        < play goodbye
        > finished
        < hangup
        ? path greet identify main_menu choose_specialty confirm register success goodbye
        ? digits 161
        ? var specialty=6
        ",
    );
    assert!(engine.error().is_none());
    assert!(engine.warnings().is_empty(), "{:?}", engine.warnings());
}

#[test]
fn unsure_specialty_and_change_of_mind() {
    check(
        REGISTRATION,
        &[],
        "
        > start
        < play reg_greeting
        > finished
        < action check_eligibility
        > result eligible
        < play reg_main_menu
        > finished
        > digit 2
        < play reg_program_details
        > finished
        < play reg_main_menu
        > finished
        > digit 1
        < play reg_choose_specialty
        > finished
        > digit 7
        < play reg_you_chose specialty_unsure reg_confirm_menu
        > finished
        > digit 2
        < play reg_choose_specialty
        > finished
        > digit 0
        < play invalid_input reg_choose_specialty
        > finished
        > digit 3
        < play reg_you_chose specialty_3 reg_confirm_menu
        ? var specialty=3
        ",
    );
}

#[test]
fn eligibility_outcomes() {
    for (outcome, vars, prompts) in [
        ("not_eligible", "", "reg_not_eligible"),
        (
            "window_not_open",
            "window_start=2021-11-26 window_end=2021-12-25",
            "reg_window_not_open word_ngay num_20 num_6 word_thang num_10 num_1 word_nam num_2 num_nghin num_0 num_tram num_20 num_mot_tone reg_to_date word_ngay num_20 num_lam word_thang num_10 num_2 word_nam num_2 num_nghin num_0 num_tram num_20 num_mot_tone",
        ),
        ("window_closed", "", "reg_window_closed"),
        ("cap_full", "", "reg_cap_full"),
        (
            "already_registered",
            "status=booked",
            "reg_already_registered reg_status_booked",
        ),
    ] {
        check(
            REGISTRATION,
            &[],
            &format!(
                "
                > start
                < play reg_greeting
                > finished
                < action check_eligibility
                > result {outcome} {vars}
                < play {prompts}
                > finished
                < play goodbye
                > finished
                < hangup
                "
            ),
        );
    }
    check(
        REGISTRATION,
        &[],
        "
        > start
        < play reg_greeting
        > finished
        < action check_eligibility
        > result error
        < play system_error
        > finished
        < hangup
        ",
    );
}

#[test]
fn agent_transfer_from_the_main_menu() {
    check(
        REGISTRATION,
        &[],
        "
        > start
        < play reg_greeting
        > finished
        < action check_eligibility
        > result eligible
        < play reg_main_menu
        > digit 0
        < stop
        < play transfer_agent
        > finished
        < transfer 18001090
        ",
    );
}

#[test]
fn silent_caller_is_let_go() {
    check(
        REGISTRATION,
        &[],
        "
        > start
        < play reg_greeting
        > finished
        < action check_eligibility
        > result eligible
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
        > finished
        < hangup
        ",
    );
}
