//! Vietnamese subscriber numbers (MSISDN) in one canonical form: E.164, `+84…`.
//!
//! Hand-written rather than the `phonenumber` crate: the program only concerns MobiFone
//! (mobile) subscribers, so the rule we need is small and fixed — a 9-digit national
//! significant number starting with 3, 5, 7, 8 or 9 (the post-2018 10-digit national
//! numbers 03x/05x/07x/08x/09x). `phonenumber` would pull in the whole global metadata
//! (slow to build on our 2-core machines), accept landlines, and tie what the hotline
//! accepts to the metadata release it ships. Finer prefix ranges are left to the
//! operator's HLR and the screened list: both change more often than this code should.

/// Why a string is not a Vietnamese mobile number. Carries no digits, so it can be
/// logged without leaking the number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MsisdnError {
    #[error("empty phone number")]
    Empty,
    #[error("phone number contains a character that is not a digit or a separator")]
    InvalidCharacter,
    #[error("not a Vietnamese number (country code is not +84)")]
    NotVietnamese,
    #[error("phone number has {0} digits; a Vietnamese mobile number has 10 (0xxxxxxxxx)")]
    InvalidLength(usize),
    #[error("not a Vietnamese mobile number (must start with 03, 05, 07, 08 or 09)")]
    NotMobile,
}

/// Normalises `0903123678`, `84903123678`, `+84 903.123-678`, `0084…`, `tel:+84…`,
/// `<sip:0903123678@host;user=phone>` to `+84903123678`.
///
/// Separators (space, `.`, `-`, `(`, `)`) are ignored; a trunk `0` written after the
/// country code (`+84 (0)903…`) is tolerated because people write it that way; a bare
/// 9-digit national significant number (`903123678`, as some switches send caller IDs)
/// is accepted.
pub fn normalize_msisdn(raw: &str) -> Result<String, MsisdnError> {
    let mut s = raw.trim();
    if let Some(inner) = s.strip_prefix('<') {
        s = inner.split('>').next().unwrap_or(inner);
    }
    // URI forms: keep the user part only.
    for scheme in ["sips:", "sip:", "tel:"] {
        if s.get(..scheme.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(scheme))
        {
            s = &s[scheme.len()..];
            s = s.split(['@', ';']).next().unwrap_or(s);
            break;
        }
    }
    let s = s.trim();
    if s.is_empty() {
        return Err(MsisdnError::Empty);
    }
    let (plus, rest) = match s.strip_prefix('+') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '.' | '-' | '(' | ')' | '\u{a0}' => {}
            _ => return Err(MsisdnError::InvalidCharacter),
        }
    }
    if digits.is_empty() {
        return Err(MsisdnError::Empty);
    }
    let nsn: &str = if plus {
        digits
            .strip_prefix("84")
            .ok_or(MsisdnError::NotVietnamese)?
    } else if let Some(intl) = digits.strip_prefix("00") {
        intl.strip_prefix("84").ok_or(MsisdnError::NotVietnamese)?
    } else if let Some(national) = digits.strip_prefix('0') {
        national
    } else if digits.len() == 9 {
        &digits
    } else if let Some(n) = digits.strip_prefix("84").filter(|_| digits.len() >= 11) {
        n
    } else {
        return Err(MsisdnError::InvalidLength(digits.len()));
    };
    let nsn = if nsn.len() == 10 {
        nsn.strip_prefix('0').unwrap_or(nsn)
    } else {
        nsn
    };
    if nsn.len() != 9 {
        // Report the length in the national form people know (0 + NSN).
        return Err(MsisdnError::InvalidLength(nsn.len() + 1));
    }
    match nsn.as_bytes()[0] {
        b'3' | b'5' | b'7' | b'8' | b'9' => Ok(format!("+84{nsn}")),
        _ => Err(MsisdnError::NotMobile),
    }
}

/// A number safe to show in logs and error messages: `+84903123678` → `0903***678`.
///
/// Anything that does not normalise keeps only its first two and last two characters.
pub fn mask_msisdn(raw: &str) -> String {
    match normalize_msisdn(raw) {
        Ok(e164) => {
            let national = format!("0{}", &e164[3..]);
            format!("{}***{}", &national[..4], &national[national.len() - 3..])
        }
        Err(_) => {
            let chars: Vec<char> = raw.chars().collect();
            if chars.len() <= 4 {
                "***".to_owned()
            } else {
                let head: String = chars[..2].iter().collect();
                let tail: String = chars[chars.len() - 2..].iter().collect();
                format!("{head}***{tail}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_forms() {
        let cases = [
            ("0903123678", "+84903123678"),
            ("84903123678", "+84903123678"),
            ("+84903123678", "+84903123678"),
            ("+84 903 123 678", "+84903123678"),
            ("0903.123.678", "+84903123678"),
            ("0903-123-678", "+84903123678"),
            (" (090) 3123678 ", "+84903123678"),
            ("+84 (0) 903 123 678", "+84903123678"),
            ("0084903123678", "+84903123678"),
            ("903123678", "+84903123678"),
            ("tel:+84903123678", "+84903123678"),
            (
                "tel:+84-903-123-678;phone-context=mobifone.vn",
                "+84903123678",
            ),
            ("sip:0903123678@10.1.2.3;user=phone", "+84903123678"),
            ("SIP:84903123678@trunk", "+84903123678"),
            ("<sip:+84903123678@trunk>", "+84903123678"),
            ("sips:0903123678@x", "+84903123678"),
            ("\u{a0}0903\u{a0}123\u{a0}678", "+84903123678"),
            // Post-2018 prefixes.
            ("0327654321", "+84327654321"),
            ("0563456789", "+84563456789"),
            ("0703456789", "+84703456789"),
            ("0773456789", "+84773456789"),
            ("0833456789", "+84833456789"),
            ("0993456789", "+84993456789"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_msisdn(raw).as_deref(), Ok(want), "{raw}");
        }
    }

    #[test]
    fn rejected_forms() {
        use MsisdnError::*;
        let cases = [
            ("", Empty),
            ("   ", Empty),
            ("tel:", Empty),
            ("+", Empty),
            ("0903l23678", InvalidCharacter),
            ("0903123678#", InvalidCharacter),
            ("Số 0903", InvalidCharacter),
            ("ốốố", InvalidCharacter),
            ("+14155552671", NotVietnamese),
            ("+8613800138000", NotVietnamese),
            ("0044903123678", NotVietnamese),
            ("090312367", InvalidLength(9)),
            ("09031236789", InvalidLength(11)),
            ("+849031236", InvalidLength(8)),
            ("12345", InvalidLength(5)),
            ("01223456789", InvalidLength(11)), // pre-2018 11-digit mobile
            ("0225123456", NotMobile),          // 10 digits, 02x (landline prefix)
            ("+842253123456", InvalidLength(11)), // Hai Phong landline
            ("0103456789", NotMobile),
            ("0603456789", NotMobile),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_msisdn(raw), Err(want.clone()), "{raw:?}");
        }
    }

    #[test]
    fn masking() {
        assert_eq!(mask_msisdn("+84903123678"), "0903***678");
        assert_eq!(mask_msisdn("0903 123 678"), "0903***678");
        assert_eq!(mask_msisdn("abcdefgh"), "ab***gh");
        assert_eq!(mask_msisdn("123"), "***");
        assert_eq!(mask_msisdn("sip:anonymous@x"), "si***@x");
    }
}
