//! The first call flow, sans-IO: welcome, gather one digit, play it back, goodbye.
//!
//! It proves the whole path (SIP → media → DTMF → prompts → BYE) before the dialplan
//! engine exists. Inputs are the call's events with `now`; outputs are actions for the
//! media session and the leg.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// What the flow asks the call to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FlowAction {
    Play(String),
    StopPlayback,
    Hangup,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    Welcome,
    Gathering,
    /// Playing the read-back queue; hang up when it is empty.
    Closing,
    Done,
}

pub struct DemoFlow {
    state: State,
    gather_timeout: Duration,
    deadline: Option<Instant>,
    queue: VecDeque<String>,
    actions: VecDeque<FlowAction>,
    digits: String,
}

/// The prompt id that speaks one key.
pub fn digit_prompt(digit: char) -> String {
    match digit {
        '*' => "digit_star".to_string(),
        '#' => "digit_pound".to_string(),
        d => format!("digit_{}", d.to_ascii_lowercase()),
    }
}

/// Prompt ids this flow can ask for (checked at start-up).
pub fn required_prompts() -> Vec<String> {
    let mut ids: Vec<String> = [
        "demo_welcome",
        "demo_you_pressed",
        "demo_no_input",
        "goodbye",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ids.extend("0123456789*#ABCD".chars().map(digit_prompt));
    ids
}

impl DemoFlow {
    pub fn new(gather_timeout: Duration) -> Self {
        DemoFlow {
            state: State::Idle,
            gather_timeout,
            deadline: None,
            queue: VecDeque::new(),
            actions: VecDeque::new(),
            digits: String::new(),
        }
    }

    /// The call is answered and confirmed.
    pub fn start(&mut self, _now: Instant) {
        if self.state == State::Idle {
            self.state = State::Welcome;
            self.actions
                .push_back(FlowAction::Play("demo_welcome".into()));
        }
    }

    pub fn on_prompt_finished(&mut self, now: Instant) {
        match self.state {
            State::Welcome => {
                self.state = State::Gathering;
                self.deadline = Some(now + self.gather_timeout);
            }
            State::Closing => self.play_next(),
            _ => {}
        }
    }

    pub fn on_digit(&mut self, _now: Instant, digit: char) {
        match self.state {
            State::Welcome | State::Gathering => {
                if self.state == State::Welcome {
                    // Barge-in: a key during the welcome stops it.
                    self.actions.push_back(FlowAction::StopPlayback);
                }
                self.digits.push(digit);
                self.deadline = None;
                self.close_with(&["demo_you_pressed".to_string(), digit_prompt(digit)]);
            }
            _ => {}
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Gathering && self.deadline.is_some_and(|d| d <= now) {
            self.deadline = None;
            self.close_with(&["demo_no_input".to_string()]);
        }
    }

    pub fn poll_action(&mut self) -> Option<FlowAction> {
        self.actions.pop_front()
    }

    /// Digits collected so far (for the call record).
    pub fn digits(&self) -> &str {
        &self.digits
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    fn close_with(&mut self, prompts: &[String]) {
        self.state = State::Closing;
        self.queue.extend(prompts.iter().cloned());
        self.queue.push_back("goodbye".into());
        self.play_next();
    }

    fn play_next(&mut self) {
        match self.queue.pop_front() {
            Some(id) => self.actions.push_back(FlowAction::Play(id)),
            None => {
                self.state = State::Done;
                self.actions.push_back(FlowAction::Hangup);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(f: &mut DemoFlow) -> Vec<FlowAction> {
        std::iter::from_fn(|| f.poll_action()).collect()
    }
    fn play(id: &str) -> FlowAction {
        FlowAction::Play(id.into())
    }

    #[test]
    fn digit_after_welcome_is_read_back_then_goodbye_and_hangup() {
        let t0 = Instant::now();
        let mut f = DemoFlow::new(Duration::from_secs(8));
        f.start(t0);
        assert_eq!(drain(&mut f), vec![play("demo_welcome")]);
        f.on_prompt_finished(t0 + Duration::from_secs(3));
        assert_eq!(f.poll_timeout(), Some(t0 + Duration::from_secs(11)));
        f.on_digit(t0 + Duration::from_secs(4), '5');
        assert_eq!(drain(&mut f), vec![play("demo_you_pressed")]);
        f.on_prompt_finished(t0 + Duration::from_secs(5));
        assert_eq!(drain(&mut f), vec![play("digit_5")]);
        f.on_digit(t0 + Duration::from_secs(5), '6');
        assert!(drain(&mut f).is_empty(), "only one digit is gathered");
        f.on_prompt_finished(t0 + Duration::from_secs(6));
        assert_eq!(drain(&mut f), vec![play("goodbye")]);
        f.on_prompt_finished(t0 + Duration::from_secs(8));
        assert_eq!(drain(&mut f), vec![FlowAction::Hangup]);
        assert!(f.is_done());
        assert_eq!(f.digits(), "5");
    }

    #[test]
    fn digit_during_welcome_barges_in() {
        let t0 = Instant::now();
        let mut f = DemoFlow::new(Duration::from_secs(8));
        f.start(t0);
        drain(&mut f);
        f.on_digit(t0 + Duration::from_millis(500), '#');
        assert_eq!(
            drain(&mut f),
            vec![FlowAction::StopPlayback, play("demo_you_pressed")]
        );
        f.on_prompt_finished(t0 + Duration::from_secs(1));
        assert_eq!(drain(&mut f), vec![play("digit_pound")]);
    }

    #[test]
    fn silence_times_out_to_no_input_and_goodbye() {
        let t0 = Instant::now();
        let mut f = DemoFlow::new(Duration::from_secs(8));
        f.start(t0);
        drain(&mut f);
        f.on_prompt_finished(t0 + Duration::from_secs(3));
        f.handle_timeout(t0 + Duration::from_secs(10));
        assert!(drain(&mut f).is_empty(), "not yet");
        f.handle_timeout(t0 + Duration::from_secs(11));
        assert_eq!(drain(&mut f), vec![play("demo_no_input")]);
        f.on_prompt_finished(t0 + Duration::from_secs(12));
        assert_eq!(drain(&mut f), vec![play("goodbye")]);
        f.on_prompt_finished(t0 + Duration::from_secs(14));
        assert_eq!(drain(&mut f), vec![FlowAction::Hangup]);
        assert_eq!(f.digits(), "");
    }

    #[test]
    fn every_key_has_a_prompt_id() {
        assert_eq!(digit_prompt('*'), "digit_star");
        assert_eq!(digit_prompt('A'), "digit_a");
        assert_eq!(required_prompts().len(), 4 + 16);
    }
}
