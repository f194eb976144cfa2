//! `tongdai campaign …` and `tongdai dnc …`: operators drive campaigns and the
//! do-not-call list by writing the store directly, so the commands work whether the
//! service runs or not; a running service notices within `dialer.poll_interval`.
//!
//! Exit codes (README): 0 done, 1 could not run (store unreachable …), 2 bad input
//! (policy, file, number; clap's own usage errors are 2 too), 3 no such campaign,
//! 4 refused (illegal transition, name taken).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use tongdai::app;
use tongdai::clock::{Clock, SystemClock};
use tongdai::config::Settings;
use tongdai::store::{
    CampaignLine, CampaignProgress, CampaignRow, DncSource, SatisfactionReport, ScaleSummary,
    Store, StoreError,
};
use tongdai_domain::dialer::{CampaignKind, CampaignPolicy, PolicyFileError};

/// A failure with its exit code (see the module doc).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

fn fail(code: u8, message: impl Into<String>) -> anyhow::Error {
    Failure {
        code,
        message: message.into(),
    }
    .into()
}

/// Exit code for a store error from a campaign command.
fn store_failure(e: StoreError) -> anyhow::Error {
    let code = match &e {
        StoreError::NotFound { .. } => 3,
        StoreError::InvalidCampaignCommand { .. } | StoreError::CampaignExists(_) => 4,
        StoreError::InvalidRequest(_)
        | StoreError::InvalidPolicy(_)
        | StoreError::InvalidMsisdn(_) => 2,
        _ => 1,
    };
    fail(code, e.to_string())
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Kind {
    Invitation,
    Survey,
}

impl From<Kind> for CampaignKind {
    fn from(k: Kind) -> Self {
        match k {
            Kind::Invitation => CampaignKind::Invitation,
            Kind::Survey => CampaignKind::Survey,
        }
    }
}

#[derive(Subcommand)]
pub enum CampaignCmd {
    /// Create a draft campaign: invitations call the eligible, unregistered subscribers
    /// of the target list; surveys call the registrations whose consultation is done.
    /// Numbers on the do-not-call list are left out. Prints the id and the contacts.
    Create {
        #[arg(long, value_enum)]
        kind: Kind,
        #[arg(long)]
        name: String,
        /// Policy (TOML, every key optional; see README): limits, ring timeout, calling
        /// windows, retries, dialplan (default `invite` / `survey`).
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Every campaign with its progress.
    List,
    /// One campaign: policy, progress by state, disposition and outcome, hold, and the
    /// satisfaction rate of a survey.
    Show { campaign: String },
    /// draft → running.
    Start { campaign: String },
    /// running → paused: no new calls; calls in progress finish.
    Pause { campaign: String },
    /// paused → running.
    Resume { campaign: String },
    /// draft/running/paused → stopped, for good.
    Stop { campaign: String },
}

#[derive(Subcommand)]
pub enum DncCmd {
    /// Put a number on the do-not-call list (every campaign, now and later).
    Add {
        number: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Import a CSV (`msisdn` or `msisdn,note` header); all rows or none.
    Import { file: PathBuf },
    /// The whole list, newest first.
    List,
}

async fn open(settings: &Settings) -> anyhow::Result<Store> {
    Store::connect(&settings.database.url)
        .await
        .map_err(|e| fail(1, format!("opening the registration store: {e}")))
}

/// A campaign by id, or by name.
async fn find(store: &Store, key: &str) -> anyhow::Result<CampaignRow> {
    let found = match key.trim().parse::<i64>() {
        Ok(id) => store.campaign(id).await,
        Err(_) => store.campaign_by_name(key).await,
    }
    .map_err(store_failure)?;
    found.ok_or_else(|| {
        fail(
            3,
            format!("no campaign {key:?} (see `tongdai campaign list`)"),
        )
    })
}

pub async fn campaign(settings: &Settings, cmd: CampaignCmd) -> anyhow::Result<()> {
    match &cmd {
        CampaignCmd::Start { campaign } => return transition(settings, "start", campaign).await,
        CampaignCmd::Pause { campaign } => return transition(settings, "pause", campaign).await,
        CampaignCmd::Resume { campaign } => {
            return transition(settings, "resume", campaign).await;
        }
        CampaignCmd::Stop { campaign } => return transition(settings, "stop", campaign).await,
        _ => {}
    }
    // Validate the input before touching the store.
    let (kind, name, policy) = match &cmd {
        CampaignCmd::Create { kind, name, policy } => {
            let kind = CampaignKind::from(*kind);
            let policy = read_policy(policy.as_deref(), kind)?;
            check_dialplan(settings, &policy)?;
            (Some(kind), name.clone(), Some(policy))
        }
        _ => (None, String::new(), None),
    };
    let store = open(settings).await?;
    let now = SystemClock.now();
    let result = async {
        match cmd {
            CampaignCmd::Create { .. } => {
                let policy = policy.context("policy")?;
                let created = match kind {
                    Some(CampaignKind::Survey) => {
                        store.create_survey_campaign(&name, policy, now).await
                    }
                    _ => {
                        store
                            .create_invitation_campaign(&name, policy, &settings.program, now)
                            .await
                    }
                }
                .map_err(store_failure)?;
                let c = &created.campaign;
                let skipped: Vec<String> = created
                    .skipped
                    .iter()
                    .map(|(why, n)| format!("{why} {n}"))
                    .collect();
                println!(
                    "created campaign {} {:?} ({}, dialplan {}): {} contacts{}",
                    c.id,
                    c.name,
                    c.kind.as_str(),
                    c.dialplan,
                    created.contacts,
                    if skipped.is_empty() {
                        String::new()
                    } else {
                        format!(" (left out: {})", skipped.join(", "))
                    }
                );
                println!("start it with: tongdai campaign start {}", c.id);
                Ok(())
            }
            CampaignCmd::List => {
                let lines = store.campaign_lines(now).await.map_err(store_failure)?;
                print!("{}", list_table(&lines));
                Ok(())
            }
            CampaignCmd::Show { campaign } => {
                let c = find(&store, &campaign).await?;
                let progress = store
                    .campaign_progress(c.id, now)
                    .await
                    .map_err(store_failure)?;
                let survey = if c.kind == CampaignKind::Survey {
                    Some(
                        store
                            .satisfaction_report(Some(c.id))
                            .await
                            .map_err(store_failure)?,
                    )
                } else {
                    None
                };
                print!("{}", show(&c, &progress, survey.as_ref()));
                Ok(())
            }
            CampaignCmd::Start { .. }
            | CampaignCmd::Pause { .. }
            | CampaignCmd::Resume { .. }
            | CampaignCmd::Stop { .. } => Ok(()),
        }
    }
    .await;
    store.close().await;
    result
}

/// `start|pause|resume|stop`.
async fn transition(settings: &Settings, command: &str, key: &str) -> anyhow::Result<()> {
    let store = open(settings).await?;
    let result = async {
        let c = find(&store, key).await?;
        let now = SystemClock.now();
        let row = match command {
            "start" => store.start_campaign(c.id, now).await,
            "pause" => store.pause_campaign(c.id, now).await,
            "resume" => store.resume_campaign(c.id, now).await,
            _ => store.stop_campaign(c.id, now).await,
        }
        .map_err(store_failure)?;
        println!(
            "campaign {} {:?}: {} (was {})",
            row.id, row.name, row.state, c.state
        );
        Ok(())
    }
    .await;
    store.close().await;
    result
}

fn read_policy(path: Option<&Path>, kind: CampaignKind) -> anyhow::Result<CampaignPolicy> {
    let Some(path) = path else {
        return Ok(CampaignPolicy::for_kind(kind));
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(2, format!("cannot read {}: {e}", path.display())))?;
    CampaignPolicy::from_toml(&text, kind).map_err(|e| {
        let detail = match &e {
            PolicyFileError::Syntax(s) => s.clone(),
            PolicyFileError::Invalid(p) => p
                .problems
                .iter()
                .map(|p| format!("\n  {p}"))
                .collect::<String>(),
        };
        fail(
            2,
            format!("{}: bad campaign policy: {detail}", path.display()),
        )
    })
}

/// The campaign's dialplan must be one the service has (and compiles).
fn check_dialplan(settings: &Settings, policy: &CampaignPolicy) -> anyhow::Result<()> {
    let (_, plans, _) = app::check(settings).map_err(|e| {
        fail(
            1,
            format!(
                "cannot check the dialplans in {}: {e}",
                settings.dialplans.dir.display()
            ),
        )
    })?;
    if plans.by_name(&policy.dialplan).is_none() {
        let mut names: Vec<&str> = plans.names().collect();
        names.sort();
        return Err(fail(
            2,
            format!(
                "campaign.dialplan: no dialplan named {:?} in {} (there are: {})",
                policy.dialplan,
                settings.dialplans.dir.display(),
                names.join(", ")
            ),
        ));
    }
    Ok(())
}

fn local(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn list_table(lines: &[CampaignLine]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>4}  {:<24} {:<10} {:<9} {:>8} {:>6} {:>8}  HOLD",
        "ID", "NAME", "KIND", "STATE", "CONTACTS", "DONE", "ATTEMPTS"
    );
    for l in lines {
        let c = &l.campaign;
        let p = &l.progress;
        let _ = writeln!(
            out,
            "{:>4}  {:<24} {:<10} {:<9} {:>8} {:>6} {:>8}  {}",
            c.id,
            c.name.chars().take(24).collect::<String>(),
            c.kind.as_str(),
            c.state.as_str(),
            p.contacts,
            p.done,
            p.attempts,
            p.hold.as_ref().map(|h| h.code.as_str()).unwrap_or("-")
        );
    }
    if lines.is_empty() {
        out.push_str("(no campaigns: create one with `tongdai campaign create`)\n");
    }
    out
}

fn pairs<K: std::fmt::Display>(m: impl IntoIterator<Item = (K, u32)>) -> String {
    let v: Vec<String> = m.into_iter().map(|(k, n)| format!("{k} {n}")).collect();
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

fn pct(x: Option<f64>) -> String {
    x.map(|v| format!("{:.1} %", v * 100.0))
        .unwrap_or_else(|| "-".into())
}

fn scale(s: &ScaleSummary) -> String {
    format!(
        "{} answers, mean {}, share of 4-5 {}, 1..5: {:?}",
        s.answers,
        s.mean
            .map(|m| format!("{m:.2}"))
            .unwrap_or_else(|| "-".into()),
        pct(s.share_4_5),
        s.histogram
    )
}

fn show(c: &CampaignRow, p: &CampaignProgress, survey: Option<&SatisfactionReport>) -> String {
    let tz = c.policy.tz();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "campaign {} {:?}: {} ({}, dialplan {})",
        c.id,
        c.name,
        c.state,
        c.kind.as_str(),
        c.dialplan
    );
    let _ = writeln!(
        out,
        "  created {}{}{}  ({})",
        local(c.created_at, &tz),
        c.started_at
            .map(|t| format!(", started {}", local(t, &tz)))
            .unwrap_or_default(),
        c.ended_at
            .map(|t| format!(", ended {}", local(t, &tz)))
            .unwrap_or_default(),
        c.policy.timezone
    );
    let pol = &c.policy;
    let windows: Vec<String> = pol.calling_windows.iter().map(|w| w.to_string()).collect();
    let days: Vec<String> = pol
        .days
        .iter()
        .map(|d| format!("{d:?}").to_lowercase())
        .collect();
    let _ = writeln!(
        out,
        "  policy: max_concurrent {}, max_cps {}, ring_timeout {}, windows {}, days {}, max_attempts {}",
        pol.max_concurrent,
        pol.max_cps,
        humantime::format_duration(pol.ring_timeout),
        windows.join(" "),
        days.join(","),
        pol.max_attempts
    );
    if let Some(h) = &p.hold {
        let _ = writeln!(
            out,
            "  HELD: {} (since {}, instance {})",
            h.detail,
            local(h.since, &tz),
            h.instance
        );
    }
    let _ = writeln!(
        out,
        "  contacts {}: waiting {}, dialing {}, in call {}, retry pending {}, done {}",
        p.contacts, p.waiting, p.dialing, p.in_call, p.retry_pending, p.done
    );
    let _ = writeln!(
        out,
        "    done by reason: {}",
        pairs(p.done_by_reason.iter().map(|(k, v)| (k.as_str(), *v)))
    );
    let _ = writeln!(
        out,
        "    done by last disposition: {}",
        pairs(p.done_by_disposition.iter().map(|(k, v)| (k.as_str(), *v)))
    );
    let _ = writeln!(
        out,
        "  attempts {} (answer rate {})",
        p.attempts,
        pct(p.answer_rate)
    );
    let _ = writeln!(
        out,
        "    by disposition: {}",
        pairs(
            p.attempts_by_disposition
                .iter()
                .map(|(k, v)| (k.as_str(), *v))
        )
    );
    let _ = writeln!(
        out,
        "    outcomes: {}",
        pairs(p.outcomes.iter().map(|(k, v)| (k.as_str(), *v)))
    );
    if let Some(t) = p.next_due {
        let _ = writeln!(out, "  next contact due {}", local(t, &tz));
    }
    if let Some(s) = survey {
        let _ = writeln!(
            out,
            "  survey: {} respondents, {} completed, {} partial",
            s.respondents, s.completed, s.partial
        );
        let _ = writeln!(out, "    satisfaction (1-5): {}", scale(&s.satisfaction));
        let _ = writeln!(
            out,
            "    resolved: {} answers, yes {}, no {}, share yes {}",
            s.resolved.answers,
            s.resolved.yes,
            s.resolved.no,
            pct(s.resolved.share_yes)
        );
        let _ = writeln!(out, "    recommend (1-5): {}", scale(&s.recommend));
    }
    out
}

pub async fn dnc(settings: &Settings, cmd: DncCmd) -> anyhow::Result<()> {
    let store = open(settings).await?;
    let now = SystemClock.now();
    let result = async {
        match cmd {
            DncCmd::Add { number, note } => {
                let added = store
                    .add_do_not_call(&number, DncSource::Supervisor, &note, now)
                    .await
                    .map_err(store_failure)?;
                println!(
                    "{}: {}",
                    number.trim(),
                    if added {
                        "added to the do-not-call list; no campaign will call it"
                    } else {
                        "already on the do-not-call list"
                    }
                );
                Ok(())
            }
            DncCmd::Import { file } => {
                let report = store
                    .import_do_not_call_csv(&file, now)
                    .await
                    .map_err(|e| fail(2, format!("{}: {e}", file.display())))?;
                println!(
                    "ok: {} numbers from {} ({} new, {} already listed)",
                    report.rows,
                    file.display(),
                    report.inserted,
                    report.already
                );
                Ok(())
            }
            DncCmd::List => {
                let list = store.do_not_call_list().await.map_err(store_failure)?;
                let tz = TimeZone::get("Asia/Ho_Chi_Minh").unwrap_or(TimeZone::UTC);
                println!("{:<14} {:<10} {:<19}  NOTE", "NUMBER", "SOURCE", "SINCE");
                for e in &list {
                    println!(
                        "{:<14} {:<10} {:<19}  {}",
                        e.msisdn,
                        e.source.as_str(),
                        local(e.at, &tz),
                        e.note
                    );
                }
                println!("({} numbers)", list.len());
                Ok(())
            }
        }
    }
    .await;
    store.close().await;
    result
}
