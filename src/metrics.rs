//! The service's Prometheus metrics (`/metrics`), on the `prometheus-client` crate
//! (the Prometheus project's own Rust client; OpenMetrics text exposition).
//!
//! Two kinds of figures:
//! - **Counters fed where call state lands**: [`Metrics`] is the [`CallObserver`] of
//!   the [`crate::call::CallLog`], so calls by direction and disposition, IVR node
//!   visits, DTMF digits by method and RTP packet counts are accounted when a call's
//!   record reaches the log — the call task itself knows nothing about metrics. Per-call
//!   media figures are added when the call ends (that is when its record carries them).
//! - **Gauges read at scrape time** ([`Metrics::observe`]): active calls, registrations
//!   and the cap, the Vinmec queue, tokio's live tasks. Reading them when asked keeps
//!   them exact (no second bookkeeping that could drift from the store).
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
use crate::program::{Channel, Status};
use crate::store::{Disposition, QueueStats, QueueStatus, RegistrationStats};

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
struct HttpLabels {
    route: String,
    status: String,
}

/// Directions a call can have (a label value is reported for each, zero included).
const DIRECTIONS: [&str; 2] = ["inbound", "outbound"];

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
    http_requests: Family<HttpLabels, Counter>,
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
            http_requests: Family::default(),
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
            "tokio_tasks_alive",
            "Tasks alive in the service's tokio runtime",
            m.tasks_alive.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            m.http_requests.clone(),
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
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let n = handle.metrics().num_alive_tasks();
            self.tasks_alive.set(i64::try_from(n).unwrap_or(i64::MAX));
        }
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
