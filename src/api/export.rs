//! `GET /api/v1/vinmec/registrations.csv`: the registration list for Vinmec HP, as a
//! spreadsheet opens it.
//!
//! Excel decides a CSV's encoding from a byte-order mark: without one it reads UTF-8 as
//! the ANSI code page and Vietnamese turns to mojibake, so the file starts with the
//! UTF-8 BOM. Headers and values are Vietnamese; times are local (the program's zone),
//! `dd/mm/yyyy HH:MM`. Phone numbers are written `="0903123678"` so that Excel keeps the
//! leading zero instead of turning the number into 903123678. Free text that begins
//! with `=`, `+`, `-` or `@` is prefixed with `'` so a spreadsheet never runs it as a
//! formula (CSV injection). `?sep=semicolon` for Excel set to a locale whose list
//! separator is `;`.

use axum::extract::State;
use axum::http::HeaderValue;
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use serde::Deserialize;

use super::error::{ApiError, ApiQuery};
use super::{ApiState, national, zone};
use crate::program::{Channel, ProgramConfig, Status};
use crate::store::{AppointmentMethod, QueueFilter, QueueItem, QueueStatus};

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
    status: Option<Status>,
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
fn safe(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    }
}

fn local(t: Timestamp, cfg: &ProgramConfig) -> String {
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
    let e = &item.entry;
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
                    registration_status: q.status,
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
    let mut out = BOM.to_vec();
    {
        let mut w = csv::WriterBuilder::new()
            .delimiter(match q.sep {
                Separator::Comma => b',',
                Separator::Semicolon => b';',
            })
            .terminator(csv::Terminator::CRLF)
            .from_writer(&mut out);
        w.write_record(HEADERS).map_err(ApiError::internal)?;
        for item in &items {
            w.write_record(row(item, &s.program))
                .map_err(ApiError::internal)?;
        }
        w.flush().map_err(ApiError::internal)?;
    }
    let day = now
        .to_zoned_datetime(zone(&s.program))
        .strftime("%Y%m%d")
        .to_string();
    let disposition = format!("attachment; filename=\"dang-ky-vinmec-{day}.csv\"");
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
