//! The satisfaction survey's questions (docs/program.md §3 step 4) and the answers
//! each accepts.

use crate::string_enum;

string_enum! {
    /// The satisfaction survey's questions (dialplans/survey.toml).
    SurveyQuestion, "survey question" {
        /// Satisfaction with the consultation, 1 (very dissatisfied) – 5 (very satisfied).
        Satisfaction = "satisfaction",
        /// Did the doctor resolve the question: 1 yes, 2 no (stored as pressed).
        Resolved = "resolved",
        /// Would recommend the program, 1 – 5 (5 = certainly). See ARCHITECTURE.md for
        /// why 1–5 rather than 0–10.
        Recommend = "recommend",
    }
}

impl SurveyQuestion {
    /// The values a subscriber can give.
    pub fn accepts(self, value: u8) -> bool {
        match self {
            SurveyQuestion::Satisfaction | SurveyQuestion::Recommend => (1..=5).contains(&value),
            SurveyQuestion::Resolved => value == 1 || value == 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_question_accepts_only_its_keys() {
        let accepted = |q: SurveyQuestion| (0..=9).filter(|&v| q.accepts(v)).collect::<Vec<u8>>();
        assert_eq!(accepted(SurveyQuestion::Satisfaction), [1, 2, 3, 4, 5]);
        assert_eq!(accepted(SurveyQuestion::Recommend), [1, 2, 3, 4, 5]);
        assert_eq!(accepted(SurveyQuestion::Resolved), [1, 2]);
    }
}
