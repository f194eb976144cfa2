//! Survey answers and the satisfaction rate (docs/program.md §3 step 4).

use std::collections::{BTreeMap, HashSet};

use jiff::Timestamp;

use super::types::{
    AnswerRaw, FlowOutcome, SatisfactionReport, ScaleSummary, SurveyAnswer, SurveyQuestion,
    YesNoSummary,
};
use crate::store::error::StoreError;
use std::time::Duration;
use tongdai_domain::program::Status;

use crate::store::error::is_retryable;
use crate::store::{MAX_ATTEMPTS, Pools, Store, time};

impl Store {
    /// Stores one answer as given, for the registration the attempt's contact surveys.
    /// Answers are kept whatever happens to the call afterwards (a partial survey keeps
    /// what was said); answering the same question again in the same call replaces the
    /// value. A value the question does not accept is refused.
    pub async fn record_survey_answer(
        &self,
        attempt_id: i64,
        question: SurveyQuestion,
        value: u8,
        now: Timestamp,
    ) -> Result<SurveyAnswer, StoreError> {
        if !question.accepts(value) {
            return Err(StoreError::InvalidRequest(format!(
                "{value} is not an answer to {question}"
            )));
        }
        let now_db = time::to_db(now);
        let _guard = self.write_guard().await;
        let id = with_retry!(async {
            on_pool!(self, pool => {
                let registration: Option<(Option<i64>,)> = sqlx::query_as(
                    "SELECT c.registration_id FROM campaign_attempts a \
                     JOIN campaign_contacts c ON c.id = a.contact_id WHERE a.id = $1",
                )
                .bind(attempt_id)
                .fetch_optional(pool)
                .await?;
                let Some((registration,)) = registration else {
                    return Err(StoreError::NotFound { what: "attempt", key: attempt_id.to_string() });
                };
                let Some(registration) = registration else {
                    return Err(StoreError::InvalidRequest(format!(
                        "attempt {attempt_id} is not a survey call"
                    )));
                };
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO survey_answers (registration_id, attempt_id, question, value, at) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (registration_id, attempt_id, question) \
                     DO UPDATE SET value = excluded.value, at = excluded.at RETURNING id",
                )
                .bind(registration)
                .bind(attempt_id)
                .bind(question.as_str())
                .bind(i64::from(value))
                .bind(&now_db)
                .fetch_one(pool)
                .await?;
                Ok::<i64, StoreError>(id)
            })
        })?;
        let raw = on_pool!(self, pool => {
            sqlx::query_as::<_, AnswerRaw>(
                "SELECT id, registration_id, attempt_id, question, value, at \
                 FROM survey_answers WHERE id = $1",
            )
            .bind(id)
            .fetch_one(pool)
            .await?
        });
        SurveyAnswer::try_from(raw)
    }

    /// Every answer of a registration, oldest first.
    pub async fn survey_answers(
        &self,
        registration_id: i64,
    ) -> Result<Vec<SurveyAnswer>, StoreError> {
        let raws = on_pool!(self, pool => {
            sqlx::query_as::<_, AnswerRaw>(
                "SELECT id, registration_id, attempt_id, question, value, at \
                 FROM survey_answers WHERE registration_id = $1 ORDER BY at, id",
            )
            .bind(registration_id)
            .fetch_all(pool)
            .await?
        });
        raws.into_iter().map(SurveyAnswer::try_from).collect()
    }

    /// The survey of this attempt is complete: the attempt's outcome becomes
    /// `survey_completed` and the registration moves `consulted → surveyed` (with its
    /// event, actor `survey`). Returns the registration id. A registration already
    /// surveyed (by another run) is left as it is.
    pub async fn complete_survey(
        &self,
        attempt_id: i64,
        now: Timestamp,
    ) -> Result<i64, StoreError> {
        let row: Option<(Option<i64>, i64)> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT c.registration_id, a.campaign_id FROM campaign_attempts a \
                 JOIN campaign_contacts c ON c.id = a.contact_id WHERE a.id = $1",
            )
            .bind(attempt_id)
            .fetch_optional(pool)
            .await?
        });
        let Some((registration, campaign_id)) = row else {
            return Err(StoreError::NotFound {
                what: "attempt",
                key: attempt_id.to_string(),
            });
        };
        let Some(registration) = registration else {
            return Err(StoreError::InvalidRequest(format!(
                "attempt {attempt_id} is not a survey call"
            )));
        };
        // Outcome first: should the status change fail, a retry finds the registration
        // still consulted and the attempt already marked.
        self.record_flow_outcome(attempt_id, FlowOutcome::SurveyCompleted, None, now)
            .await?;
        let reg = self
            .registration(registration)
            .await?
            .ok_or_else(|| StoreError::NotFound {
                what: "registration",
                key: registration.to_string(),
            })?;
        if reg.status == Status::Consulted {
            self.set_status(
                registration,
                Status::Surveyed,
                "survey",
                &format!("campaign {campaign_id} attempt {attempt_id}"),
                now,
            )
            .await?;
        }
        Ok(registration)
    }

    /// The satisfaction rate and the other questions' summaries, over one campaign's
    /// answers or (`None`) all of them. Each registration counts once per question,
    /// with its latest answer.
    pub async fn satisfaction_report(
        &self,
        campaign_id: Option<i64>,
    ) -> Result<SatisfactionReport, StoreError> {
        let (raws, outcomes): (Vec<AnswerRaw>, Vec<(String, i64)>) = on_pool!(self, pool => {
            let raws = sqlx::query_as::<_, AnswerRaw>(
                "SELECT s.id, s.registration_id, s.attempt_id, s.question, s.value, s.at \
                 FROM survey_answers s JOIN campaign_attempts a ON a.id = s.attempt_id \
                 WHERE a.campaign_id = $1 OR $2 ORDER BY s.at, s.id",
            )
            .bind(campaign_id.unwrap_or(0))
            .bind(campaign_id.is_none())
            .fetch_all(pool)
            .await?;
            let outcomes: Vec<(String, i64)> = sqlx::query_as(
                "SELECT outcome, COUNT(*) FROM campaign_attempts \
                 WHERE outcome IN ('survey_completed', 'survey_partial') \
                 AND (campaign_id = $1 OR $2) GROUP BY outcome",
            )
            .bind(campaign_id.unwrap_or(0))
            .bind(campaign_id.is_none())
            .fetch_all(pool)
            .await?;
            (raws, outcomes)
        });
        // Oldest first, so later answers overwrite earlier ones.
        let mut latest: BTreeMap<(i64, SurveyQuestion), u8> = BTreeMap::new();
        let mut respondents = HashSet::new();
        for raw in raws {
            let a = SurveyAnswer::try_from(raw)?;
            respondents.insert(a.registration_id);
            latest.insert((a.registration_id, a.question), a.value);
        }
        let values = |q: SurveyQuestion| {
            latest
                .iter()
                .filter(move |((_, qq), _)| *qq == q)
                .map(|(_, v)| *v)
        };
        let mut resolved = YesNoSummary::default();
        for v in values(SurveyQuestion::Resolved) {
            resolved.answers += 1;
            match v {
                1 => resolved.yes += 1,
                _ => resolved.no += 1,
            }
        }
        if resolved.answers > 0 {
            resolved.share_yes = Some(f64::from(resolved.yes) / f64::from(resolved.answers));
        }
        let mut report = SatisfactionReport {
            respondents: u32::try_from(respondents.len()).unwrap_or(u32::MAX),
            satisfaction: ScaleSummary::from_values(values(SurveyQuestion::Satisfaction)),
            recommend: ScaleSummary::from_values(values(SurveyQuestion::Recommend)),
            resolved,
            ..SatisfactionReport::default()
        };
        for (outcome, n) in outcomes {
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            match outcome.as_str() {
                "survey_completed" => report.completed += n,
                _ => report.partial += n,
            }
        }
        Ok(report)
    }
}
