//! Call records: one per call, kept in memory (recent calls) for the supervisors' view
//! and the tests. The registration store persists them from the next milestone on.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::Notify;

use tongdai_capacity::GiveBack;
use tongdai_media::MediaStats;
use tongdai_sip::LegId;

/// A clock reading as the record keeps times.
pub fn system_time(t: jiff::Timestamp) -> SystemTime {
    let since_epoch = t.as_duration();
    match std::time::Duration::try_from(since_epoch) {
        Ok(after) => SystemTime::UNIX_EPOCH + after,
        Err(_) => SystemTime::UNIX_EPOCH - since_epoch.unsigned_abs(),
    }
}

/// One prompt the call played and how far it got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptPlay {
    pub id: String,
    pub frames_sent: u32,
    /// False when barge-in, hangup or hold cut it short.
    pub completed: bool,
}

/// How a DTMF digit reached us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigitMethod {
    /// RTP telephone-event (RFC 4733 / RFC 2833).
    Rfc4733,
    /// SIP INFO (`application/dtmf-relay` or `application/dtmf`).
    Info,
}

impl DigitMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            DigitMethod::Rfc4733 => "rfc4733",
            DigitMethod::Info => "info",
        }
    }
}

/// Digits per signalling method: which one the trunk and the phones really use (metrics,
/// and the first thing to look at when "the menu does not react to keys").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DigitMethods {
    pub rfc4733: u32,
    pub info: u32,
}

#[derive(Clone, Debug)]
pub struct CallRecord {
    pub call_id: String,
    pub leg: LegId,
    pub direction: &'static str,
    pub caller: Option<String>,
    pub called: Option<String>,
    pub started_at: SystemTime,
    pub answered_at: Option<SystemTime>,
    pub ended_at: Option<SystemTime>,
    /// The final SIP status of the INVITE (200 when answered).
    pub final_status: Option<u16>,
    /// remote_bye, local_bye, cancelled, ack_timeout, rtp_timeout, shutdown, rejected.
    pub end_reason: String,
    pub digits: String,
    /// The dialplan that ran and the nodes it visited.
    pub dialplan: Option<String>,
    pub ivr_path: Vec<String>,
    /// The dialplan node the call is at now (the last one, once finished), kept current
    /// in the [`CallLog`] so supervisors see where each active caller is.
    pub ivr_node: Option<String>,
    /// How the `digits` arrived.
    pub digit_methods: DigitMethods,
    pub prompts: Vec<PromptPlay>,
    pub codec: Option<String>,
    pub telephone_event_pt: Option<u8>,
    pub reoffers: u32,
    pub rtp_packets_sent: u64,
    pub rtp_prompt_packets_sent: u64,
    pub rtp_packets_received: u64,
    pub dtmf_digits: u32,
    /// Media frames skipped because they were due too late (the send clock fell behind).
    pub rtp_late_frames: u64,
    /// Campaign calls: the campaign and the attempt this call is.
    pub campaign_id: Option<i64>,
    pub attempt_id: Option<i64>,
    /// Campaign calls: the disposition the dialer decided (`no_answer` for a 487 after
    /// our ring timeout, `canceled` for our shutdown CANCEL …); `None`: from the final
    /// status.
    pub disposition: Option<&'static str>,
}

impl CallRecord {
    /// A call that started at `started_at` (the INVITE's arrival, or ours going out), as
    /// the call task read the service's clock.
    pub fn new(
        call_id: String,
        leg: LegId,
        caller: Option<String>,
        called: Option<String>,
        started_at: SystemTime,
    ) -> Self {
        CallRecord {
            call_id,
            leg,
            direction: "inbound",
            caller,
            called,
            started_at,
            answered_at: None,
            ended_at: None,
            final_status: None,
            end_reason: String::new(),
            digits: String::new(),
            dialplan: None,
            ivr_path: Vec::new(),
            ivr_node: None,
            digit_methods: DigitMethods::default(),
            prompts: Vec::new(),
            codec: None,
            telephone_event_pt: None,
            reoffers: 0,
            rtp_packets_sent: 0,
            rtp_prompt_packets_sent: 0,
            rtp_packets_received: 0,
            dtmf_digits: 0,
            rtp_late_frames: 0,
            campaign_id: None,
            attempt_id: None,
            disposition: None,
        }
    }

    /// A digit the caller pressed.
    pub fn push_digit(&mut self, digit: char, method: DigitMethod) {
        self.digits.push(digit);
        match method {
            DigitMethod::Rfc4733 => self.digit_methods.rfc4733 += 1,
            DigitMethod::Info => self.digit_methods.info += 1,
        }
    }

    /// The call is over: why, and when.
    pub fn end(&mut self, reason: &str, at: SystemTime) {
        self.end_reason = reason.to_string();
        self.ended_at = Some(at);
    }

    pub fn absorb_media(&mut self, stats: &MediaStats) {
        self.rtp_packets_sent = stats.packets_sent;
        self.rtp_prompt_packets_sent = stats.prompt_packets_sent;
        self.rtp_packets_received = stats.packets_received;
        self.dtmf_digits = stats.digits;
        self.rtp_late_frames = stats.late_frames_skipped;
    }
}

/// Told when call state lands in the [`CallLog`] (metrics): a call's first and later
/// updates while active, and its final record. Runs under no lock; keep it cheap.
pub trait CallObserver: Send + Sync {
    fn call_updated(&self, record: &CallRecord, first: bool);
    fn call_finished(&self, record: &CallRecord);
}

/// Calls in progress and the most recent finished ones.
#[derive(Clone, Default)]
pub struct CallLog {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
    observer: Option<Arc<dyn CallObserver>>,
}

#[derive(Default)]
struct Inner {
    active: HashMap<LegId, CallRecord>,
    finished: VecDeque<CallRecord>,
    finished_total: u64,
}

/// Finished records kept in memory: what `GET /api/calls` shows ("recent"). Every call's
/// outcome is in the store (`call_records`), so more would only pin memory: 10 000 kept
/// records (a handful of small allocations each, scattered among the freed ones of the
/// calls around them) held ~60 MB resident after a load run that glibc could not give
/// back (BENCHMARKS.md, "Memory and tasks").
pub const KEEP_FINISHED: usize = 100;

impl CallLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave it inconsistent (plain inserts).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A log that reports every change to `observer`.
    pub fn with_observer(observer: Arc<dyn CallObserver>) -> Self {
        CallLog {
            observer: Some(observer),
            ..CallLog::default()
        }
    }

    pub fn upsert_active(&self, record: &CallRecord) {
        let first = self
            .lock()
            .active
            .insert(record.leg, record.clone())
            .is_none();
        if let Some(o) = &self.observer {
            o.call_updated(record, first);
        }
        self.changed.notify_waiters();
    }

    pub fn finish(&self, record: CallRecord) {
        if let Some(o) = &self.observer {
            o.call_finished(&record);
        }
        {
            let mut inner = self.lock();
            inner.active.remove(&record.leg);
            inner.active.give_back();
            inner.finished.push_back(record);
            inner.finished_total += 1;
            while inner.finished.len() > KEEP_FINISHED {
                inner.finished.pop_front();
            }
        }
        self.changed.notify_waiters();
    }

    pub fn active(&self) -> Vec<CallRecord> {
        self.lock().active.values().cloned().collect()
    }

    pub fn active_count(&self) -> usize {
        self.lock().active.len()
    }

    pub fn finished(&self) -> Vec<CallRecord> {
        self.lock().finished.iter().cloned().collect()
    }

    pub fn finished_total(&self) -> u64 {
        self.lock().finished_total
    }

    /// The finished record of a Call-ID, if any.
    pub fn find(&self, call_id: &str) -> Option<CallRecord> {
        self.lock()
            .finished
            .iter()
            .rev()
            .find(|r| r.call_id == call_id)
            .cloned()
    }

    /// Resolves at the next change (a call started, progressed or finished): the live
    /// view's cue to refresh.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Waits until `n` calls in total have finished (tests; bounded by the caller's
    /// timeout).
    pub async fn wait_finished(&self, n: u64) {
        loop {
            let notified = self.changed.notified();
            if self.finished_total() >= n {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_counted_by_method() {
        let mut r = CallRecord::new("c".into(), 1, None, None, SystemTime::UNIX_EPOCH);
        r.push_digit('1', DigitMethod::Rfc4733);
        r.push_digit('#', DigitMethod::Info);
        r.push_digit('2', DigitMethod::Rfc4733);
        assert_eq!(r.digits, "1#2");
        assert_eq!(
            r.digit_methods,
            DigitMethods {
                rfc4733: 2,
                info: 1
            }
        );
        // The record's JSON is the API's (`api::calls::CallRecordView`): its half of
        // this test is `api::wire_tests::digits_are_counted_by_method`.
    }

    #[test]
    fn the_active_record_is_replaced_in_place() {
        let log = CallLog::default();
        let mut r = CallRecord::new("c".into(), 7, None, None, SystemTime::UNIX_EPOCH);
        log.upsert_active(&r);
        r.ivr_node = Some("menu".into());
        log.upsert_active(&r);
        let active = log.active();
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].ivr_node.as_deref(), Some("menu"));
        log.finish(r);
        assert_eq!(log.active_count(), 0);
        assert_eq!(log.find("c").and_then(|r| r.ivr_node), Some("menu".into()));
    }

    #[test]
    fn only_the_most_recent_finished_calls_stay_in_memory() {
        let log = CallLog::default();
        let n = KEEP_FINISHED as u64 + 50;
        for leg in 0..n {
            let r = CallRecord::new(format!("c{leg}"), leg, None, None, SystemTime::UNIX_EPOCH);
            log.upsert_active(&r);
            log.finish(r);
        }
        assert_eq!(log.finished_total(), n);
        let kept = log.finished();
        assert_eq!(kept.len(), KEEP_FINISHED);
        assert_eq!(kept[0].call_id, "c50", "the oldest go first");
        assert!(log.find("c49").is_none());
        assert!(log.find(&format!("c{}", n - 1)).is_some());
    }
}
