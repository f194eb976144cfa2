//! The service's Prometheus metrics (`/metrics`), on the `prometheus-client` crate
//! (the Prometheus project's own Rust client; OpenMetrics text exposition).
//!
//! Two kinds of figures:
//! - **Counters fed where call state lands**: [`Metrics`] is the [`CallObserver`] of
//!   the [`crate::call::CallLog`], so calls by direction and disposition, IVR node
//!   visits, DTMF digits by method and RTP packet counts are accounted when a call's
//!   record reaches the log — the call task itself knows nothing about metrics. Per-call
//!   media figures are added when the call ends (that is when its record carries them).
//! - **Gauges read at scrape time** ([`Metrics::observe`], [`Metrics::observe_campaigns`],
//!   [`Metrics::observe_trunk`]): active calls, registrations and the cap, the Vinmec
//!   queue, tokio's live tasks, each campaign's queue and attempts, the survey's
//!   satisfaction, the trunk. Reading them when asked keeps them exact (no second
//!   bookkeeping that could drift from the store). Campaign figures come from the store,
//!   which already counts every finished attempt: they are gauges of stored totals (a
//!   restart does not reset them), not counters of this process.
//!
//! One registry per [`Metrics`] (not a process global), so services started by tests
//! in one process do not add up each other's counters.

use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::call::{CallObserver, CallRecord};
use crate::store::{
    CampaignLine, ContactEnd, Disposition, FlowOutcome, QueueStats, QueueStatus, RegistrationStats,
    SatisfactionReport,
};
use tongdai_domain::program::{Channel, Status};
use tongdai_sip::TrunkState;

/// The content type of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    direction: String,
    disposition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    dialplan: String,
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabels {
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegistrationLabels {
    channel: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CampaignLabels {
    campaign: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CampaignStateLabels {
    campaign: String,
    kind: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CampaignDispositionLabels {
    campaign: String,
    disposition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CampaignReasonLabels {
    campaign: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CampaignOutcomeLabels {
    campaign: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    status: String,
}

/// Directions a call can have (a label value is reported for each, zero included).
const DIRECTIONS: [&str; 2] = ["inbound", "outbound"];

/// Where a campaign's contacts are (every contact is in exactly one).
const CONTACT_STATES: [&str; 5] = ["waiting", "dialing", "in_call", "retry_pending", "done"];
const CAMPAIGN_STATES: [&str; 5] = ["draft", "running", "paused", "stopped", "completed"];

type FloatGauge = Gauge<f64, AtomicU64>;

pub struct Metrics {
    registry: Registry,
    calls_started: Family<DirectionLabels, Counter>,
    calls: Family<CallLabels, Counter>,
    calls_active: Family<DirectionLabels, Gauge>,
    ivr_nodes: Family<NodeLabels, Counter>,
    dtmf_digits: Family<MethodLabels, Counter>,
    rtp_sent: Counter,
    rtp_received: Counter,
    rtp_late_frames: Counter,
    registrations: Family<RegistrationLabels, Gauge>,
    cap: Gauge,
    cap_used: Gauge,
    cap_left: Gauge,
    queue: Family<QueueLabels, Gauge>,
    queue_oldest_waiting: Gauge<f64, AtomicU64>,
    tasks_alive: Gauge<i64, AtomicI64>,
    media_send_lag: FloatGauge,
    http_requests: Family<HttpLabels, Counter>,
    campaign_contacts: Family<CampaignStateLabels, Gauge>,
    campaign_state: Family<CampaignStateLabels, Gauge>,
    campaign_done: Family<CampaignReasonLabels, Gauge>,
    campaign_done_by_disposition: Family<CampaignDispositionLabels, Gauge>,
    campaign_attempts: Family<CampaignDispositionLabels, Gauge>,
    campaign_outcomes: Family<CampaignOutcomeLabels, Gauge>,
    satisfaction_mean: FloatGauge,
    satisfaction_share: FloatGauge,
    satisfaction_answers: Gauge,
    campaign_satisfaction_mean: Family<CampaignLabels, FloatGauge>,
    campaign_satisfaction_share: Family<CampaignLabels, FloatGauge>,
    trunk_configured: Gauge,
    trunk_up: Gauge,
    trunk_registered: Gauge,
    trunk_reachable: Gauge,
    trunk_register_failures: Gauge,
    trunk_options_rtt: FloatGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`Metrics::observe`] sets the gauges from.
pub struct Observed<'a> {
    pub active_calls: &'a [CallRecord],
    pub cap: u32,
    pub registrations: &'a RegistrationStats,
    pub queue: &'a QueueStats,
    /// Seconds the oldest waiting entry has waited (0 when none waits).
    pub oldest_waiting_seconds: f64,
    /// How far behind its frame slots the most lagging media worker sends (seconds).
    pub media_send_lag_seconds: f64,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tongdai");
        let m = Metrics {
            calls_started: Family::default(),
            calls: Family::default(),
            calls_active: Family::default(),
            ivr_nodes: Family::default(),
            dtmf_digits: Family::default(),
            rtp_sent: Counter::default(),
            rtp_received: Counter::default(),
            rtp_late_frames: Counter::default(),
            registrations: Family::default(),
            cap: Gauge::default(),
            cap_used: Gauge::default(),
            cap_left: Gauge::default(),
            queue: Family::default(),
            queue_oldest_waiting: Gauge::default(),
            tasks_alive: Gauge::default(),
            media_send_lag: FloatGauge::default(),
            http_requests: Family::default(),
            campaign_contacts: Family::default(),
            campaign_state: Family::default(),
            campaign_done: Family::default(),
            campaign_done_by_disposition: Family::default(),
            campaign_attempts: Family::default(),
            campaign_outcomes: Family::default(),
            satisfaction_mean: FloatGauge::default(),
            satisfaction_share: FloatGauge::default(),
            satisfaction_answers: Gauge::default(),
            campaign_satisfaction_mean: Family::default(),
            campaign_satisfaction_share: Family::default(),
            trunk_configured: Gauge::default(),
            trunk_up: Gauge::default(),
            trunk_registered: Gauge::default(),
            trunk_reachable: Gauge::default(),
            trunk_register_failures: Gauge::default(),
            trunk_options_rtt: FloatGauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "calls_started",
            "Calls that reached the call log, by direction",
            m.calls_started.clone(),
        );
        registry.register(
            "calls",
            "Finished calls by direction and disposition",
            m.calls.clone(),
        );
        registry.register(
            "calls_active",
            "Calls in progress by direction",
            m.calls_active.clone(),
        );
        registry.register(
            "ivr_node_visits",
            "IVR nodes visited by finished calls, by dialplan and node",
            m.ivr_nodes.clone(),
        );
        registry.register(
            "dtmf_digits",
            "DTMF digits received by finished calls, by method (rfc4733, info)",
            m.dtmf_digits.clone(),
        );
        registry.register(
            "rtp_packets_sent",
            "RTP packets sent by finished calls",
            m.rtp_sent.clone(),
        );
        registry.register(
            "rtp_packets_received",
            "RTP packets received by finished calls",
            m.rtp_received.clone(),
        );
        registry.register(
            "rtp_late_frames",
            "Media frames skipped because they were due too late, by finished calls",
            m.rtp_late_frames.clone(),
        );
        registry.register(
            "registrations",
            "Registrations by channel and status",
            m.registrations.clone(),
        );
        registry.register("cap", "The program's cap (places)", m.cap.clone());
        registry.register(
            "cap_used",
            "Places taken (cancelled registrations keep theirs)",
            m.cap_used.clone(),
        );
        registry.register("cap_left", "Places left", m.cap_left.clone());
        registry.register(
            "vinmec_queue_entries",
            "Vinmec queue entries by status (an expired lease counts as waiting)",
            m.queue.clone(),
        );
        registry.register(
            "vinmec_queue_oldest_waiting_seconds",
            "Age of the oldest entry waiting for a Vinmec scheduler",
            m.queue_oldest_waiting.clone(),
        );
        registry.register(
            "media_send_lag_seconds",
            "How far behind its 20 ms frame slots RTP is sent (95th percentile of packets over 0.5 s, the most lagging media worker; 0 under 100 calls); new calls are refused above rtp.max_send_lag",
            m.media_send_lag.clone(),
        );
        registry.register(
            "tokio_tasks_alive",
            "Tasks alive in the service's tokio runtime",
            m.tasks_alive.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            m.http_requests.clone(),
        );
        registry.register(
            "campaign_contacts",
            "Campaign contacts by where they are: waiting (never dialled), dialing, in_call, \
             retry_pending, done",
            m.campaign_contacts.clone(),
        );
        registry.register(
            "campaign_state",
            "1 for the state each campaign is in (draft, running, paused, stopped, completed)",
            m.campaign_state.clone(),
        );
        registry.register(
            "campaign_contacts_done",
            "Done campaign contacts by why they are done",
            m.campaign_done.clone(),
        );
        registry.register(
            "campaign_contacts_done_by_disposition",
            "Done campaign contacts by their last call's disposition",
            m.campaign_done_by_disposition.clone(),
        );
        registry.register(
            "campaign_attempts",
            "Finished campaign attempts by disposition (stored totals)",
            m.campaign_attempts.clone(),
        );
        registry.register(
            "campaign_outcomes",
            "Finished campaign attempts by the answered call's flow outcome (stored totals)",
            m.campaign_outcomes.clone(),
        );
        registry.register(
            "satisfaction_mean",
            "Mean answer to the survey's satisfaction question (1-5), all survey campaigns; \
             NaN before the first answer",
            m.satisfaction_mean.clone(),
        );
        registry.register(
            "satisfaction_share_4_5",
            "Share of satisfaction answers that are 4 or 5, all survey campaigns; NaN \
             before the first answer",
            m.satisfaction_share.clone(),
        );
        registry.register(
            "satisfaction_answers",
            "Registrations that answered the satisfaction question",
            m.satisfaction_answers.clone(),
        );
        registry.register(
            "campaign_satisfaction_mean",
            "Mean satisfaction answer (1-5) per survey campaign",
            m.campaign_satisfaction_mean.clone(),
        );
        registry.register(
            "campaign_satisfaction_share_4_5",
            "Share of satisfaction answers that are 4 or 5, per survey campaign",
            m.campaign_satisfaction_share.clone(),
        );
        registry.register(
            "trunk_configured",
            "1 when a SIP trunk is configured",
            m.trunk_configured.clone(),
        );
        registry.register(
            "trunk_up",
            "1 when the trunk answers and is registered where it must be",
            m.trunk_up.clone(),
        );
        registry.register(
            "trunk_registered",
            "1 while our REGISTER binding with the trunk is valid",
            m.trunk_registered.clone(),
        );
        registry.register(
            "trunk_reachable",
            "1 when the trunk answered its last OPTIONS/REGISTER, 0 when it did not or no \
             verdict yet",
            m.trunk_reachable.clone(),
        );
        registry.register(
            "trunk_register_failures",
            "Consecutive failed REGISTERs",
            m.trunk_register_failures.clone(),
        );
        registry.register(
            "trunk_options_rtt_seconds",
            "Round trip of the last answered OPTIONS keepalive; NaN before the first",
            m.trunk_options_rtt.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Sets the scrape-time gauges.
    pub fn observe(&self, o: &Observed<'_>) {
        for d in DIRECTIONS {
            let n = o.active_calls.iter().filter(|r| r.direction == d).count();
            self.calls_active
                .get_or_create(&DirectionLabels {
                    direction: d.to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        for &channel in Channel::ALL {
            for &status in Status::ALL {
                let n = o
                    .registrations
                    .by_channel_status
                    .get(&(channel, status))
                    .copied()
                    .unwrap_or(0);
                self.registrations
                    .get_or_create(&RegistrationLabels {
                        channel: channel.as_str().to_owned(),
                        status: status.as_str().to_owned(),
                    })
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        self.cap.set(i64::from(o.cap));
        self.cap_used.set(i64::from(o.registrations.used));
        self.cap_left
            .set(i64::from(o.cap.saturating_sub(o.registrations.used)));
        for &s in QueueStatus::ALL {
            let n = o.queue.by_status.get(&s).copied().unwrap_or(0);
            self.queue
                .get_or_create(&QueueLabels {
                    status: s.as_str().to_owned(),
                })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.queue_oldest_waiting.set(o.oldest_waiting_seconds);
        self.media_send_lag.set(o.media_send_lag_seconds);
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let n = handle.metrics().num_alive_tasks();
            self.tasks_alive.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Sets the campaign gauges from the store's campaign lines and satisfaction
    /// reports (`per_campaign`: survey campaigns' names and reports). Every known label
    /// value is reported, zero included, so a series never vanishes.
    pub fn observe_campaigns(
        &self,
        lines: &[CampaignLine],
        overall: &SatisfactionReport,
        per_campaign: &[(String, SatisfactionReport)],
    ) {
        let n = |v: u32| i64::from(v);
        for line in lines {
            let c = &line.campaign;
            let p = &line.progress;
            let kind = match c.kind {
                tongdai_domain::dialer::CampaignKind::Invitation => "invitation",
                tongdai_domain::dialer::CampaignKind::Survey => "survey",
            };
            let labels = |state: &str| CampaignStateLabels {
                campaign: c.name.clone(),
                kind: kind.to_owned(),
                state: state.to_owned(),
            };
            for (state, v) in CONTACT_STATES.iter().zip([
                p.waiting,
                p.dialing,
                p.in_call,
                p.retry_pending,
                p.done,
            ]) {
                self.campaign_contacts
                    .get_or_create(&labels(state))
                    .set(n(v));
            }
            let current = c.state.to_string();
            for state in CAMPAIGN_STATES {
                self.campaign_state
                    .get_or_create(&labels(state))
                    .set(i64::from(current == state));
            }
            for &reason in ContactEnd::ALL {
                self.campaign_done
                    .get_or_create(&CampaignReasonLabels {
                        campaign: c.name.clone(),
                        reason: reason.as_str().to_owned(),
                    })
                    .set(n(p.done_by_reason.get(&reason).copied().unwrap_or(0)));
            }
            for &d in Disposition::ALL {
                let labels = CampaignDispositionLabels {
                    campaign: c.name.clone(),
                    disposition: d.as_str().to_owned(),
                };
                self.campaign_done_by_disposition
                    .get_or_create(&labels)
                    .set(n(p.done_by_disposition.get(&d).copied().unwrap_or(0)));
                self.campaign_attempts.get_or_create(&labels).set(n(p
                    .attempts_by_disposition
                    .get(&d)
                    .copied()
                    .unwrap_or(0)));
            }
            for &o in FlowOutcome::ALL {
                self.campaign_outcomes
                    .get_or_create(&CampaignOutcomeLabels {
                        campaign: c.name.clone(),
                        outcome: o.as_str().to_owned(),
                    })
                    .set(n(p.outcomes.get(&o).copied().unwrap_or(0)));
            }
        }
        let s = &overall.satisfaction;
        self.satisfaction_mean.set(s.mean.unwrap_or(f64::NAN));
        self.satisfaction_share.set(s.share_4_5.unwrap_or(f64::NAN));
        self.satisfaction_answers.set(n(s.answers));
        for (name, report) in per_campaign {
            let labels = CampaignLabels {
                campaign: name.clone(),
            };
            let s = &report.satisfaction;
            self.campaign_satisfaction_mean
                .get_or_create(&labels)
                .set(s.mean.unwrap_or(f64::NAN));
            self.campaign_satisfaction_share
                .get_or_create(&labels)
                .set(s.share_4_5.unwrap_or(f64::NAN));
        }
    }

    /// Sets the trunk gauges; `up` is the API's one-word health being `up`.
    pub fn observe_trunk(&self, t: &TrunkState, up: bool) {
        self.trunk_configured.set(i64::from(t.configured));
        self.trunk_up.set(i64::from(up));
        self.trunk_registered.set(i64::from(t.registered));
        self.trunk_reachable
            .set(i64::from(t.reachable == Some(true)));
        self.trunk_register_failures
            .set(i64::from(t.register_failures));
        self.trunk_options_rtt.set(
            t.last_options_rtt
                .map(|d| d.as_secs_f64())
                .unwrap_or(f64::NAN),
        );
    }

    /// Counts one answered HTTP request (`route` is the matched path template).
    pub fn http_request(&self, route: &str, status: u16) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                status: status.to_string(),
            })
            .inc();
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            // Writing into a String cannot fail; keep whatever was written.
            tracing::error!(error = %e, "encoding metrics");
        }
        out
    }
}

/// The disposition a finished call is counted under (as the store files it).
fn disposition(record: &CallRecord) -> Disposition {
    match record.final_status {
        Some(code) => Disposition::from_sip_status(code),
        None => Disposition::Failed,
    }
}

impl CallObserver for Metrics {
    fn call_updated(&self, record: &CallRecord, first: bool) {
        if first {
            self.calls_started
                .get_or_create(&DirectionLabels {
                    direction: record.direction.to_owned(),
                })
                .inc();
        }
    }

    fn call_finished(&self, record: &CallRecord) {
        self.calls
            .get_or_create(&CallLabels {
                direction: record.direction.to_owned(),
                disposition: disposition(record).as_str().to_owned(),
            })
            .inc();
        let dialplan = record.dialplan.clone().unwrap_or_default();
        for node in &record.ivr_path {
            self.ivr_nodes
                .get_or_create(&NodeLabels {
                    dialplan: dialplan.clone(),
                    node: node.clone(),
                })
                .inc();
        }
        // The media session counts RFC 4733 digits; the rest of the call's digits
        // came as SIP INFO (the only other method the service reads).
        let rfc4733 = u64::from(record.dtmf_digits);
        let all = record.digits.chars().count() as u64;
        for (method, n) in [("rfc4733", rfc4733), ("info", all.saturating_sub(rfc4733))] {
            let c = self.dtmf_digits.get_or_create(&MethodLabels {
                method: method.to_owned(),
            });
            if n > 0 {
                c.inc_by(n);
            }
        }
        self.rtp_sent.inc_by(record.rtp_packets_sent);
        self.rtp_received.inc_by(record.rtp_packets_received);
        self.rtp_late_frames.inc_by(record.rtp_late_frames);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: Option<u16>, digits: &str, rfc4733: u32) -> CallRecord {
        let mut r = CallRecord::new(
            "c1".into(),
            1,
            Some("0903123678".into()),
            Some("9090".into()),
            std::time::SystemTime::UNIX_EPOCH,
        );
        r.final_status = status;
        r.digits = digits.into();
        r.dtmf_digits = rfc4733;
        r.dialplan = Some("9090".into());
        r.ivr_path = vec!["greet".into(), "main_menu".into(), "main_menu".into()];
        r.rtp_packets_sent = 100;
        r.rtp_packets_received = 90;
        r.rtp_late_frames = 2;
        r
    }

    #[test]
    fn finished_calls_are_counted_by_disposition_node_and_method() {
        let m = Metrics::new();
        let r = record(Some(200), "121", 2);
        m.call_updated(&r, true);
        m.call_updated(&r, false);
        m.call_finished(&r);
        m.call_finished(&record(Some(486), "", 0));
        let text = m.encode();
        for line in [
            "tongdai_calls_started_total{direction=\"inbound\"} 1",
            "tongdai_calls_total{direction=\"inbound\",disposition=\"answered\"} 1",
            "tongdai_calls_total{direction=\"inbound\",disposition=\"busy\"} 1",
            "tongdai_ivr_node_visits_total{dialplan=\"9090\",node=\"main_menu\"} 4",
            "tongdai_dtmf_digits_total{method=\"rfc4733\"} 2",
            "tongdai_dtmf_digits_total{method=\"info\"} 1",
            "tongdai_rtp_packets_sent_total 200",
            "tongdai_rtp_packets_received_total 180",
            "tongdai_rtp_late_frames_total 4",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn trunk_gauges_say_unknown_as_not_reachable_and_no_rtt_as_nan() {
        let m = Metrics::new();
        let mut t = TrunkState {
            configured: true,
            ..TrunkState::default()
        };
        m.observe_trunk(&t, false);
        let text = m.encode();
        for line in [
            "tongdai_trunk_configured 1",
            "tongdai_trunk_up 0",
            "tongdai_trunk_reachable 0",
            "tongdai_trunk_options_rtt_seconds NaN",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        t.reachable = Some(true);
        t.last_options_rtt = Some(std::time::Duration::from_millis(12));
        m.observe_trunk(&t, true);
        let text = m.encode();
        for line in [
            "tongdai_trunk_up 1",
            "tongdai_trunk_reachable 1",
            "tongdai_trunk_options_rtt_seconds 0.012",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }

    #[test]
    fn gauges_report_zero_for_every_known_label() {
        let m = Metrics::new();
        let mut regs = RegistrationStats {
            used: 3,
            ..Default::default()
        };
        regs.by_channel_status
            .insert((Channel::Fanpage, Status::Registered), 3);
        let mut queue = QueueStats::default();
        queue.by_status.insert(QueueStatus::Waiting, 3);
        m.observe(&Observed {
            active_calls: &[],
            cap: 500,
            registrations: &regs,
            queue: &queue,
            oldest_waiting_seconds: 42.0,
            media_send_lag_seconds: 0.0005,
        });
        let text = m.encode();
        for line in [
            "tongdai_calls_active{direction=\"inbound\"} 0",
            "tongdai_registrations{channel=\"fanpage\",status=\"registered\"} 3",
            "tongdai_registrations{channel=\"hotline\",status=\"cancelled\"} 0",
            "tongdai_cap 500",
            "tongdai_cap_used 3",
            "tongdai_cap_left 497",
            "tongdai_vinmec_queue_entries{status=\"waiting\"} 3",
            "tongdai_vinmec_queue_entries{status=\"done\"} 0",
            "tongdai_vinmec_queue_oldest_waiting_seconds 42.0",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
