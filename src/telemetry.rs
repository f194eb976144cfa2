//! Logging setup and the masking of subscribers' numbers in logs.

use crate::config::{LogFormat, LogSettings};

/// Installs the global `tracing` subscriber. `RUST_LOG` wins over `log.level`.
/// rsipstack logs every datagram with its raw text at `info`: keep it at `warn`
/// (CPU, and subscribers' numbers would end up in the logs).
pub fn init(settings: &LogSettings) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_new(format!("{},rsipstack=warn", settings.level)).ok())
        .unwrap_or_else(|| EnvFilter::new("info,rsipstack=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match settings.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    // A second init (tests) is harmless.
    let _ = result;
}

/// Masks a phone number for logs: `0903123678` → `0903***678`. Keeps the first four
/// characters (operator prefix) and the last three (enough for an agent to match a
/// complaint), never the whole number. Short strings are masked entirely.
pub fn mask_number(number: &str) -> String {
    let chars: Vec<char> = number.chars().collect();
    if chars.len() <= 7 {
        // Service numbers like 9090 are not personal data.
        if chars.iter().all(|c| c.is_ascii_digit()) && chars.len() <= 5 {
            return number.to_string();
        }
        return "***".to_string();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 3..].iter().collect();
    format!("{head}***{tail}")
}

#[cfg(test)]
mod tests {
    use super::mask_number;

    #[test]
    fn masks_subscriber_numbers() {
        assert_eq!(mask_number("0903123678"), "0903***678");
        assert_eq!(mask_number("+84903123678"), "+849***678");
        assert_eq!(mask_number("84903123678"), "8490***678");
        assert_eq!(mask_number("9090"), "9090");
        assert_eq!(mask_number("alice12"), "***");
        assert_eq!(mask_number(""), "");
    }
}
