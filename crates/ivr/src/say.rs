//! Speaking numbers, dates and digit strings in Vietnamese from recorded prompts.
//!
//! The call reads numbers the way a Vietnamese announcer does, not digit by digit,
//! because "còn lại hai mươi mốt suất" is what callers expect to hear. The rules used:
//!
//! - 0–10: `num_0` … `num_10` ("không" … "mười").
//! - 11–19: `num_10` + unit, with 5 → `num_lam` ("mười lăm"); 11 stays `num_1`
//!   ("mười một", never "mốt").
//! - 20–99: `num_20` … `num_90` ("hai mươi" …) + unit, where 1 → `num_mot_tone`
//!   ("mốt"), 5 → `num_lam` ("lăm"), 4 → `num_4` ("bốn"). We always say "bốn", never the
//!   colloquial "tư" (`num_tu_tone`), because "bốn" cannot be misheard on a phone line;
//!   the only place "tư" is used is the month name "tháng tư", where it is the norm.
//! - Hundreds: unit + `num_tram`; a remainder 1–9 is read after `num_linh` with its
//!   plain digit ("một trăm linh một", "một trăm linh năm": 5 is "năm" here, not "lăm").
//! - Groups of three digits with `num_nghin` (thousand) and `num_trieu` (million). A
//!   non-leading group below 100 is read with "không trăm" ("hai nghìn không trăm hai
//!   mươi mốt" for 2021, "một nghìn không trăm linh năm" for 1005); an all-zero group is
//!   skipped ("ba trăm nghìn", "một triệu không trăm linh năm").
//! - From 1,000,000,000 ("tỷ", for which there is no prompt) the number is read digit
//!   by digit with `num_0` … `num_9`; no figure in this program comes near it.
//!
//! Dates (`YYYY-MM-DD`) are read "ngày D tháng M năm YYYY" with `word_ngay`,
//! `word_thang`, `word_nam`.

/// A prompt id for a literal, so the rules above read like the speech they produce.
fn p(id: &str) -> String {
    id.to_string()
}

/// The prompt id for a single digit 0–9 or 10 spoken on its own.
fn unit(n: u64) -> String {
    format!("num_{n}")
}

/// Prompt ids every number reading may use: checked at compile time for
/// `{ number = … }` items.
pub fn number_prompts() -> Vec<String> {
    let mut ids: Vec<String> = (0..=10).map(unit).collect();
    ids.extend((2..=9).map(|t| format!("num_{}", t * 10)));
    ids.extend(
        [
            "num_mot_tone",
            "num_lam",
            "num_linh",
            "num_tram",
            "num_nghin",
            "num_trieu",
        ]
        .iter()
        .map(|s| p(s)),
    );
    ids
}

/// Prompt ids a date reading may use: checked at compile time for `{ date = … }` items.
pub fn date_prompts() -> Vec<String> {
    let mut ids = number_prompts();
    ids.extend(
        ["num_tu_tone", "word_ngay", "word_thang", "word_nam"]
            .iter()
            .map(|s| p(s)),
    );
    ids
}

/// Prompt ids a digit-string reading may use (`{ digits = … }`): the decimal keys are
/// required; `*`, `#` and A–D are only spoken when such prompts exist.
pub fn digit_prompts() -> Vec<String> {
    (0..=9).map(|d| format!("digit_{d}")).collect()
}

/// The prompt id that speaks one key; `None` for a character that is not a key
/// (spaces, `+`, dashes in a stored number are skipped).
pub fn digit_prompt(key: char) -> Option<String> {
    match key {
        '0'..='9' => Some(format!("digit_{key}")),
        '*' => Some(p("digit_star")),
        '#' => Some(p("digit_pound")),
        'A'..='D' | 'a'..='d' => Some(format!("digit_{}", key.to_ascii_lowercase())),
        _ => None,
    }
}

/// Speak a string of keys one by one (a phone number, a booking code).
pub fn say_digits(text: &str) -> Vec<String> {
    text.chars().filter_map(digit_prompt).collect()
}

/// Speak a non-negative integer (see the module doc for the rules).
pub fn say_number(n: u64) -> Vec<String> {
    let mut out = Vec::new();
    if n >= 1_000_000_000 {
        out.extend(n.to_string().chars().map(|c| format!("num_{c}")));
        return out;
    }
    if n == 0 {
        out.push(unit(0));
        return out;
    }
    let groups = [
        (n / 1_000_000, Some("num_trieu")),
        ((n / 1000) % 1000, Some("num_nghin")),
        (n % 1000, None),
    ];
    let mut leading = true;
    for (group, scale) in groups {
        if group == 0 {
            continue;
        }
        say_group(group, !leading, &mut out);
        if let Some(scale) = scale {
            out.push(p(scale));
        }
        leading = false;
    }
    out
}

/// Speak 1–999. `full` asks for "không trăm" before a group below 100 that follows a
/// higher group (2021 → "hai nghìn không trăm hai mươi mốt").
fn say_group(n: u64, full: bool, out: &mut Vec<String>) {
    let hundreds = n / 100;
    let rest = n % 100;
    if hundreds > 0 || full {
        out.push(unit(hundreds));
        out.push(p("num_tram"));
        if rest == 0 {
            return;
        }
        if rest < 10 {
            // "linh" + the plain digit: 105 is "một trăm linh năm", not "lăm".
            out.push(p("num_linh"));
            out.push(unit(rest));
            return;
        }
    }
    say_below_100(rest, out);
}

/// Speak 1–99 with the tone changes "mốt" and "lăm".
fn say_below_100(n: u64, out: &mut Vec<String>) {
    let tens = n / 10;
    let ones = n % 10;
    match tens {
        0 => out.push(unit(ones)),
        1 => {
            out.push(unit(10));
            match ones {
                0 => {}
                5 => out.push(p("num_lam")),
                d => out.push(unit(d)),
            }
        }
        t => {
            out.push(format!("num_{}", t * 10));
            match ones {
                0 => {}
                1 => out.push(p("num_mot_tone")),
                5 => out.push(p("num_lam")),
                d => out.push(unit(d)),
            }
        }
    }
}

/// Why a date variable could not be spoken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a date in YYYY-MM-DD form")]
pub struct BadDate(pub String);

/// Speak a `YYYY-MM-DD` date as "ngày D tháng M năm YYYY".
pub fn say_date(text: &str) -> Result<Vec<String>, BadDate> {
    let bad = || BadDate(text.to_string());
    let mut parts = text.trim().splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return Err(bad());
    }
    let year: u64 = y.parse().map_err(|_| bad())?;
    let month: u64 = m.parse().map_err(|_| bad())?;
    let day: u64 = d.parse().map_err(|_| bad())?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(bad());
    }
    let mut out = vec![p("word_ngay")];
    out.extend(say_number(day));
    out.push(p("word_thang"));
    if month == 4 {
        // The fourth month is always "tháng tư", never "tháng bốn".
        out.push(p("num_tu_tone"));
    } else {
        out.extend(say_number(month));
    }
    out.push(p("word_nam"));
    out.extend(say_number(year));
    Ok(out)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compact form: prompt ids without the `num_` prefix, space separated.
    fn said(n: u64) -> String {
        say_number(n)
            .iter()
            .map(|s| s.trim_start_matches("num_"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn numbers_follow_vietnamese_reading() {
        let cases: &[(u64, &str)] = &[
            (0, "0"),
            (5, "5"),
            (10, "10"),
            (11, "10 1"),
            (14, "10 4"),
            (15, "10 lam"),
            (20, "20"),
            (21, "20 mot_tone"),
            (24, "20 4"),
            (25, "20 lam"),
            (99, "90 9"),
            (100, "1 tram"),
            (101, "1 tram linh 1"),
            (105, "1 tram linh 5"),
            (110, "1 tram 10"),
            (115, "1 tram 10 lam"),
            (121, "1 tram 20 mot_tone"),
            (500, "5 tram"),
            (1000, "1 nghin"),
            (1005, "1 nghin 0 tram linh 5"),
            (2021, "2 nghin 0 tram 20 mot_tone"),
            (21_000, "20 mot_tone nghin"),
            (300_000, "3 tram nghin"),
            (1_000_005, "1 trieu 0 tram linh 5"),
            (1_005_000, "1 trieu 0 tram linh 5 nghin"),
            (2_500_000, "2 trieu 5 tram nghin"),
            (1_000_000_000, "1 0 0 0 0 0 0 0 0 0"),
        ];
        for (n, want) in cases {
            assert_eq!(said(*n), *want, "reading {n}");
        }
    }

    #[test]
    fn every_reading_uses_only_number_prompts() {
        let known = number_prompts();
        for n in (0..3000).chain([300_000, 999_999_999, 1_234_567_890]) {
            for id in say_number(n) {
                assert!(known.contains(&id), "{n} uses {id}");
            }
        }
    }

    #[test]
    fn dates_read_day_month_year() {
        assert_eq!(
            say_date("2021-11-26").ok(),
            Some(
                [
                    "word_ngay",
                    "num_20",
                    "num_6",
                    "word_thang",
                    "num_10",
                    "num_1",
                    "word_nam",
                    "num_2",
                    "num_nghin",
                    "num_0",
                    "num_tram",
                    "num_20",
                    "num_mot_tone"
                ]
                .map(String::from)
                .to_vec()
            )
        );
        let april = say_date("2022-04-30").unwrap_or_default();
        assert_eq!(
            &april[2..4],
            &["word_thang".to_string(), "num_tu_tone".into()]
        );
        assert_eq!(
            &say_date("2021-12-05").unwrap_or_default()[..2],
            &["word_ngay".to_string(), "num_5".into()]
        );
        for bad in [
            "",
            "2021-13-01",
            "2021-02-29",
            "2021-1-5",
            "26/11/2021",
            "abcd-ef-gh",
        ] {
            assert!(say_date(bad).is_err(), "{bad}");
        }
        assert!(say_date("2024-02-29").is_ok());
    }

    #[test]
    fn digits_are_spoken_key_by_key() {
        assert_eq!(
            say_digits("+84 90*#A"),
            [
                "digit_8",
                "digit_4",
                "digit_9",
                "digit_0",
                "digit_star",
                "digit_pound",
                "digit_a"
            ]
            .map(String::from)
            .to_vec()
        );
    }
}
