//! The program's parameters, defaulting to the values of docs/program.md.
//!
//! They live in configuration rather than constants because the operating plan is a
//! business document: MobiFone may extend the registration period or raise the cap
//! without a code change, and tests/demos need to pretend to be in 2021 (`today`).

use std::collections::HashSet;
use std::fmt;

use jiff::civil::{Date, date};
use serde::{Deserialize, Serialize};

/// One of Vinmec Hai Phong's specialties a caller can pick (docs/program.md §2a).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Specialty {
    /// The DTMF key that selects it in the IVR, and the code stored on a registration.
    pub code: u8,
    /// Stable machine name (prompt ids, reports).
    pub key: String,
    pub name_vi: String,
    pub name_en: String,
}

/// The program's rules as data. `Default` is the plan as MobiFone wrote it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProgramConfig {
    pub name: String,
    /// Most customers the program takes in total (the offer is limited to 500).
    pub cap: u32,
    /// First local date on which registration is accepted (inclusive).
    pub registration_start: Date,
    /// Last local date on which registration is accepted (inclusive).
    pub registration_end: Date,
    pub consultation_start: Date,
    pub consultation_end: Date,
    /// IANA zone in which the dates above are read.
    pub timezone: String,
    /// Group 1 requires at least this charge per billing cycle.
    pub min_charge_vnd: u64,
    pub max_consultation_minutes: u32,
    /// Told to callers with acute conditions, which online consultation excludes.
    pub emergency_number: String,
    /// The Covid-19 handbook link works until the end of this local date.
    pub handbook_until: Date,
    pub specialties: Vec<Specialty>,
    /// Overrides the local date (demos and tests replaying 2021). `None`: the caller
    /// uses the real clock's local date.
    pub today: Option<Date>,
}

impl Default for ProgramConfig {
    fn default() -> Self {
        let sp = |code: u8, key: &str, name_vi: &str, name_en: &str| Specialty {
            code,
            key: key.to_owned(),
            name_vi: name_vi.to_owned(),
            name_en: name_en.to_owned(),
        };
        ProgramConfig {
            name: "Tư vấn sức khỏe trực tuyến cùng Vinmec Hải Phòng".to_owned(),
            cap: 500,
            registration_start: date(2021, 11, 26),
            registration_end: date(2021, 12, 25),
            consultation_start: date(2021, 11, 26),
            consultation_end: date(2021, 12, 30),
            timezone: "Asia/Ho_Chi_Minh".to_owned(),
            min_charge_vnd: 300_000,
            max_consultation_minutes: 30,
            emergency_number: "115".to_owned(),
            handbook_until: date(2022, 4, 30),
            specialties: vec![
                sp(
                    1,
                    "internal_medicine",
                    "Khoa nội tổng hợp",
                    "General internal medicine",
                ),
                sp(
                    2,
                    "diagnostic_imaging",
                    "Khoa chẩn đoán hình ảnh",
                    "Diagnostic imaging",
                ),
                sp(3, "laboratory", "Khoa xét nghiệm", "Laboratory"),
                sp(
                    4,
                    "general_surgery",
                    "Khoa ngoại tổng hợp",
                    "General surgery",
                ),
                sp(5, "obstetrics", "Khoa sản", "Obstetrics"),
                sp(6, "pediatrics", "Khoa nhi", "Pediatrics"),
            ],
            today: None,
        }
    }
}

/// One thing wrong with a configuration, naming the key so an operator can fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted path of the offending key, e.g. `registration_end`, `specialties[2].code`.
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "program.{}: {}", self.key, self.problem)
    }
}

/// Every problem found, so one edit-run cycle fixes them all.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid program configuration: {}", .problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct ProgramConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl ProgramConfig {
    /// Checks the configuration; the error lists every problem with its key.
    pub fn validate(&self) -> Result<(), ProgramConfigError> {
        let mut problems = Vec::new();
        let mut bad = |key: &str, problem: String| {
            problems.push(ConfigProblem {
                key: key.to_owned(),
                problem,
            })
        };
        if self.name.trim().is_empty() {
            bad("name", "must not be empty".into());
        }
        if self.cap == 0 {
            bad("cap", "must be at least 1".into());
        }
        if self.registration_end < self.registration_start {
            bad(
                "registration_end",
                format!(
                    "{} is before registration_start {}",
                    self.registration_end, self.registration_start
                ),
            );
        }
        if self.consultation_end < self.consultation_start {
            bad(
                "consultation_end",
                format!(
                    "{} is before consultation_start {}",
                    self.consultation_end, self.consultation_start
                ),
            );
        }
        if self.consultation_end < self.registration_end {
            // Someone registering on the last day must still be able to be consulted.
            bad(
                "consultation_end",
                format!(
                    "{} is before registration_end {}",
                    self.consultation_end, self.registration_end
                ),
            );
        }
        if let Err(e) = jiff::tz::TimeZoneDatabase::bundled().get(&self.timezone) {
            bad(
                "timezone",
                format!("unknown time zone {:?}: {e}", self.timezone),
            );
        }
        if self.max_consultation_minutes == 0 {
            bad("max_consultation_minutes", "must be at least 1".into());
        }
        if self.emergency_number.is_empty()
            || !self.emergency_number.bytes().all(|b| b.is_ascii_digit())
        {
            bad(
                "emergency_number",
                format!("{:?} is not a dialable number", self.emergency_number),
            );
        }
        if self.specialties.is_empty() {
            bad("specialties", "at least one specialty is needed".into());
        }
        let mut codes = HashSet::new();
        let mut keys = HashSet::new();
        for (i, s) in self.specialties.iter().enumerate() {
            if !(1..=9).contains(&s.code) {
                // The caller picks a specialty with a single key; 0 is kept for "not sure".
                bad(
                    &format!("specialties[{i}].code"),
                    format!("{} is not a key 1..9", s.code),
                );
            }
            if !codes.insert(s.code) {
                bad(
                    &format!("specialties[{i}].code"),
                    format!("duplicate specialty code {}", s.code),
                );
            }
            if s.key.trim().is_empty() {
                bad(&format!("specialties[{i}].key"), "must not be empty".into());
            } else if !keys.insert(s.key.as_str()) {
                bad(
                    &format!("specialties[{i}].key"),
                    format!("duplicate specialty key {:?}", s.key),
                );
            }
            if s.name_vi.trim().is_empty() {
                bad(
                    &format!("specialties[{i}].name_vi"),
                    "must not be empty".into(),
                );
            }
            if s.name_en.trim().is_empty() {
                bad(
                    &format!("specialties[{i}].name_en"),
                    "must not be empty".into(),
                );
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ProgramConfigError { problems })
        }
    }

    /// The specialty selected by `code`, if the program has one.
    pub fn specialty(&self, code: u8) -> Option<&Specialty> {
        self.specialties.iter().find(|s| s.code == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid_and_matches_the_plan() {
        let c = ProgramConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.cap, 500);
        assert_eq!(c.min_charge_vnd, 300_000);
        assert_eq!(c.specialties.len(), 6);
        let codes: Vec<u8> = c.specialties.iter().map(|s| s.code).collect();
        assert_eq!(codes, vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(c.specialty(6).map(|s| s.key.as_str()), Some("pediatrics"));
        assert_eq!(c.specialty(7), None);
    }

    #[test]
    fn each_problem_names_its_key() {
        type Edit = fn(&mut ProgramConfig);
        let cases: &[(&str, Edit)] = &[
            ("name", |c| c.name = " ".into()),
            ("cap", |c| c.cap = 0),
            ("registration_end", |c| {
                c.registration_end = date(2021, 11, 1)
            }),
            ("consultation_end", |c| {
                c.consultation_end = date(2021, 11, 1)
            }),
            ("timezone", |c| c.timezone = "Asia/Hai_Phong".into()),
            ("max_consultation_minutes", |c| {
                c.max_consultation_minutes = 0
            }),
            ("emergency_number", |c| c.emergency_number = "11a".into()),
            ("specialties", |c| c.specialties.clear()),
            ("specialties[1].code", |c| c.specialties[1].code = 1),
            ("specialties[0].code", |c| c.specialties[0].code = 0),
            ("specialties[2].key", |c| {
                c.specialties[2].key = "internal_medicine".into()
            }),
            ("specialties[3].name_vi", |c| {
                c.specialties[3].name_vi = "".into()
            }),
        ];
        for (key, edit) in cases {
            let mut c = ProgramConfig::default();
            edit(&mut c);
            let err = c.validate().expect_err(key);
            assert!(err.problems.iter().any(|p| p.key == *key), "{key}: {err}");
            assert!(err.to_string().contains(&format!("program.{key}")), "{err}");
        }
    }

    #[test]
    fn deserializes_partial_toml_and_rejects_unknown_keys() {
        let c: ProgramConfig =
            toml::from_str("cap = 3\ntoday = \"2021-11-30\"\n").expect("valid toml");
        assert_eq!(c.cap, 3);
        assert_eq!(c.today, Some(date(2021, 11, 30)));
        assert_eq!(c.registration_end, date(2021, 12, 25));
        assert!(toml::from_str::<ProgramConfig>("capp = 3\n").is_err());
        let s: Result<ProgramConfig, _> = toml::from_str(
            "[[specialties]]\ncode = 1\nkey = \"a\"\nname_vi = \"A\"\nname_en = \"A\"\nextra = 1\n",
        );
        assert!(s.is_err());
        // Round trip.
        let text = toml::to_string(&ProgramConfig::default()).expect("serializes");
        let back: ProgramConfig = toml::from_str(&text).expect("parses back");
        assert_eq!(back, ProgramConfig::default());
    }
}
