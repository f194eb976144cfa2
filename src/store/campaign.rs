//! Outbound campaigns in the store: the persistent side of `crate::dialer`.
//!
//! The store is the source of truth for who is called, when, and what happened. It
//! knows no rule: it reads the facts (the campaign, the contact, the attempt, the
//! do-not-call list, the registrations, the program's counter), asks
//! `tongdai_domain::campaign` (who is a contact, whether to claim, what an attempt's end
//! means, refunds, recovery — on top of `tongdai_domain::dialer`'s retry rules and
//! calling windows), and writes what was decided with its guards in SQL. The runtime
//! task (pacer + SIP) asks the store for work.
//!
//! # Calling order for the dialer runtime
//!
//! ```text
//! at start-up (before the first claim):  recover_dialing(instance, now)
//! loop, for a running campaign:
//!     claims = claim_due(ClaimRequest { campaign_id, instance, limit, now, program }, new_call_id)
//!     for each claimed attempt (INVITE carries attempt.call_id):
//!         attempt_started(attempt_id, now)   // just BEFORE handing the INVITE to the transport
//!         … INVITE / ring / CANCEL after ring_timeout …
//!         attempt_answered(attempt_id, now)  // on 2xx; then run attempt.dialplan with
//!                                            // ActionCall::outbound(&attempt)
//!         finish_attempt(attempt_id, &AttemptEnd { .. })   // final / BYE, after the
//!                                            // dialplan's last action result came back
//!     sleep until claims.next_due (or a call ends, or an operator command)
//! burst of 486/503 detected by the pacer: refund_attempt(id, now) for the burst's attempts
//! a claim whose INVITE could not be sent (no port, SIP refused): release_attempt(id, now)
//! holds (trunk down, outside the window …) as they change: set_campaign_hold(..)
//! ```
//!
//! `dialer::runtime` is that caller.
//!
//! # Exactly-once claiming (the protocol of `dialer`'s module doc)
//!
//! [`Store::claim_due`] runs in one transaction: the campaign is running, the instant is
//! inside a calling window, (invitations) the program still takes registrations; then
//! due contacts (`waiting`, `not_before` unset or passed) are selected in list order —
//! on PostgreSQL with `FOR UPDATE OF c SKIP LOCKED`, so two processes on one database
//! take disjoint contacts and never wait for each other; on SQLite the transaction
//! starts with `BEGIN IMMEDIATE` (one writer at a time, across processes too). Each
//! selected contact is re-checked against the do-not-call list and the registrations
//! (a number that opted out, or registered/was surveyed meanwhile, is marked done and
//! never dialled), then moved `waiting → dialing` by a conditional update and its
//! attempt row inserted — `(campaign, contact, attempt_no)` and the Call-ID are unique —
//! before anything is returned. The INVITE leaves only after that commit.
//!
//! # Restart
//!
//! [`Store::recover_dialing`] resolves this instance's attempts left `dialing`, never by
//! re-dialling them: a call record with the attempt's Call-ID → its final is applied; no
//! record but the flow recorded an outcome (or survey answers) → applied as answered; no
//! record and `started_at` unset → the INVITE never left: released, uncharged, the
//! contact due again; otherwise (the INVITE may have reached the subscriber) → `failed`,
//! charged (answered-but-incomplete when it was answered). Each resolution is a
//! separate transaction that only applies to a row still `dialing`.

mod dnc;
mod survey;
mod types;

use std::collections::{BTreeMap, HashSet};

use jiff::Timestamp;

use types::{
    ATTEMPT_COLUMNS, AttemptRaw, CAMPAIGN_COLUMNS, CONTACT_COLUMNS, CampaignRaw, ContactRaw,
    call_later_to_db, kind_str, parse_state, policy_to_db, state_str,
};
pub use types::{
    AttemptEnd, AttemptRow, AttemptStatus, CallLaterRequest, CampaignHoldRow, CampaignLine,
    CampaignProgress, CampaignRow, ClaimHold, ClaimedAttempt, Claims, ContactEnd, ContactRow,
    ContactState, CreatedCampaign, DncEntry, DncImportReport, DncSource, FinishedAttempt,
    FlowOutcome, RecoveredAttempt, Resolution, SatisfactionReport, ScaleSummary, SurveyAnswer,
    SurveyQuestion, YesNoSummary,
};

use std::time::Duration;

use super::error::{StoreError, is_retryable};
use super::types::SubscriberRaw;
use super::{MAX_ATTEMPTS, Pools, REGISTRATIONS_COUNTER, Step, Store, time};
use tongdai_domain::campaign::{
    AttemptFacts, ContactTally, ContactUpdate, Finish, RecordedCall, Recovery, claim_hold,
    closed_at_claim, finish, invitation_exclusion, next_due, recover, refund, survey_exclusion,
};
use tongdai_domain::dialer::{
    CampaignKind, CampaignPolicy, CampaignState, Disposition, RetryDecision,
};
use tongdai_domain::program::{self, ProgramConfig, Status, Subscriber};

/// What [`Store::claim_due`] needs to know.
#[derive(Clone, Copy, Debug)]
pub struct ClaimRequest<'a> {
    pub campaign_id: i64,
    /// This service instance's stable name (survives restarts: recovery uses it).
    pub instance: &'a str,
    /// Claim at most this many contacts (what the pacer allows now).
    pub limit: u32,
    pub now: Timestamp,
    /// The program's rules: invitations stop claiming when the cap is reached or the
    /// registration period is over.
    pub program: &'a ProgramConfig,
}

/// A due contact as the claim query sees it.
#[derive(sqlx::FromRow)]
struct DueRaw {
    id: i64,
    msisdn: String,
    dials: i64,
    registration_id: Option<i64>,
    /// Set when the number is on the do-not-call list.
    dnc: Option<String>,
    /// Status of the number's registration, if it has one.
    reg_status: Option<String>,
}

const SELECT_DUE_SQLITE: &str = "SELECT c.id, c.msisdn, c.dials, c.registration_id, \
     d.msisdn AS dnc, (SELECT r.status FROM registrations r WHERE r.msisdn = c.msisdn) AS reg_status \
     FROM campaign_contacts c LEFT JOIN do_not_call d ON d.msisdn = c.msisdn \
     WHERE c.campaign_id = $1 AND c.state = 'waiting' \
     AND (c.not_before IS NULL OR c.not_before <= $2) \
     ORDER BY COALESCE(c.not_before, ''), c.id LIMIT $3";

/// The same, locking the selected contacts and skipping those another transaction holds.
const SELECT_DUE_POSTGRES: &str = "SELECT c.id, c.msisdn, c.dials, c.registration_id, \
     d.msisdn AS dnc, (SELECT r.status FROM registrations r WHERE r.msisdn = c.msisdn) AS reg_status \
     FROM campaign_contacts c LEFT JOIN do_not_call d ON d.msisdn = c.msisdn \
     WHERE c.campaign_id = $1 AND c.state = 'waiting' \
     AND (c.not_before IS NULL OR c.not_before <= $2) \
     ORDER BY COALESCE(c.not_before, ''), c.id LIMIT $3 FOR UPDATE OF c SKIP LOCKED";

const INSERT_CONTACT: &str = "INSERT INTO campaign_contacts \
     (campaign_id, msisdn, registration_id, state, updated_at) VALUES ($1, $2, $3, 'waiting', $4)";

const MARK_CONTACT_DONE: &str = "UPDATE campaign_contacts SET state = 'done', \
     done_reason = $1, not_before = NULL, updated_at = $2 WHERE id = $3 AND state = 'waiting'";

const CLAIM_CONTACT: &str = "UPDATE campaign_contacts SET state = 'dialing', dials = $1, \
     updated_at = $2 WHERE id = $3 AND state = 'waiting'";

const INSERT_ATTEMPT: &str = "INSERT INTO campaign_attempts \
     (campaign_id, contact_id, attempt_no, call_id, msisdn, claimed_by, claimed_at, status, charged) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, 'dialing', 0) \
     ON CONFLICT (campaign_id, contact_id, attempt_no) DO NOTHING RETURNING id";

const NEXT_DUE: &str = "SELECT MIN(COALESCE(not_before, '')) FROM campaign_contacts \
     WHERE campaign_id = $1 AND state = 'waiting'";

const OPEN_CONTACTS: &str =
    "SELECT COUNT(*) FROM campaign_contacts WHERE campaign_id = $1 AND state <> 'done'";

const COMPLETE_CAMPAIGN: &str = "UPDATE campaigns SET state = 'completed', updated_at = $2, \
     ended_at = $2 WHERE id = $1 AND state IN ('running', 'paused')";

const INSERT_DNC: &str = "INSERT INTO do_not_call (msisdn, source, at, campaign_id, attempt_id, note) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (msisdn) DO NOTHING";

/// Every campaign's waiting contacts of a number that just went on the do-not-call
/// list: done at once, so supervisors' counts are right before the next claim.
const DNC_CLOSE_CONTACTS: &str = "UPDATE campaign_contacts SET state = 'done', \
     done_reason = 'opted_out', not_before = NULL, updated_at = $2 \
     WHERE msisdn = $1 AND state = 'waiting'";

/// What creating a campaign wrote: its id, the contacts inserted, the skipped counts.
type Created = (i64, u32, BTreeMap<&'static str, u32>);
/// Progress query rows: contacts by (state, done reason, last disposition), the answered
/// dialing attempts, finished attempts by (disposition, outcome), the earliest due time.
type ProgressRows = (
    Vec<(String, Option<String>, Option<String>, i64)>,
    i64,
    Vec<(Option<String>, Option<String>, i64)>,
    Option<String>,
);

fn count_u32(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// What the campaign rules read of a contact row.
fn tally(c: &ContactRow) -> ContactTally {
    ContactTally {
        state: c.state,
        done_reason: c.done_reason,
        dials: c.dials,
        attempts_charged: c.attempts_charged,
        uncharged: c.uncharged,
    }
}

/// What the campaign rules read of an attempt row.
fn facts(a: &AttemptRow) -> AttemptFacts {
    AttemptFacts {
        attempt_no: a.attempt_no,
        status: a.status,
        started_at: a.started_at,
        answered_at: a.answered_at,
        disposition: a.disposition,
        outcome: a.outcome,
        call_later: a.call_later,
        charged: a.charged,
    }
}

/// A contact's update as its columns: state, `not_before`, `done_reason`.
fn contact_columns(u: ContactUpdate) -> (ContactState, Option<String>, Option<ContactEnd>) {
    (u.state, u.not_before.map(time::to_db), u.done_reason)
}

/// The earliest instant a waiting contact is due, moved into a calling window, from
/// [`NEXT_DUE`]'s answer: `None` when no contact waits, `""` when one was never dialled.
fn next_due_from(
    min_not_before: Option<String>,
    now: Timestamp,
    policy: &CampaignPolicy,
) -> Result<Option<Timestamp>, StoreError> {
    let Some(text) = min_not_before else {
        return Ok(None);
    };
    let earliest = if text.is_empty() {
        None
    } else {
        Some(time::from_db("campaign_contacts", "not_before", &text)?)
    };
    Ok(next_due(earliest, now, policy))
}

impl Store {
    // ---- creating and listing --------------------------------------------------------

    /// Creates a draft invitation campaign whose contacts are the target list's
    /// subscribers who are eligible by the program's rules (`program::eligibility`: SMS
    /// list, postpaid, minimum charge), hold no registration and are not on the
    /// do-not-call list (`campaign::invitation_exclusion`) — read in the same
    /// transaction that writes the contacts.
    pub async fn create_invitation_campaign(
        &self,
        name: &str,
        policy: CampaignPolicy,
        program: &ProgramConfig,
        now: Timestamp,
    ) -> Result<CreatedCampaign, StoreError> {
        if policy.kind != CampaignKind::Invitation {
            return Err(StoreError::InvalidRequest(
                "an invitation campaign needs a policy with kind = \"invitation\"".into(),
            ));
        }
        let _guard = self.write_guard().await;
        with_retry!(self.create_campaign_once(name, &policy, Some(program), now))
    }

    /// Creates a draft survey campaign over the registrations whose consultation is
    /// done (status `consulted`), leaving out numbers on the do-not-call list.
    pub async fn create_survey_campaign(
        &self,
        name: &str,
        policy: CampaignPolicy,
        now: Timestamp,
    ) -> Result<CreatedCampaign, StoreError> {
        if policy.kind != CampaignKind::Survey {
            return Err(StoreError::InvalidRequest(
                "a survey campaign needs a policy with kind = \"survey\"".into(),
            ));
        }
        let _guard = self.write_guard().await;
        with_retry!(self.create_campaign_once(name, &policy, None, now))
    }

    /// `program` is `Some` for invitations (the eligibility rules), `None` for surveys.
    async fn create_campaign_once(
        &self,
        name: &str,
        policy: &CampaignPolicy,
        program: Option<&ProgramConfig>,
        now: Timestamp,
    ) -> Result<CreatedCampaign, StoreError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(StoreError::InvalidRequest(
                "a campaign needs a name of 1 to 100 characters".into(),
            ));
        }
        policy.validate()?;
        let policy_text = policy_to_db(policy)?;
        let now_db = time::to_db(now);
        let created = on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_sql()).await?;
            let step: Result<Step<Created>, StoreError> = async {
                let id: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO campaigns (name, kind, dialplan, policy, state, created_at, \
                     updated_at) VALUES ($1, $2, $3, $4, 'draft', $5, $5) \
                     ON CONFLICT (name) DO NOTHING RETURNING id",
                )
                .bind(name)
                .bind(kind_str(policy.kind))
                .bind(&policy.dialplan)
                .bind(&policy_text)
                .bind(&now_db)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(id) = id else {
                    return Err(StoreError::CampaignExists(name.to_owned()));
                };
                let dnc: HashSet<String> = sqlx::query_scalar("SELECT msisdn FROM do_not_call")
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .collect();
                let mut skipped: BTreeMap<&'static str, u32> = BTreeMap::new();
                let mut skip = |why: tongdai_domain::campaign::Exclusion| {
                    *skipped.entry(why.as_str()).or_default() += 1;
                };
                let mut contacts: Vec<(String, Option<i64>)> = Vec::new();
                if let Some(program) = program {
                    let registered: HashSet<String> =
                        sqlx::query_scalar("SELECT msisdn FROM registrations")
                            .fetch_all(&mut *tx)
                            .await?
                            .into_iter()
                            .collect();
                    let subs = sqlx::query_as::<_, SubscriberRaw>(
                        "SELECT msisdn, plan, charge_per_cycle_vnd, list_source, name, \
                         imported_at, import_batch FROM subscribers ORDER BY imported_at, msisdn",
                    )
                    .fetch_all(&mut *tx)
                    .await?;
                    for raw in subs {
                        let sub = Subscriber::try_from(raw)?;
                        let registered = registered.contains(&sub.msisdn);
                        let on_dnc = dnc.contains(&sub.msisdn);
                        match invitation_exclusion(&sub, registered, on_dnc, program) {
                            Some(why) => skip(why),
                            None => contacts.push((sub.msisdn, None)),
                        }
                    }
                } else {
                    let rows: Vec<(i64, String)> = sqlx::query_as(
                        "SELECT id, msisdn FROM registrations WHERE status = $1 ORDER BY id",
                    )
                    .bind(Status::Consulted.as_str())
                    .fetch_all(&mut *tx)
                    .await?;
                    for (reg_id, msisdn) in rows {
                        match survey_exclusion(dnc.contains(&msisdn)) {
                            Some(why) => skip(why),
                            None => contacts.push((msisdn, Some(reg_id))),
                        }
                    }
                }
                for (msisdn, reg_id) in &contacts {
                    sqlx::query(INSERT_CONTACT)
                        .bind(id)
                        .bind(msisdn)
                        .bind(reg_id)
                        .bind(&now_db)
                        .execute(&mut *tx)
                        .await?;
                }
                Ok(Step::Commit((id, count_u32(contacts.len() as i64), skipped)))
            }
            .await;
            finish!(tx, step)
        })?;
        let (id, contacts, skipped) = created;
        let campaign = self
            .campaign(id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "campaign",
                key: id.to_string(),
            })?;
        tracing::info!(campaign = id, name, contacts, ?skipped, "campaign created");
        Ok(CreatedCampaign {
            campaign,
            contacts,
            skipped,
        })
    }

    pub async fn campaign(&self, id: i64) -> Result<Option<CampaignRow>, StoreError> {
        let raw = on_pool!(self, pool => {
            sqlx::query_as::<_, CampaignRaw>(sqlx::AssertSqlSafe(format!(
                "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        raw.map(CampaignRow::try_from).transpose()
    }

    pub async fn campaign_by_name(&self, name: &str) -> Result<Option<CampaignRow>, StoreError> {
        let raw = on_pool!(self, pool => {
            sqlx::query_as::<_, CampaignRaw>(sqlx::AssertSqlSafe(format!(
                "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE name = $1"
            )))
            .bind(name.trim())
            .fetch_optional(pool)
            .await?
        });
        raw.map(CampaignRow::try_from).transpose()
    }

    /// Every campaign, newest first.
    pub async fn campaigns(&self) -> Result<Vec<CampaignRow>, StoreError> {
        let raws = on_pool!(self, pool => {
            sqlx::query_as::<_, CampaignRaw>(sqlx::AssertSqlSafe(format!(
                "SELECT {CAMPAIGN_COLUMNS} FROM campaigns ORDER BY id DESC"
            )))
            .fetch_all(pool)
            .await?
        });
        raws.into_iter().map(CampaignRow::try_from).collect()
    }

    // ---- lifecycle -------------------------------------------------------------------

    /// Draft → running. A campaign with no open contact completes at once.
    pub async fn start_campaign(&self, id: i64, now: Timestamp) -> Result<CampaignRow, StoreError> {
        self.campaign_command(
            id,
            "start",
            &[CampaignState::Draft],
            CampaignState::Running,
            now,
        )
        .await
    }

    /// Running → paused: nothing new is claimed; calls in progress finish normally.
    pub async fn pause_campaign(&self, id: i64, now: Timestamp) -> Result<CampaignRow, StoreError> {
        self.campaign_command(
            id,
            "pause",
            &[CampaignState::Running],
            CampaignState::Paused,
            now,
        )
        .await
    }

    /// Paused → running.
    pub async fn resume_campaign(
        &self,
        id: i64,
        now: Timestamp,
    ) -> Result<CampaignRow, StoreError> {
        self.campaign_command(
            id,
            "resume",
            &[CampaignState::Paused],
            CampaignState::Running,
            now,
        )
        .await
    }

    /// Draft/running/paused → stopped, for good. Attempts in progress are still
    /// finished and recorded; their contacts are not claimed again.
    pub async fn stop_campaign(&self, id: i64, now: Timestamp) -> Result<CampaignRow, StoreError> {
        self.campaign_command(
            id,
            "stop",
            &[
                CampaignState::Draft,
                CampaignState::Running,
                CampaignState::Paused,
            ],
            CampaignState::Stopped,
            now,
        )
        .await
    }

    async fn campaign_command(
        &self,
        id: i64,
        command: &'static str,
        from: &[CampaignState],
        to: CampaignState,
        now: Timestamp,
    ) -> Result<CampaignRow, StoreError> {
        let now_db = time::to_db(now);
        for _ in 0..MAX_ATTEMPTS {
            let changed = {
                let _guard = self.write_guard().await;
                with_retry!(async {
                    on_pool!(self, pool => {
                        let mut tx = pool.begin_with(self.begin_sql()).await?;
                        let step: Result<Step<bool>, StoreError> = async {
                            let state: Option<String> =
                                sqlx::query_scalar("SELECT state FROM campaigns WHERE id = $1")
                                    .bind(id)
                                    .fetch_optional(&mut *tx)
                                    .await?;
                            let Some(state) = state else {
                                return Err(StoreError::NotFound { what: "campaign", key: id.to_string() });
                            };
                            let state = parse_state(&state)
                                .map_err(|e| super::error::corrupt("campaigns", "state", e))?;
                            if !from.contains(&state) {
                                return Err(StoreError::InvalidCampaignCommand { id, command, state });
                            }
                            let n = sqlx::query(
                                "UPDATE campaigns SET state = $1, updated_at = $2, \
                                 started_at = CASE WHEN $1 = 'running' THEN COALESCE(started_at, $2) \
                                 ELSE started_at END, \
                                 ended_at = CASE WHEN $1 = 'stopped' THEN $2 ELSE ended_at END \
                                 WHERE id = $3 AND state = $4",
                            )
                            .bind(state_str(to))
                            .bind(&now_db)
                            .bind(id)
                            .bind(state_str(state))
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                            if n != 1 {
                                return Ok(Step::Rollback(false));
                            }
                            if to == CampaignState::Running {
                                let open: i64 = sqlx::query_scalar(OPEN_CONTACTS)
                                    .bind(id)
                                    .fetch_one(&mut *tx)
                                    .await?;
                                if open == 0 {
                                    sqlx::query(COMPLETE_CAMPAIGN)
                                        .bind(id)
                                        .bind(&now_db)
                                        .execute(&mut *tx)
                                        .await?;
                                }
                            }
                            Ok(Step::Commit(true))
                        }
                        .await;
                        finish!(tx, step)
                    })
                })?
            };
            if changed {
                tracing::info!(campaign = id, command, "campaign command");
                return self
                    .campaign(id)
                    .await?
                    .ok_or_else(|| StoreError::NotFound {
                        what: "campaign",
                        key: id.to_string(),
                    });
            }
        }
        Err(StoreError::Conflict(format!(
            "campaign {id} kept changing during {command}"
        )))
    }

    // ---- claiming --------------------------------------------------------------------

    /// Claims up to `req.limit` due contacts for dialling, exactly once (see the module
    /// doc): each gets an attempt row with a Call-ID from `new_call_id`, committed
    /// before this returns. Place each INVITE with exactly that Call-ID, and call
    /// [`Store::attempt_started`] just before handing it to the transport.
    ///
    /// Nothing is claimed when the campaign is not running, outside its calling
    /// windows, or — for invitations — when the program's cap is reached or its
    /// registration period is not open (`Claims::held` says which). A campaign found
    /// with no open contact left completes.
    pub async fn claim_due<F>(
        &self,
        req: &ClaimRequest<'_>,
        mut new_call_id: F,
    ) -> Result<Claims, StoreError>
    where
        F: FnMut() -> String + Send,
    {
        if req.limit == 0 {
            return Ok(Claims::default());
        }
        let _guard = self.write_guard().await;
        with_retry!(self.claim_once(req, &mut new_call_id))
    }

    async fn claim_once<F>(
        &self,
        req: &ClaimRequest<'_>,
        new_call_id: &mut F,
    ) -> Result<Claims, StoreError>
    where
        F: FnMut() -> String + Send,
    {
        let now = req.now;
        let now_db = time::to_db(now);
        let select_due = match self.pool {
            Pools::Sqlite(_) => SELECT_DUE_SQLITE,
            Pools::Postgres(_) => SELECT_DUE_POSTGRES,
        };
        on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_sql()).await?;
            let step: Result<Step<Claims>, StoreError> = async {
                let raw = sqlx::query_as::<_, CampaignRaw>(sqlx::AssertSqlSafe(format!(
                    "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1"
                )))
                .bind(req.campaign_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(raw) = raw else {
                    return Err(StoreError::NotFound { what: "campaign", key: req.campaign_id.to_string() });
                };
                let campaign = CampaignRow::try_from(raw)?;
                let policy = &campaign.policy;
                let next_due = next_due_from(
                    sqlx::query_scalar(NEXT_DUE)
                        .bind(campaign.id)
                        .fetch_one(&mut *tx)
                        .await?,
                    now,
                    policy,
                )?;
                let used: Option<i64> =
                    sqlx::query_scalar("SELECT used FROM program_counters WHERE name = $1")
                        .bind(REGISTRATIONS_COUNTER)
                        .fetch_optional(&mut *tx)
                        .await?;
                let places_taken = u64::try_from(used.unwrap_or(0)).unwrap_or(0);
                let hold = claim_hold(
                    campaign.state,
                    campaign.kind,
                    policy,
                    req.program,
                    places_taken,
                    now,
                )
                .map_err(|e| StoreError::InvalidRequest(e.to_string()))?;
                if let Some(hold) = hold {
                    return Ok(Step::Rollback(Claims {
                        attempts: Vec::new(),
                        held: Some(hold),
                        next_due,
                        skipped: 0,
                    }));
                }

                let mut claims = Claims::default();
                // Contacts done on the way do not count against the limit: select again.
                for _ in 0..8 {
                    let want = req.limit as usize - claims.attempts.len();
                    if want == 0 {
                        break;
                    }
                    let due = sqlx::query_as::<_, DueRaw>(select_due)
                        .bind(campaign.id)
                        .bind(&now_db)
                        .bind(want as i64)
                        .fetch_all(&mut *tx)
                        .await?;
                    let found = due.len();
                    let mut skipped_now = 0;
                    for c in due {
                        let registration = c
                            .reg_status
                            .as_deref()
                            .map(|s| {
                                s.parse::<Status>().map_err(|e| {
                                    super::error::corrupt("registrations", "status", e)
                                })
                            })
                            .transpose()?;
                        let closed = closed_at_claim(campaign.kind, c.dnc.is_some(), registration);
                        if let Some(end) = closed {
                            sqlx::query(MARK_CONTACT_DONE)
                                .bind(end.as_str())
                                .bind(&now_db)
                                .bind(c.id)
                                .execute(&mut *tx)
                                .await?;
                            skipped_now += 1;
                            continue;
                        }
                        let attempt_no = c.dials + 1;
                        let moved = sqlx::query(CLAIM_CONTACT)
                            .bind(attempt_no)
                            .bind(&now_db)
                            .bind(c.id)
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        if moved != 1 {
                            continue; // taken meanwhile (cannot happen under the locks)
                        }
                        let call_id = new_call_id();
                        let attempt_id: Option<i64> = sqlx::query_scalar(INSERT_ATTEMPT)
                            .bind(campaign.id)
                            .bind(c.id)
                            .bind(attempt_no)
                            .bind(&call_id)
                            .bind(&c.msisdn)
                            .bind(req.instance)
                            .bind(&now_db)
                            .fetch_optional(&mut *tx)
                            .await?;
                        let Some(attempt_id) = attempt_id else {
                            // Someone else holds this attempt number: give up this claim.
                            return Err(StoreError::Conflict(format!(
                                "attempt {attempt_no} of contact {} already exists", c.id
                            )));
                        };
                        claims.attempts.push(ClaimedAttempt {
                            attempt_id,
                            campaign_id: campaign.id,
                            contact_id: c.id,
                            kind: campaign.kind,
                            dialplan: campaign.dialplan.clone(),
                            msisdn: c.msisdn,
                            attempt_no: count_u32(attempt_no),
                            call_id,
                            registration_id: c.registration_id,
                            ring_timeout: policy.ring_timeout,
                        });
                    }
                    claims.skipped += skipped_now;
                    if found < want || skipped_now == 0 {
                        break;
                    }
                }
                claims.next_due = next_due_from(
                    sqlx::query_scalar(NEXT_DUE)
                        .bind(campaign.id)
                        .fetch_one(&mut *tx)
                        .await?,
                    now,
                    policy,
                )?;
                if claims.attempts.is_empty() {
                    let open: i64 = sqlx::query_scalar(OPEN_CONTACTS)
                        .bind(campaign.id)
                        .fetch_one(&mut *tx)
                        .await?;
                    if open == 0 {
                        sqlx::query(COMPLETE_CAMPAIGN)
                            .bind(campaign.id)
                            .bind(&now_db)
                            .execute(&mut *tx)
                            .await?;
                        tracing::info!(campaign = campaign.id, "campaign completed");
                    }
                }
                Ok(Step::Commit(claims))
            }
            .await;
            finish!(tx, step)
        })
    }

    /// Marks that the INVITE of this attempt is about to be handed to the transport.
    /// Call it *before* sending: after a crash, an attempt without it is known never to
    /// have left and is released uncharged; one with it may have rung the subscriber.
    /// `false` when the attempt is not `dialing` (or was already marked).
    pub async fn attempt_started(
        &self,
        attempt_id: i64,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.mark_attempt(
            "UPDATE campaign_attempts SET started_at = $1 \
             WHERE id = $2 AND status = 'dialing' AND started_at IS NULL",
            attempt_id,
            at,
        )
        .await
    }

    /// Marks the 2xx: the contact counts as "in call" until the attempt finishes.
    pub async fn attempt_answered(
        &self,
        attempt_id: i64,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        self.mark_attempt(
            "UPDATE campaign_attempts SET answered_at = $1, started_at = COALESCE(started_at, $1) \
             WHERE id = $2 AND status = 'dialing' AND answered_at IS NULL",
            attempt_id,
            at,
        )
        .await
    }

    async fn mark_attempt(
        &self,
        sql: &'static str,
        attempt_id: i64,
        at: Timestamp,
    ) -> Result<bool, StoreError> {
        let at = time::to_db(at);
        let _guard = self.write_guard().await;
        let n = with_retry!(async {
            let n = on_pool!(self, pool => {
                sqlx::query(sql)
                    .bind(&at)
                    .bind(attempt_id)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            Ok::<u64, StoreError>(n)
        })?;
        Ok(n == 1)
    }

    // ---- finishing -------------------------------------------------------------------

    /// Records how an attempt ended and moves its contact on, in one transaction, as
    /// `tongdai_domain::campaign::finish` decides: the raw SIP code, Reason,
    /// disposition and the flow's outcome (recorded on the attempt by the dialplan's
    /// actions; a survey with answers but no completion is `survey_partial`) on the
    /// attempt; the retry decision on the contact (retry `not_before` inside a calling
    /// window and the charged count, or done); an opt-out onto the do-not-call list.
    /// Busy/congested finals while the pacer throttles, and our own CANCEL, are retried
    /// uncharged (at most `MAX_UNCHARGED_RETRIES` times).
    ///
    /// [`StoreError::AttemptNotDialing`] if the attempt was already finished or
    /// released (e.g. resolved by recovery): nothing is changed.
    pub async fn finish_attempt(
        &self,
        attempt_id: i64,
        end: &AttemptEnd,
    ) -> Result<FinishedAttempt, StoreError> {
        self.finish_attempt_as(attempt_id, end, Resolution::Final)
            .await
    }

    async fn finish_attempt_as(
        &self,
        attempt_id: i64,
        end: &AttemptEnd,
        resolution: Resolution,
    ) -> Result<FinishedAttempt, StoreError> {
        let _guard = self.write_guard().await;
        with_retry!(self.finish_once(attempt_id, end, resolution))
    }

    async fn finish_once(
        &self,
        attempt_id: i64,
        end: &AttemptEnd,
        resolution: Resolution,
    ) -> Result<FinishedAttempt, StoreError> {
        let ended_db = time::to_db(end.ended_at);
        on_pool!(self, pool => {
            let mut tx = pool.begin_with(self.begin_sql()).await?;
            let step: Result<Step<FinishedAttempt>, StoreError> = async {
                // Taking the row from 'dialing' first makes this the only finisher.
                let taken = sqlx::query(
                    "UPDATE campaign_attempts SET status = 'finished' \
                     WHERE id = $1 AND status = 'dialing'",
                )
                .bind(attempt_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let attempt = sqlx::query_as::<_, AttemptRaw>(sqlx::AssertSqlSafe(format!(
                    "SELECT {ATTEMPT_COLUMNS} FROM campaign_attempts WHERE id = $1"
                )))
                .bind(attempt_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(attempt) = attempt else {
                    return Err(StoreError::NotFound { what: "attempt", key: attempt_id.to_string() });
                };
                let attempt = AttemptRow::try_from(attempt)?;
                if taken != 1 {
                    return Err(StoreError::AttemptNotDialing { id: attempt_id, status: attempt.status });
                }
                let contact = sqlx::query_as::<_, ContactRaw>(sqlx::AssertSqlSafe(format!(
                    "SELECT {CONTACT_COLUMNS} FROM campaign_contacts WHERE id = $1"
                )))
                .bind(attempt.contact_id)
                .fetch_one(&mut *tx)
                .await?;
                let contact = ContactRow::try_from(contact)?;
                let campaign = sqlx::query_as::<_, CampaignRaw>(sqlx::AssertSqlSafe(format!(
                    "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1"
                )))
                .bind(attempt.campaign_id)
                .fetch_one(&mut *tx)
                .await?;
                let campaign = CampaignRow::try_from(campaign)?;

                let answers: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM survey_answers WHERE attempt_id = $1",
                )
                .bind(attempt_id)
                .fetch_one(&mut *tx)
                .await?;
                let Finish {
                    outcome,
                    decision,
                    charged,
                    contact: update,
                    attempts_charged,
                    uncharged,
                    do_not_call,
                } = finish(
                    campaign.kind,
                    &campaign.policy,
                    &tally(&contact),
                    &facts(&attempt),
                    answers > 0,
                    end,
                );

                sqlx::query(
                    "UPDATE campaign_attempts SET answered_at = COALESCE($1, answered_at), \
                     ended_at = $2, sip_code = $3, reason = $4, disposition = $5, outcome = $6, \
                     charged = $7, resolution = $8 WHERE id = $9",
                )
                .bind(end.answered_at.map(time::to_db))
                .bind(&ended_db)
                .bind(end.sip_code.map(i64::from))
                .bind(&end.reason)
                .bind(end.disposition.as_str())
                .bind(outcome.map(FlowOutcome::as_str))
                .bind(i64::from(charged))
                .bind(resolution.as_str())
                .bind(attempt_id)
                .execute(&mut *tx)
                .await?;

                let (state, not_before, done) = contact_columns(update);
                sqlx::query(
                    "UPDATE campaign_contacts SET state = $1, not_before = $2, \
                     attempts_charged = $3, uncharged = $4, last_disposition = $5, \
                     last_sip_code = $6, last_outcome = $7, done_reason = $8, updated_at = $9 \
                     WHERE id = $10",
                )
                .bind(state.as_str())
                .bind(&not_before)
                .bind(i64::from(attempts_charged))
                .bind(i64::from(uncharged))
                .bind(end.disposition.as_str())
                .bind(end.sip_code.map(i64::from))
                .bind(outcome.map(FlowOutcome::as_str))
                .bind(done.map(ContactEnd::as_str))
                .bind(&ended_db)
                .bind(contact.id)
                .execute(&mut *tx)
                .await?;

                if do_not_call {
                    sqlx::query(INSERT_DNC)
                        .bind(&attempt.msisdn)
                        .bind(DncSource::Keypad.as_str())
                        .bind(&ended_db)
                        .bind(campaign.id)
                        .bind(attempt_id)
                        .bind("")
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(DNC_CLOSE_CONTACTS)
                        .bind(&attempt.msisdn)
                        .bind(&ended_db)
                        .execute(&mut *tx)
                        .await?;
                }
                let open: i64 = sqlx::query_scalar(OPEN_CONTACTS)
                    .bind(campaign.id)
                    .fetch_one(&mut *tx)
                    .await?;
                if open == 0 {
                    sqlx::query(COMPLETE_CAMPAIGN)
                        .bind(campaign.id)
                        .bind(&ended_db)
                        .execute(&mut *tx)
                        .await?;
                }

                let attempt = AttemptRow::try_from(
                    sqlx::query_as::<_, AttemptRaw>(sqlx::AssertSqlSafe(format!(
                        "SELECT {ATTEMPT_COLUMNS} FROM campaign_attempts WHERE id = $1"
                    )))
                    .bind(attempt_id)
                    .fetch_one(&mut *tx)
                    .await?,
                )?;
                let contact = ContactRow::try_from(
                    sqlx::query_as::<_, ContactRaw>(sqlx::AssertSqlSafe(format!(
                        "SELECT {CONTACT_COLUMNS} FROM campaign_contacts WHERE id = $1"
                    )))
                    .bind(contact.id)
                    .fetch_one(&mut *tx)
                    .await?,
                )?;
                Ok(Step::Commit(FinishedAttempt { attempt, contact, decision }))
            }
            .await;
            finish!(tx, step)
        })
    }

    /// Gives back the attempt charged for a busy/congested final that turned out to be
    /// the start of a trunk-throttling burst (the pacer tells: see `dialer::pacer`):
    /// the contact gets an uncharged retry after `retry.throttled` instead. Only for
    /// the contact's latest attempt, while it is waiting (or done for max attempts) and
    /// has uncharged retries left (`tongdai_domain::campaign::refund`); `None` when not
    /// eligible.
    pub async fn refund_attempt(
        &self,
        attempt_id: i64,
        now: Timestamp,
    ) -> Result<Option<RetryDecision>, StoreError> {
        let now_db = time::to_db(now);
        let _guard = self.write_guard().await;
        with_retry!(async {
            on_pool!(self, pool => {
                let mut tx = pool.begin_with(self.begin_sql()).await?;
                let step: Result<Step<Option<RetryDecision>>, StoreError> = async {
                    let attempt = sqlx::query_as::<_, AttemptRaw>(sqlx::AssertSqlSafe(format!(
                        "SELECT {ATTEMPT_COLUMNS} FROM campaign_attempts WHERE id = $1"
                    )))
                    .bind(attempt_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(attempt) = attempt else {
                        return Err(StoreError::NotFound { what: "attempt", key: attempt_id.to_string() });
                    };
                    let attempt = AttemptRow::try_from(attempt)?;
                    let contact = ContactRow::try_from(
                        sqlx::query_as::<_, ContactRaw>(sqlx::AssertSqlSafe(format!(
                            "SELECT {CONTACT_COLUMNS} FROM campaign_contacts WHERE id = $1"
                        )))
                        .bind(attempt.contact_id)
                        .fetch_one(&mut *tx)
                        .await?,
                    )?;
                    let campaign = CampaignRow::try_from(
                        sqlx::query_as::<_, CampaignRaw>(sqlx::AssertSqlSafe(format!(
                            "SELECT {CAMPAIGN_COLUMNS} FROM campaigns WHERE id = $1"
                        )))
                        .bind(attempt.campaign_id)
                        .fetch_one(&mut *tx)
                        .await?,
                    )?;
                    let decision = refund(
                        &facts(&attempt),
                        &tally(&contact),
                        campaign.state,
                        now,
                        &campaign.policy,
                    );
                    let Some(decision) = decision else {
                        return Ok(Step::Rollback(None));
                    };
                    let (state, not_before, done) = contact_columns(ContactUpdate::from(decision));
                    sqlx::query("UPDATE campaign_attempts SET charged = 0 WHERE id = $1")
                        .bind(attempt_id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "UPDATE campaign_contacts SET state = $1, not_before = $2, \
                         attempts_charged = attempts_charged - 1, uncharged = uncharged + 1, \
                         done_reason = $3, updated_at = $4 WHERE id = $5",
                    )
                    .bind(state.as_str())
                    .bind(&not_before)
                    .bind(done.map(ContactEnd::as_str))
                    .bind(&now_db)
                    .bind(contact.id)
                    .execute(&mut *tx)
                    .await?;
                    Ok(Step::Commit(Some(decision)))
                }
                .await;
                finish!(tx, step)
            })
        })
    }

    // ---- recovery --------------------------------------------------------------------

    /// Resolves every attempt `instance` left `dialing` (a crash, `kill -9`), as the
    /// module doc says; call it at start-up before claiming. Attempts of other
    /// instances are left alone (they may be live). Returns what was done, in id order.
    pub async fn recover_dialing(
        &self,
        instance: &str,
        now: Timestamp,
    ) -> Result<Vec<RecoveredAttempt>, StoreError> {
        let raws = on_pool!(self, pool => {
            sqlx::query_as::<_, AttemptRaw>(sqlx::AssertSqlSafe(format!(
                "SELECT {ATTEMPT_COLUMNS} FROM campaign_attempts \
                 WHERE status = 'dialing' AND claimed_by = $1 ORDER BY id"
            )))
            .bind(instance)
            .fetch_all(pool)
            .await?
        });
        let mut out = Vec::new();
        for raw in raws {
            let attempt = AttemptRow::try_from(raw)?;
            let record = self.call_record(&attempt.call_id).await?;
            let answers: i64 = on_pool!(self, pool => {
                sqlx::query_scalar("SELECT COUNT(*) FROM survey_answers WHERE attempt_id = $1")
                    .bind(attempt.id)
                    .fetch_one(pool)
                    .await?
            });
            let recorded = record.as_ref().map(|rec| RecordedCall {
                answered_at: rec.answered_at,
                ended_at: rec.ended_at,
                final_status: rec.final_status,
                disposition: rec.disposition,
                end_reason: &rec.end_reason,
            });
            let plan = recover(&facts(&attempt), recorded.as_ref(), answers > 0, now);
            let (result, resolution) = match &plan {
                Recovery::Finish { end, resolution } => (
                    self.finish_attempt_as(attempt.id, end, *resolution)
                        .await
                        .map(|f| Some(f.attempt.disposition)),
                    *resolution,
                ),
                Recovery::Release => (
                    self.release_attempt(attempt.id, now).await.map(|_| None),
                    Resolution::RecoveredNoTrace,
                ),
            };
            let disposition = match result {
                Ok(d) => d.flatten(),
                // Finished meanwhile by someone else: nothing left to recover.
                Err(StoreError::AttemptNotDialing { .. }) => continue,
                Err(e) => return Err(e),
            };
            tracing::warn!(attempt = attempt.id, call_id = %attempt.call_id,
                resolution = resolution.as_str(), "recovered an attempt left dialing");
            out.push(RecoveredAttempt {
                attempt_id: attempt.id,
                call_id: attempt.call_id,
                resolution,
                disposition,
            });
        }
        Ok(out)
    }

    /// The INVITE of a claimed attempt never left (the dial was refused before anything
    /// was sent — no RTP port, SIP at `max_calls`, shutting down — or a restart found no
    /// trace of it): the attempt is `released` (not charged, resolution
    /// `recovered_no_trace`) and its contact is due again as it was.
    /// [`StoreError::AttemptNotDialing`] when it is no longer `dialing`.
    pub async fn release_attempt(&self, attempt_id: i64, now: Timestamp) -> Result<(), StoreError> {
        let now_db = time::to_db(now);
        let _guard = self.write_guard().await;
        with_retry!(async {
            on_pool!(self, pool => {
                let mut tx = pool.begin_with(self.begin_sql()).await?;
                let step: Result<Step<()>, StoreError> = async {
                    let contact: Option<i64> = sqlx::query_scalar(
                        "UPDATE campaign_attempts SET status = 'released', ended_at = $1, \
                         resolution = 'recovered_no_trace' WHERE id = $2 AND status = 'dialing' \
                         RETURNING contact_id",
                    )
                    .bind(&now_db)
                    .bind(attempt_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(contact) = contact else {
                        return Err(StoreError::AttemptNotDialing {
                            id: attempt_id,
                            status: AttemptStatus::Finished,
                        });
                    };
                    sqlx::query(
                        "UPDATE campaign_contacts SET state = 'waiting', updated_at = $1 \
                         WHERE id = $2 AND state = 'dialing'",
                    )
                    .bind(&now_db)
                    .bind(contact)
                    .execute(&mut *tx)
                    .await?;
                    Ok(Step::Commit(()))
                }
                .await;
                finish!(tx, step)
            })
        })
    }

    // ---- the dialer's holds -------------------------------------------------------------

    /// Records why the dialer (`instance`) is not dialling a campaign (`Some((code,
    /// detail))`), or that it dials again (`None`). `since` is kept while the code stays
    /// the same.
    pub async fn set_campaign_hold(
        &self,
        campaign_id: i64,
        instance: &str,
        hold: Option<(&str, &str)>,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let now_db = time::to_db(now);
        let _guard = self.write_guard().await;
        with_retry!(async {
            on_pool!(self, pool => {
                match hold {
                    None => {
                        sqlx::query("DELETE FROM campaign_holds WHERE campaign_id = $1")
                            .bind(campaign_id)
                            .execute(pool)
                            .await?;
                    }
                    Some((code, detail)) => {
                        sqlx::query(
                            "INSERT INTO campaign_holds (campaign_id, code, detail, instance, since) \
                             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (campaign_id) DO UPDATE SET \
                             since = CASE WHEN campaign_holds.code = excluded.code \
                             THEN campaign_holds.since ELSE excluded.since END, \
                             code = excluded.code, detail = excluded.detail, instance = excluded.instance",
                        )
                        .bind(campaign_id)
                        .bind(code)
                        .bind(detail)
                        .bind(instance)
                        .bind(&now_db)
                        .execute(pool)
                        .await?;
                    }
                }
            });
            Ok::<(), StoreError>(())
        })
    }

    /// Removes every hold `instance` reported (at start-up: what a previous run left).
    pub async fn clear_campaign_holds(&self, instance: &str) -> Result<(), StoreError> {
        let _guard = self.write_guard().await;
        with_retry!(async {
            on_pool!(self, pool => {
                sqlx::query("DELETE FROM campaign_holds WHERE instance = $1")
                    .bind(instance)
                    .execute(pool)
                    .await?;
            });
            Ok::<(), StoreError>(())
        })
    }

    /// The dialer's hold of a campaign, if any.
    pub async fn campaign_hold(
        &self,
        campaign_id: i64,
    ) -> Result<Option<CampaignHoldRow>, StoreError> {
        let row: Option<(String, String, String, String)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT code, detail, instance, since FROM campaign_holds WHERE campaign_id = $1",
            )
            .bind(campaign_id)
            .fetch_optional(pool)
            .await?
        });
        row.map(|(code, detail, instance, since)| {
            Ok(CampaignHoldRow {
                code,
                detail,
                instance,
                since: time::from_db("campaign_holds", "since", &since)?,
            })
        })
        .transpose()
    }

    // ---- what the dialplan's actions record -------------------------------------------

    /// Records the flow's outcome on a `dialing` attempt (the call is answered: the
    /// answer time is set if the runtime has not yet). An opt-out already recorded is
    /// never overwritten. `false` when the attempt is no longer dialing.
    pub async fn record_flow_outcome(
        &self,
        attempt_id: i64,
        outcome: FlowOutcome,
        call_later: Option<CallLaterRequest>,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let now_db = time::to_db(now);
        let later = call_later.map(call_later_to_db);
        let _guard = self.write_guard().await;
        let n = with_retry!(async {
            let n = on_pool!(self, pool => {
                sqlx::query(
                    "UPDATE campaign_attempts SET outcome = $1, call_later = $2, \
                     answered_at = COALESCE(answered_at, $3), started_at = COALESCE(started_at, $3) \
                     WHERE id = $4 AND status = 'dialing' \
                     AND (outcome IS NULL OR outcome <> 'opted_out')",
                )
                .bind(outcome.as_str())
                .bind(&later)
                .bind(&now_db)
                .bind(attempt_id)
                .execute(pool)
                .await?
                .rows_affected()
            });
            Ok::<u64, StoreError>(n)
        })?;
        Ok(n == 1)
    }

    /// The subscriber pressed the opt-out key: in one transaction the number goes on
    /// the do-not-call list (source `keypad`), every campaign's waiting contact of it
    /// is closed, and the attempt's outcome becomes `opted_out`. Done at once — not
    /// when the call ends — so a crash or a lost BYE cannot forget the request.
    pub async fn opt_out_attempt(&self, attempt_id: i64, now: Timestamp) -> Result<(), StoreError> {
        let now_db = time::to_db(now);
        let _guard = self.write_guard().await;
        with_retry!(async {
            on_pool!(self, pool => {
                let mut tx = pool.begin_with(self.begin_sql()).await?;
                let step: Result<Step<()>, StoreError> = async {
                    let row: Option<(String, i64)> = sqlx::query_as(
                        "SELECT msisdn, campaign_id FROM campaign_attempts WHERE id = $1",
                    )
                    .bind(attempt_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some((msisdn, campaign_id)) = row else {
                        return Err(StoreError::NotFound { what: "attempt", key: attempt_id.to_string() });
                    };
                    sqlx::query(INSERT_DNC)
                        .bind(&msisdn)
                        .bind(DncSource::Keypad.as_str())
                        .bind(&now_db)
                        .bind(campaign_id)
                        .bind(attempt_id)
                        .bind("")
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(DNC_CLOSE_CONTACTS)
                        .bind(&msisdn)
                        .bind(&now_db)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "UPDATE campaign_attempts SET outcome = 'opted_out', \
                         answered_at = COALESCE(answered_at, $1), started_at = COALESCE(started_at, $1) \
                         WHERE id = $2 AND status = 'dialing'",
                    )
                    .bind(&now_db)
                    .bind(attempt_id)
                    .execute(&mut *tx)
                    .await?;
                    Ok(Step::Commit(()))
                }
                .await;
                finish!(tx, step)
            })
        })
    }

    // ---- reading ---------------------------------------------------------------------

    pub async fn attempt(&self, id: i64) -> Result<Option<AttemptRow>, StoreError> {
        self.attempt_where("id = $1", id).await
    }

    /// The attempt whose INVITE carries this Call-ID.
    pub async fn attempt_by_call_id(
        &self,
        call_id: &str,
    ) -> Result<Option<AttemptRow>, StoreError> {
        let raw = on_pool!(self, pool => {
            sqlx::query_as::<_, AttemptRaw>(sqlx::AssertSqlSafe(format!(
                "SELECT {ATTEMPT_COLUMNS} FROM campaign_attempts WHERE call_id = $1"
            )))
            .bind(call_id)
            .fetch_optional(pool)
            .await?
        });
        raw.map(AttemptRow::try_from).transpose()
    }

    async fn attempt_where(&self, cond: &str, key: i64) -> Result<Option<AttemptRow>, StoreError> {
        let raw = on_pool!(self, pool => {
            sqlx::query_as::<_, AttemptRaw>(sqlx::AssertSqlSafe(format!(
                "SELECT {ATTEMPT_COLUMNS} FROM campaign_attempts WHERE {cond}"
            )))
            .bind(key)
            .fetch_optional(pool)
            .await?
        });
        raw.map(AttemptRow::try_from).transpose()
    }

    /// A campaign's attempts, oldest first.
    pub async fn campaign_attempts(&self, campaign_id: i64) -> Result<Vec<AttemptRow>, StoreError> {
        let raws = on_pool!(self, pool => {
            sqlx::query_as::<_, AttemptRaw>(sqlx::AssertSqlSafe(format!(
                "SELECT {ATTEMPT_COLUMNS} FROM campaign_attempts WHERE campaign_id = $1 ORDER BY id"
            )))
            .bind(campaign_id)
            .fetch_all(pool)
            .await?
        });
        raws.into_iter().map(AttemptRow::try_from).collect()
    }

    pub async fn contact(&self, id: i64) -> Result<Option<ContactRow>, StoreError> {
        let raw = on_pool!(self, pool => {
            sqlx::query_as::<_, ContactRaw>(sqlx::AssertSqlSafe(format!(
                "SELECT {CONTACT_COLUMNS} FROM campaign_contacts WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(pool)
            .await?
        });
        raw.map(ContactRow::try_from).transpose()
    }

    /// The contact of a number in a campaign (any number form).
    pub async fn campaign_contact(
        &self,
        campaign_id: i64,
        msisdn: &str,
    ) -> Result<Option<ContactRow>, StoreError> {
        let msisdn = program::normalize_msisdn(msisdn)?;
        let raw = on_pool!(self, pool => {
            sqlx::query_as::<_, ContactRaw>(sqlx::AssertSqlSafe(format!(
                "SELECT {CONTACT_COLUMNS} FROM campaign_contacts \
                 WHERE campaign_id = $1 AND msisdn = $2"
            )))
            .bind(campaign_id)
            .bind(&msisdn)
            .fetch_optional(pool)
            .await?
        });
        raw.map(ContactRow::try_from).transpose()
    }

    /// A campaign's contacts in list order.
    pub async fn campaign_contacts(&self, campaign_id: i64) -> Result<Vec<ContactRow>, StoreError> {
        let raws = on_pool!(self, pool => {
            sqlx::query_as::<_, ContactRaw>(sqlx::AssertSqlSafe(format!(
                "SELECT {CONTACT_COLUMNS} FROM campaign_contacts WHERE campaign_id = $1 ORDER BY id"
            )))
            .bind(campaign_id)
            .fetch_all(pool)
            .await?
        });
        raws.into_iter().map(ContactRow::try_from).collect()
    }

    /// Progress counts of one campaign (see [`CampaignProgress`]); `now` places
    /// `next_due` inside a calling window.
    pub async fn campaign_progress(
        &self,
        campaign_id: i64,
        now: Timestamp,
    ) -> Result<CampaignProgress, StoreError> {
        let campaign = self
            .campaign(campaign_id)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "campaign",
                key: campaign_id.to_string(),
            })?;
        self.progress_of(&campaign, now).await
    }

    /// Every campaign with its progress, newest first: the supervisors' table.
    pub async fn campaign_lines(&self, now: Timestamp) -> Result<Vec<CampaignLine>, StoreError> {
        let mut out = Vec::new();
        for campaign in self.campaigns().await? {
            let progress = self.progress_of(&campaign, now).await?;
            out.push(CampaignLine { campaign, progress });
        }
        Ok(out)
    }

    async fn progress_of(
        &self,
        campaign: &CampaignRow,
        now: Timestamp,
    ) -> Result<CampaignProgress, StoreError> {
        const C: &str = "campaign_contacts";
        const A: &str = "campaign_attempts";
        let id = campaign.id;
        let (contacts, in_call, attempts, min_due): ProgressRows = on_pool!(self, pool => {
            let contacts: Vec<(String, Option<String>, Option<String>, i64)> = sqlx::query_as(
                "SELECT state, done_reason, last_disposition, COUNT(*) FROM campaign_contacts \
                 WHERE campaign_id = $1 GROUP BY state, done_reason, last_disposition",
            )
            .bind(id)
            .fetch_all(pool)
            .await?;
            let in_call: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM campaign_attempts WHERE campaign_id = $1 \
                 AND status = 'dialing' AND answered_at IS NOT NULL",
            )
            .bind(id)
            .fetch_one(pool)
            .await?;
            let attempts: Vec<(Option<String>, Option<String>, i64)> = sqlx::query_as(
                "SELECT disposition, outcome, COUNT(*) FROM campaign_attempts \
                 WHERE campaign_id = $1 AND status = 'finished' GROUP BY disposition, outcome",
            )
            .bind(id)
            .fetch_all(pool)
            .await?;
            let min_due: Option<String> = sqlx::query_scalar(NEXT_DUE)
                .bind(id)
                .fetch_one(pool)
                .await?;
            (contacts, in_call, attempts, min_due)
        });
        let mut p = CampaignProgress::default();
        let mut dialing = 0u32;
        for (state, done_reason, last_disposition, n) in contacts {
            let n = count_u32(n);
            p.contacts += n;
            let state: ContactState = state
                .parse()
                .map_err(|e| super::error::corrupt(C, "state", e))?;
            let disposition = last_disposition
                .map(|d| {
                    d.parse::<Disposition>()
                        .map_err(|e| super::error::corrupt(C, "last_disposition", e))
                })
                .transpose()?;
            match state {
                ContactState::Waiting if disposition.is_some() => p.retry_pending += n,
                ContactState::Waiting => p.waiting += n,
                ContactState::Dialing => dialing += n,
                ContactState::Done => {
                    p.done += n;
                    let reason: ContactEnd = done_reason
                        .as_deref()
                        .unwrap_or("completed")
                        .parse()
                        .map_err(|e| super::error::corrupt(C, "done_reason", e))?;
                    *p.done_by_reason.entry(reason).or_default() += n;
                    if let Some(d) = disposition {
                        *p.done_by_disposition.entry(d).or_default() += n;
                    }
                }
            }
        }
        p.in_call = count_u32(in_call).min(dialing);
        p.dialing = dialing - p.in_call;
        let mut answered = 0u32;
        for (disposition, outcome, n) in attempts {
            let n = count_u32(n);
            p.attempts += n;
            if let Some(d) = disposition {
                let d = d
                    .parse::<Disposition>()
                    .map_err(|e| super::error::corrupt(A, "disposition", e))?;
                if d == Disposition::Answered {
                    answered += n;
                }
                *p.attempts_by_disposition.entry(d).or_default() += n;
            }
            if let Some(o) = outcome {
                let o: FlowOutcome = o
                    .parse()
                    .map_err(|e| super::error::corrupt(A, "outcome", e))?;
                *p.outcomes.entry(o).or_default() += n;
            }
        }
        if p.attempts > 0 {
            p.answer_rate = Some(f64::from(answered) / f64::from(p.attempts));
        }
        p.next_due = next_due_from(min_due, now, &campaign.policy)?;
        if matches!(
            campaign.state,
            CampaignState::Running | CampaignState::Paused
        ) {
            p.hold = self.campaign_hold(id).await?;
        }
        Ok(p)
    }
}
