//! The Covid-19 handbook link (docs/program.md, benefit b): what a request for
//! `/s/{token}` gets, decided from the request and `now`, before and after the store is
//! asked.
//!
//! The page must not tell anyone whether a number took part: after the handbook's
//! last day every link, known or not, is *gone* (410) without the store being asked;
//! before it, an unknown token is *not found* (404) like any other wrong URL.

use jiff::civil::Date;

/// What the service answers a request for a handbook link, before looking the token up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gate {
    /// The handbook is over (after the end of `handbook_until`, local time): 410.
    Gone,
    /// Look the token up. `count_open`: a person opening the page, not a HEAD request or
    /// a link previewer fetching it for a chat app.
    Lookup { count_open: bool },
}

/// `today` is the program's local date (`program::today`: the `program.today`
/// override when set); `handbook_until` the last day the page is shown.
pub fn gate(today: Date, handbook_until: Date, is_head: bool, user_agent: &str) -> Gate {
    if today > handbook_until {
        return Gate::Gone;
    }
    Gate::Lookup {
        count_open: !is_head && !is_link_preview(user_agent),
    }
}

/// User agents of the programs that fetch a link to draw its preview when it is pasted
/// into a chat or a post (Zalo, Facebook and Messenger, WhatsApp, Telegram, Viber,
/// Skype, Slack, Discord, X, LinkedIn) and of search crawlers: their fetch is not the
/// customer opening the handbook. Matched case-insensitively anywhere in the string.
const PREVIEWERS: &[&str] = &[
    "facebookexternalhit",
    "facebookcatalog",
    "meta-externalagent",
    "zalo",
    "whatsapp",
    "telegrambot",
    "viber",
    "skypeuripreview",
    "slackbot",
    "slack-imgproxy",
    "discordbot",
    "twitterbot",
    "linkedinbot",
    "googlebot",
    "bingbot",
    "applebot",
    "embedly",
    "preview",
    "crawler",
    "spider",
];

/// Whether `user_agent` is a link previewer or a crawler ([`PREVIEWERS`]); an empty
/// user agent is not a browser either.
pub fn is_link_preview(user_agent: &str) -> bool {
    let ua = user_agent.trim().to_ascii_lowercase();
    ua.is_empty() || PREVIEWERS.iter().any(|p| ua.contains(p))
}

/// The name to greet a customer by: the last word of a Vietnamese full name (the given
/// name: "Nguyễn Văn An" → "An"), nothing when there is no name.
pub fn first_name(full_name: Option<&str>) -> Option<&str> {
    full_name?.split_whitespace().last()
}

#[cfg(test)]
mod tests {
    use super::*;

    use jiff::civil::date;

    const UNTIL: Date = date(2022, 4, 30);
    const PHONE: &str = "Mozilla/5.0 (Linux; Android 12; SM-A525F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/99.0 Mobile Safari/537.36";

    #[test]
    fn the_link_works_to_the_end_of_its_last_day_then_is_gone() {
        let g = |d: Date| gate(d, UNTIL, false, PHONE);
        assert_eq!(g(date(2021, 11, 26)), Gate::Lookup { count_open: true });
        assert_eq!(g(UNTIL), Gate::Lookup { count_open: true });
        assert_eq!(g(date(2022, 5, 1)), Gate::Gone);
        // Gone is decided before anything else: a HEAD or a previewer learns no more.
        assert_eq!(gate(date(2022, 5, 1), UNTIL, true, ""), Gate::Gone);
    }

    #[test]
    fn head_requests_and_previewers_are_not_opens() {
        let g = |head: bool, ua: &str| gate(date(2022, 1, 10), UNTIL, head, ua);
        assert_eq!(g(true, PHONE), Gate::Lookup { count_open: false });
        for ua in [
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "Mozilla/5.0 (compatible; Zalo/1.0)",
            "WhatsApp/2.22.8.79 A",
            "TelegramBot (like TwitterBot)",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "",
        ] {
            assert_eq!(g(false, ua), Gate::Lookup { count_open: false }, "{ua:?}");
        }
        assert_eq!(g(false, PHONE), Gate::Lookup { count_open: true });
    }

    #[test]
    fn customers_are_greeted_by_their_given_name() {
        assert_eq!(first_name(Some("Nguyễn Văn An")), Some("An"));
        assert_eq!(first_name(Some("  Bích ")), Some("Bích"));
        assert_eq!(first_name(Some("   ")), None);
        assert_eq!(first_name(None), None);
    }
}
