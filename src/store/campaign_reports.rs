//! Read-only campaign reports for the API that the campaign module does not already
//! give: the survey results sheet (one line per surveyed contact with the latest answer
//! to each question). Kept apart from `campaign.rs` (the dialer's write path) so the
//! reporting side can grow without touching the exactly-once code.

use std::collections::{BTreeMap, HashMap};

use jiff::Timestamp;

use super::campaign::{ContactEnd, ContactState, SurveyQuestion};
use super::error::{StoreError, corrupt};
use super::{Pools, Store, time};
use tongdai_domain::dialer::Disposition;

/// One contact of a survey campaign with what it answered (its latest answer to each
/// question in this campaign) and how far the calling got.
#[derive(Clone, Debug, PartialEq)]
pub struct SurveyResultRow {
    pub campaign_id: i64,
    pub campaign_name: String,
    pub contact_id: i64,
    /// The registration being surveyed.
    pub registration_id: Option<i64>,
    /// E.164.
    pub msisdn: String,
    pub name: Option<String>,
    /// The specialty the customer registered for.
    pub specialty: Option<u8>,
    /// When Vinmec recorded the consultation.
    pub consulted_at: Option<Timestamp>,
    pub contact_state: ContactState,
    pub done_reason: Option<ContactEnd>,
    pub last_disposition: Option<Disposition>,
    /// Dials that reached a final (released claims excluded).
    pub calls: u32,
    /// An attempt of this contact completed the survey.
    pub completed: bool,
    /// Latest answer per question, with when it was given.
    pub answers: BTreeMap<SurveyQuestion, (u8, Timestamp)>,
}

/// Contact rows of the survey sheet as the query returns them.
type ContactRaw = (
    i64,
    i64,
    String,
    Option<i64>,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<String>,
);

/// Per contact: finished attempts, whether one completed the survey.
type AttemptsRaw = (i64, i64, i64);
/// Contact, question, value, when.
type AnswerRaw = (i64, String, i64, String);

const SURVEY_CONTACTS: &str = "SELECT c.id, c.campaign_id, k.name, c.registration_id, c.msisdn, \
     c.state, c.done_reason, c.last_disposition, r.name, r.specialty, q.consulted_at \
     FROM campaign_contacts c JOIN campaigns k ON k.id = c.campaign_id \
     LEFT JOIN registrations r ON r.id = c.registration_id \
     LEFT JOIN vinmec_queue q ON q.registration_id = c.registration_id \
     WHERE k.kind = 'survey' AND (c.campaign_id = $1 OR $2) ORDER BY c.campaign_id, c.id";

/// Per contact: finished attempts, and whether any attempt completed the survey.
const SURVEY_ATTEMPTS: &str = "SELECT a.contact_id, \
     CAST(SUM(CASE WHEN a.status = 'finished' THEN 1 ELSE 0 END) AS BIGINT), \
     CAST(MAX(CASE WHEN a.outcome = 'survey_completed' THEN 1 ELSE 0 END) AS BIGINT) \
     FROM campaign_attempts a JOIN campaigns k ON k.id = a.campaign_id \
     WHERE k.kind = 'survey' AND (a.campaign_id = $1 OR $2) GROUP BY a.contact_id";

/// Answers oldest first, so a later answer to the same question wins.
const SURVEY_ANSWERS: &str = "SELECT a.contact_id, s.question, s.value, s.at \
     FROM survey_answers s JOIN campaign_attempts a ON a.id = s.attempt_id \
     WHERE (a.campaign_id = $1 OR $2) ORDER BY s.at, s.id";

impl Store {
    /// The survey results sheet: every contact of the survey campaigns (one campaign,
    /// or all with `None`), in campaign and list order, with its latest answers.
    pub async fn survey_results(
        &self,
        campaign_id: Option<i64>,
    ) -> Result<Vec<SurveyResultRow>, StoreError> {
        const C: &str = "campaign_contacts";
        let key = campaign_id.unwrap_or(0);
        let all = campaign_id.is_none();
        let (contacts, attempts, answers): (Vec<ContactRaw>, Vec<AttemptsRaw>, Vec<AnswerRaw>) = on_pool!(self, pool => {
            let contacts: Vec<ContactRaw> = sqlx::query_as(SURVEY_CONTACTS)
                .bind(key)
                .bind(all)
                .fetch_all(pool)
                .await?;
            let attempts: Vec<AttemptsRaw> = sqlx::query_as(SURVEY_ATTEMPTS)
                .bind(key)
                .bind(all)
                .fetch_all(pool)
                .await?;
            let answers: Vec<AnswerRaw> = sqlx::query_as(SURVEY_ANSWERS)
                .bind(key)
                .bind(all)
                .fetch_all(pool)
                .await?;
            (contacts, attempts, answers)
        });
        let attempts: HashMap<i64, (i64, i64)> = attempts
            .into_iter()
            .map(|(contact, finished, completed)| (contact, (finished, completed)))
            .collect();
        let mut latest: HashMap<i64, BTreeMap<SurveyQuestion, (u8, Timestamp)>> = HashMap::new();
        for (contact, question, value, at) in answers {
            let question: SurveyQuestion = question
                .parse()
                .map_err(|e| corrupt("survey_answers", "question", e))?;
            let value = u8::try_from(value).map_err(|e| corrupt("survey_answers", "value", e))?;
            let at = time::from_db("survey_answers", "at", &at)?;
            latest
                .entry(contact)
                .or_default()
                .insert(question, (value, at));
        }
        let mut out = Vec::with_capacity(contacts.len());
        for (
            id,
            campaign_id,
            campaign_name,
            registration_id,
            msisdn,
            state,
            done_reason,
            last_disposition,
            name,
            specialty,
            consulted_at,
        ) in contacts
        {
            let (finished, completed) = attempts.get(&id).copied().unwrap_or((0, 0));
            out.push(SurveyResultRow {
                campaign_id,
                campaign_name,
                contact_id: id,
                registration_id,
                msisdn,
                name,
                specialty: specialty
                    .map(|s| u8::try_from(s).map_err(|e| corrupt("registrations", "specialty", e)))
                    .transpose()?,
                consulted_at: time::opt_from_db(
                    "vinmec_queue",
                    "consulted_at",
                    consulted_at.as_deref(),
                )?,
                contact_state: state.parse().map_err(|e| corrupt(C, "state", e))?,
                done_reason: done_reason
                    .map(|r| r.parse().map_err(|e| corrupt(C, "done_reason", e)))
                    .transpose()?,
                last_disposition: last_disposition
                    .map(|d| {
                        d.parse::<Disposition>()
                            .map_err(|e| corrupt(C, "last_disposition", e))
                    })
                    .transpose()?,
                calls: u32::try_from(finished).unwrap_or(u32::MAX),
                completed: completed > 0,
                answers: latest.remove(&id).unwrap_or_default(),
            });
        }
        Ok(out)
    }
}
