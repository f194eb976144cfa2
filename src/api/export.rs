//! The CSV exports, as a spreadsheet opens them:
//! - `GET /api/v1/vinmec/registrations.csv`: the registration list for Vinmec HP;
//! - `GET /api/v1/surveys/results.csv`: the satisfaction survey's results (docs/program.md
//!   step 4) for MobiFone's customer care — supervisors (numbers masked) and admins
//!   (numbers in full, to call a dissatisfied customer back). Vinmec does not get it:
//!   the survey is MobiFone's measurement of the program; the aggregate rate is on the
//!   supervisors' view.
//!
//! Excel decides a CSV's encoding from a byte-order mark: without one it reads UTF-8 as
//! the ANSI code page and Vietnamese turns to mojibake, so the file starts with the
//! UTF-8 BOM. Headers and values are Vietnamese; times are local (the program's zone),
//! `dd/mm/yyyy HH:MM`. Phone numbers are written `="0903123678"` so that Excel keeps the
//! leading zero instead of turning the number into 903123678. Free text that begins
//! with `=`, `+`, `-` or `@` is prefixed with `'` so a spreadsheet never runs it as a
//! formula (CSV injection). `?sep=semicolon` for Excel set to a locale whose list
//! separator is `;`.

use axum::Extension;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Deserialize;

use super::auth::{Caller, Role};
use super::error::{ApiError, ApiQuery};
use super::names::ByName;
use super::{ApiState, national, zone};
use crate::store::{
    AppointmentMethod, ContactEnd, ContactState, QueueFilter, QueueItem, QueueStatus,
    SurveyQuestion, SurveyResultRow,
};
use tongdai_domain::dialer::{CampaignKind, Disposition};
use tongdai_domain::program::{Channel, ProgramConfig, Status, mask_msisdn};

pub const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "snake_case")]
pub enum Separator {
    #[default]
    Comma,
    Semicolon,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    #[serde(default)]
    sep: Separator,
    /// Only registrations in this status.
    status: Option<ByName<Status>>,
}

pub const HEADERS: [&str; 20] = [
    "Mã đăng ký",
    "Số điện thoại",
    "Họ tên",
    "Nhóm",
    "Kênh đăng ký",
    "Chuyên khoa đăng ký",
    "Trạng thái",
    "Thời gian đăng ký",
    "Tham chiếu fanpage",
    "Hàng đợi Vinmec",
    "Người đang xử lý",
    "Nhu cầu tư vấn",
    "Chuyên khoa tiếp nhận",
    "Lịch hẹn",
    "Thời lượng (phút)",
    "Hình thức",
    "Lý do gọi video",
    "Kết quả tư vấn",
    "Thời gian ghi nhận tư vấn",
    "Số lần không liên lạc được",
];

pub fn status_vi(s: Status) -> &'static str {
    match s {
        Status::Registered => "Đã đăng ký",
        Status::SentToVinmec => "Đã chuyển Vinmec",
        Status::AppointmentBooked => "Đã đặt lịch",
        Status::Consulted => "Đã tư vấn",
        Status::Surveyed => "Đã khảo sát",
        Status::Cancelled => "Đã hủy",
        Status::Unreachable => "Không liên lạc được",
    }
}

pub fn channel_vi(c: Channel) -> &'static str {
    match c {
        Channel::Hotline => "Gọi vào tổng đài 9090",
        Channel::OutboundCall => "Tổng đài 9090 gọi ra",
        Channel::Fanpage => "Fanpage",
    }
}

pub fn queue_vi(q: QueueStatus) -> &'static str {
    match q {
        QueueStatus::Waiting => "Chờ xử lý",
        QueueStatus::Claimed => "Đang xử lý",
        QueueStatus::Done => "Đã xếp lịch",
        QueueStatus::Cancelled => "Đã hủy",
    }
}

fn method_vi(m: AppointmentMethod) -> &'static str {
    match m {
        AppointmentMethod::Phone => "Điện thoại",
        AppointmentMethod::Video => "Gọi video",
    }
}

/// Text a spreadsheet must not take for a formula.
pub(crate) fn safe(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    }
}

pub(crate) fn local(t: Timestamp, cfg: &ProgramConfig) -> String {
    t.to_zoned_datetime(zone(cfg))
        .strftime("%d/%m/%Y %H:%M")
        .to_string()
}

fn specialty(code: Option<u8>, cfg: &ProgramConfig) -> String {
    match code {
        None => "Chưa chọn".to_owned(),
        Some(c) => cfg
            .specialty(c)
            .map(|s| s.name_vi.clone())
            .unwrap_or_else(|| c.to_string()),
    }
}

/// One CSV row of a queue item.
pub fn row(item: &QueueItem, cfg: &ProgramConfig) -> Vec<String> {
    let r = &item.registration;
    let e = &item.entry.queue;
    let opt = |v: &Option<String>| v.as_deref().map(safe).unwrap_or_default();
    vec![
        r.id.to_string(),
        format!("=\"{}\"", national(&r.msisdn)),
        opt(&r.name),
        format!("Nhóm {}", r.group.number()),
        channel_vi(r.channel).to_owned(),
        specialty(r.specialty, cfg),
        status_vi(r.status).to_owned(),
        local(r.created_at, cfg),
        opt(&r.fanpage_ref),
        queue_vi(e.status).to_owned(),
        if e.status == QueueStatus::Claimed {
            opt(&e.claimed_by)
        } else {
            String::new()
        },
        opt(&e.prescreen_note),
        e.routed_specialty
            .map(|c| specialty(Some(c), cfg))
            .unwrap_or_default(),
        e.appointment_at.map(|t| local(t, cfg)).unwrap_or_default(),
        e.appointment_minutes
            .map(|m| m.to_string())
            .unwrap_or_default(),
        e.appointment_method
            .map(|m| method_vi(m).to_owned())
            .unwrap_or_default(),
        opt(&e.video_reason),
        opt(&e.consultation_report),
        e.consulted_at.map(|t| local(t, cfg)).unwrap_or_default(),
        e.unreachable_count.to_string(),
    ]
}

pub async fn registrations_csv(
    State(s): State<ApiState>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    let now = s.clock.now();
    let mut items = Vec::new();
    let mut offset = 0;
    loop {
        let page = s
            .store
            .vinmec_queue(
                &QueueFilter {
                    registration_status: q.status.map(|s| s.0),
                    limit: 500,
                    offset,
                    ..QueueFilter::default()
                },
                now,
            )
            .await?;
        let n = page.items.len() as u32;
        items.extend(page.items);
        if n < 500 {
            break;
        }
        offset += n;
    }
    let rows: Vec<Vec<String>> = items.iter().map(|i| row(i, &s.program)).collect();
    csv_response(&HEADERS, &rows, q.sep, "dang-ky-vinmec", now, &s.program)
}

/// A CSV attachment: BOM, the header line, CRLF line ends, `<stem>-YYYYMMDD.csv` (local
/// date) as the file name.
fn csv_response(
    headers: &[&str],
    rows: &[Vec<String>],
    sep: Separator,
    stem: &str,
    now: Timestamp,
    cfg: &ProgramConfig,
) -> Result<Response, ApiError> {
    let mut out = BOM.to_vec();
    {
        let mut w = csv::WriterBuilder::new()
            .delimiter(match sep {
                Separator::Comma => b',',
                Separator::Semicolon => b';',
            })
            .terminator(csv::Terminator::CRLF)
            .from_writer(&mut out);
        w.write_record(headers).map_err(ApiError::internal)?;
        for r in rows {
            w.write_record(r).map_err(ApiError::internal)?;
        }
        w.flush().map_err(ApiError::internal)?;
    }
    let day = now
        .to_zoned_datetime(zone(cfg))
        .strftime("%Y%m%d")
        .to_string();
    let disposition = format!("attachment; filename=\"{stem}-{day}.csv\"");
    Ok((
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition).map_err(ApiError::internal)?,
            ),
        ],
        out,
    )
        .into_response())
}

// ---- survey results ----------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurveyExportQuery {
    #[serde(default)]
    sep: Separator,
    /// One survey campaign (default: all of them).
    campaign: Option<i64>,
}

pub const SURVEY_HEADERS: [&str; 14] = [
    "Mã chiến dịch",
    "Chiến dịch",
    "Mã đăng ký",
    "Số điện thoại",
    "Họ tên",
    "Chuyên khoa đăng ký",
    "Thời gian tư vấn",
    "Kết quả khảo sát",
    "Số cuộc gọi",
    "Kết quả cuộc gọi gần nhất",
    "Thời gian trả lời",
    "Mức độ hài lòng (1-5)",
    "Bác sĩ giải đáp được vấn đề",
    "Sẵn sàng giới thiệu (1-5)",
];

pub fn disposition_vi(d: Disposition) -> &'static str {
    match d {
        Disposition::Answered => "Nghe máy",
        Disposition::Busy => "Máy bận",
        Disposition::NoAnswer => "Không nghe máy",
        Disposition::Rejected => "Từ chối cuộc gọi",
        Disposition::InvalidNumber => "Số không tồn tại",
        Disposition::Congested => "Nghẽn mạng",
        Disposition::Failed => "Lỗi",
        Disposition::Canceled => "Đã hủy",
    }
}

fn done_reason_vi(r: ContactEnd) -> &'static str {
    match r {
        ContactEnd::Completed => "Đã xong",
        ContactEnd::Rejected => "Từ chối cuộc gọi",
        ContactEnd::InvalidNumber => "Số không tồn tại",
        ContactEnd::OptedOut => "Từ chối nhận cuộc gọi (danh sách không gọi)",
        ContactEnd::MaxAttempts => "Không liên lạc được (hết số lần gọi)",
        ContactEnd::NoCallingWindow => "Ngoài khung giờ gọi",
        ContactEnd::Duplicate => "Trùng số",
        ContactEnd::AlreadyRegistered => "Đã đăng ký",
        ContactEnd::AlreadySurveyed => "Đã khảo sát ở đợt khác",
    }
}

/// Where a surveyed contact stands, in words.
fn survey_status_vi(r: &SurveyResultRow) -> &'static str {
    if r.completed {
        return "Hoàn thành";
    }
    if !r.answers.is_empty() {
        return match r.contact_state {
            ContactState::Done => "Trả lời một phần",
            _ => "Trả lời một phần (sẽ gọi lại)",
        };
    }
    match (r.contact_state, r.done_reason) {
        (ContactState::Done, Some(reason)) => done_reason_vi(reason),
        (ContactState::Done, None) => "Đã xong",
        (ContactState::Dialing, _) => "Đang gọi",
        (ContactState::Waiting, _) if r.calls > 0 => "Chờ gọi lại",
        (ContactState::Waiting, _) => "Chưa gọi",
    }
}

/// One CSV row of a surveyed contact; `full_number`: the admin's export.
pub fn survey_row(r: &SurveyResultRow, cfg: &ProgramConfig, full_number: bool) -> Vec<String> {
    let answer = |q: SurveyQuestion| r.answers.get(&q).map(|(v, _)| *v);
    let last_answer = r.answers.values().map(|(_, at)| *at).max();
    vec![
        r.campaign_id.to_string(),
        safe(&r.campaign_name),
        r.registration_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        if full_number {
            format!("=\"{}\"", national(&r.msisdn))
        } else {
            mask_msisdn(&r.msisdn)
        },
        r.name.as_deref().map(safe).unwrap_or_default(),
        specialty(r.specialty, cfg),
        r.consulted_at.map(|t| local(t, cfg)).unwrap_or_default(),
        survey_status_vi(r).to_owned(),
        r.calls.to_string(),
        r.last_disposition
            .map(|d| disposition_vi(d).to_owned())
            .unwrap_or_default(),
        last_answer.map(|t| local(t, cfg)).unwrap_or_default(),
        answer(SurveyQuestion::Satisfaction)
            .map(|v| v.to_string())
            .unwrap_or_default(),
        match answer(SurveyQuestion::Resolved) {
            Some(1) => "Có".to_owned(),
            Some(_) => "Không".to_owned(),
            None => String::new(),
        },
        answer(SurveyQuestion::Recommend)
            .map(|v| v.to_string())
            .unwrap_or_default(),
    ]
}

/// `GET /api/v1/surveys/results.csv` (supervisor: numbers masked; admin: in full).
pub async fn survey_results_csv(
    State(s): State<ApiState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(q): ApiQuery<SurveyExportQuery>,
) -> Result<Response, ApiError> {
    if let Some(id) = q.campaign {
        let c = s
            .store
            .campaign(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("campaign {id} not found")))?;
        if c.kind != CampaignKind::Survey {
            return Err(ApiError {
                status: axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                ..ApiError::field("campaign", format!("campaign {id} is not a survey"))
            });
        }
    }
    let results = s.store.survey_results(q.campaign).await?;
    let full = caller.role == Role::Admin;
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| survey_row(r, &s.program, full))
        .collect();
    let stem = match q.campaign {
        Some(id) => format!("khao-sat-{id}"),
        None => "khao-sat".to_owned(),
    };
    csv_response(
        &SURVEY_HEADERS,
        &rows,
        q.sep,
        &stem,
        s.clock.now(),
        &s.program,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_defused() {
        assert_eq!(safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(safe("-1"), "'-1");
        assert_eq!(safe("Đau đầu"), "Đau đầu");
    }
}
