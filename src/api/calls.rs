//! `GET /calls`: the call log as the first supervisors' view showed it, kept for the
//! scripts that read it — every [`CallRecord`] field, times in RFC 3339 with
//! nanoseconds (humantime's format, which this endpoint has always used), numbers
//! masked.

use std::time::SystemTime;

use serde::Serialize;

use crate::call::{CallRecord, DigitMethods, PromptPlay};
use crate::telemetry::mask_number;

#[derive(Serialize)]
pub struct CallsView {
    active: Vec<CallRecordView>,
    recent: Vec<CallRecordView>,
}

/// The active records and the last 100 finished ones (newest first), numbers masked
/// (the caller's, and the called party's on outbound calls).
pub fn calls_view(active: Vec<CallRecord>, finished: Vec<CallRecord>) -> CallsView {
    let masked = |r: CallRecord| {
        let mut v = CallRecordView::from(r);
        v.caller = v.caller.as_deref().map(mask_number);
        if v.direction == "outbound" {
            v.called = v.called.as_deref().map(mask_number);
        }
        v
    };
    let mut recent = finished;
    recent.reverse();
    recent.truncate(100);
    CallsView {
        active: active.into_iter().map(masked).collect(),
        recent: recent.into_iter().map(masked).collect(),
    }
}

/// One call record, every field in the record's order.
#[derive(Clone, Debug, Serialize)]
pub struct CallRecordView {
    pub call_id: String,
    pub leg: u64,
    /// `inbound` or `outbound`.
    pub direction: &'static str,
    pub caller: Option<String>,
    pub called: Option<String>,
    #[serde(with = "humantime_serde")]
    pub started_at: SystemTime,
    #[serde(with = "humantime_serde")]
    pub answered_at: Option<SystemTime>,
    #[serde(with = "humantime_serde")]
    pub ended_at: Option<SystemTime>,
    pub final_status: Option<u16>,
    pub end_reason: String,
    pub digits: String,
    pub dialplan: Option<String>,
    pub ivr_path: Vec<String>,
    pub ivr_node: Option<String>,
    pub digit_methods: DigitMethodsView,
    pub prompts: Vec<PromptPlayView>,
    pub codec: Option<String>,
    pub telephone_event_pt: Option<u8>,
    pub reoffers: u32,
    pub rtp_packets_sent: u64,
    pub rtp_prompt_packets_sent: u64,
    pub rtp_packets_received: u64,
    pub dtmf_digits: u32,
    pub rtp_late_frames: u64,
    pub campaign_id: Option<i64>,
    pub attempt_id: Option<i64>,
    pub disposition: Option<&'static str>,
}

/// Digits per signalling method (`rfc4733`, `info`).
#[derive(Clone, Copy, Debug, Serialize)]
pub struct DigitMethodsView {
    pub rfc4733: u32,
    pub info: u32,
}

/// One prompt the call played and how far it got.
#[derive(Clone, Debug, Serialize)]
pub struct PromptPlayView {
    pub id: String,
    pub frames_sent: u32,
    pub completed: bool,
}

impl From<DigitMethods> for DigitMethodsView {
    fn from(m: DigitMethods) -> Self {
        DigitMethodsView {
            rfc4733: m.rfc4733,
            info: m.info,
        }
    }
}

impl From<PromptPlay> for PromptPlayView {
    fn from(p: PromptPlay) -> Self {
        PromptPlayView {
            id: p.id,
            frames_sent: p.frames_sent,
            completed: p.completed,
        }
    }
}

impl From<CallRecord> for CallRecordView {
    fn from(r: CallRecord) -> Self {
        CallRecordView {
            call_id: r.call_id,
            leg: r.leg,
            direction: r.direction,
            caller: r.caller,
            called: r.called,
            started_at: r.started_at,
            answered_at: r.answered_at,
            ended_at: r.ended_at,
            final_status: r.final_status,
            end_reason: r.end_reason,
            digits: r.digits,
            dialplan: r.dialplan,
            ivr_path: r.ivr_path,
            ivr_node: r.ivr_node,
            digit_methods: r.digit_methods.into(),
            prompts: r.prompts.into_iter().map(PromptPlayView::from).collect(),
            codec: r.codec,
            telephone_event_pt: r.telephone_event_pt,
            reoffers: r.reoffers,
            rtp_packets_sent: r.rtp_packets_sent,
            rtp_prompt_packets_sent: r.rtp_prompt_packets_sent,
            rtp_packets_received: r.rtp_packets_received,
            dtmf_digits: r.dtmf_digits,
            rtp_late_frames: r.rtp_late_frames,
            campaign_id: r.campaign_id,
            attempt_id: r.attempt_id,
            disposition: r.disposition,
        }
    }
}
