//! Property tests: every validated input type accepts exactly what the
//! contract allows, and nothing, however malformed, makes one panic.

use proptest::prelude::*;

use chrono::{DateTime, Utc};

use super::text::{is_printable, is_unprintable};
use super::{instant, Charge, Email, Interval, KeyName, Password, SeriesRange};

/// Any text at all: control characters, whitespace, `@`s, non-ASCII, long.
/// Any instant chrono can hold, its extremes weighted in: the first and
/// last, and the era around 2262 where nanosecond arithmetic overflows.
fn any_instant() -> impl Strategy<Value = DateTime<Utc>> {
    let (min, max) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
    let seconds = prop_oneof![
        min.timestamp()..=max.timestamp(),
        (min.timestamp()..min.timestamp() + 400 * 86_400),
        (max.timestamp() - 400 * 86_400..=max.timestamp()),
        (9_200_000_000i64..9_300_000_000),
        (-100_000_000_000i64..300_000_000_000),
    ];
    (seconds, 0u32..2_000_000_000).prop_map(move |(secs, nanos)| {
        DateTime::from_timestamp(secs, nanos).unwrap_or(if secs < 0 { min } else { max })
    })
}

fn any_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,300}",
        "[ \t\r\n@a-zA-Z0-9\u{0}-\u{1f}\u{7f}-\u{9f}é☃]{0,300}",
        "[a-z.@\u{200b}-\u{200f}\u{202a}-\u{202e}\u{2066}-\u{2069}\u{feff}\u{ad}]{0,40}",
        "\\PC{0,2000}",
    ]
}

proptest! {
    #[test]
    fn an_accepted_email_keeps_the_contract(raw in any_text()) {
        let normalized = raw.trim().to_lowercase();
        let (local, domain) = normalized.split_once('@').unwrap_or(("", ""));
        let within_contract = normalized.chars().count() <= 254
            && !local.is_empty()
            && !domain.is_empty()
            && !domain.contains('@')
            && !normalized.chars().any(|c| c.is_whitespace() || is_unprintable(c));
        match Email::parse(&raw) {
            Ok(email) => {
                prop_assert!(within_contract);
                prop_assert_eq!(email.as_str(), normalized.as_str());
            }
            Err(err) => prop_assert_eq!(err.code(), "BAD_USER_INPUT"),
        }
    }

    #[test]
    fn well_formed_emails_are_accepted_whatever_their_case_and_padding(
        local in "[a-zA-Z0-9_%+'-]{1,20}(\\.[a-zA-Z0-9_%+'-]{1,20}){0,2}",
        domain in "[a-zA-Z0-9]([a-zA-Z0-9-]{0,58}[a-zA-Z0-9])?\\.[a-zA-Z]{2,10}",
        padding in "[ \t]{0,3}",
    ) {
        let raw = format!("{padding}{local}@{domain}{padding}");
        let email = Email::parse(&raw).unwrap();
        prop_assert_eq!(email.as_str(), format!("{local}@{domain}").to_lowercase());
    }

    #[test]
    fn password_length_is_counted_in_characters(raw in any_text()) {
        let valid = (8..=128).contains(&raw.chars().count());
        prop_assert_eq!(Password::parse(&raw).is_ok(), valid);
    }

    #[test]
    fn key_names_are_trimmed_bounded_and_printable(raw in any_text()) {
        let trimmed = raw.trim();
        let valid = (1..=64).contains(&trimmed.chars().count()) && !trimmed.chars().any(is_unprintable);
        match KeyName::parse(&raw) {
            Ok(name) => {
                prop_assert!(valid);
                prop_assert_eq!(name.into_inner(), trimmed);
            }
            Err(_) => prop_assert!(!valid),
        }
    }

    #[test]
    fn charges_stay_within_the_contract(
        credits in any::<i32>(),
        endpoint in proptest::option::of(any_text()),
        request_id in proptest::option::of(any_text()),
    ) {
        let valid = (0..=1_000_000).contains(&credits)
            && endpoint.as_ref().is_none_or(|e| e.chars().count() <= 256 && is_printable(e))
            && request_id.as_ref().is_none_or(|r| (1..=128).contains(&r.chars().count()) && is_printable(r));
        prop_assert_eq!(Charge::parse(credits, endpoint, request_id).is_ok(), valid);
    }

    #[test]
    fn a_series_range_never_panics_and_keeps_its_bounds(
        from in any_instant(),
        to in any_instant(),
        hourly in any::<bool>(),
    ) {
        let interval = if hourly { Interval::Hour } else { Interval::Day };
        if let Ok(range) = SeriesRange::parse(interval, from, to) {
            prop_assert!(from < to);
            prop_assert!(range.from <= from && range.to >= to);
            prop_assert!((1..=interval.max_buckets()).contains(&range.buckets()));
            prop_assert_eq!(range.starts().count() as i64, range.buckets());
            prop_assert_eq!(range.bucket_of(from), Some(0));
        }
        interval.bucket_of_charge(from);
    }

    #[test]
    fn an_accepted_instant_is_in_range_and_no_leap_second(
        secs in -70_000_000_000i64..300_000_000_000,
        nanos in 0u32..2_000_000_000,
        offset_minutes in -1439i32..=1439,
    ) {
        let Some(at) = DateTime::from_timestamp(secs, nanos) else { return Ok(()) };
        let offset = chrono::FixedOffset::east_opt(offset_minutes * 60).unwrap();
        let text = at.with_timezone(&offset).to_rfc3339();
        match instant::parse(&text) {
            Ok(parsed) => {
                prop_assert_eq!(parsed, at);
                prop_assert!(nanos < 1_000_000_000);
                prop_assert!((0..=253_402_300_799).contains(&secs));
            }
            Err(_) => prop_assert!(
                nanos >= 1_000_000_000 || !(0..=253_402_300_799).contains(&secs)
            ),
        }
    }
}
