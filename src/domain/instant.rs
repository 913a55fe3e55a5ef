//! Instants as clients send and read them (the `DateTime` scalar, the
//! gateway's headers): RFC 3339, accepted within the range every part of
//! keymeter computes with and both databases store alike, never a leap
//! second, and written one way.

use chrono::{DateTime, SecondsFormat, Timelike, Utc};

/// The earliest instant accepted: nothing keymeter keeps is older.
pub const EARLIEST: &str = "1970-01-01T00:00:00Z";
/// The latest instant accepted: RFC 3339 has four-digit years.
pub const LATEST: &str = "9999-12-31T23:59:59Z";

/// `text` as an instant in UTC, or why not. A leap second (`23:59:60`) is
/// refused: PostgreSQL stores the next second and SQLite keeps the text, so
/// the two databases would disagree on it, and it starts no bucket.
pub fn parse(text: &str) -> Result<DateTime<Utc>, String> {
    let range = || format!("expected an RFC 3339 instant from {EARLIEST} to {LATEST}");
    let at = DateTime::parse_from_rfc3339(text)
        .map_err(|_| range())?
        .with_timezone(&Utc);
    if at.nanosecond() >= 1_000_000_000 {
        return Err("a leap second (:60) is not accepted; send the next second".into());
    }
    if at < bound(EARLIEST) || at >= bound(LATEST) + chrono::Duration::seconds(1) {
        return Err(range());
    }
    Ok(at)
}

/// An instant as keymeter writes it everywhere (the `DateTime` scalar, the
/// gateway's headers): RFC 3339 in UTC with a `Z`, fractional seconds only
/// when there are any.
pub fn render(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn bound(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("the bounds are valid RFC 3339")
        .with_timezone(&Utc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_range_and_leap_seconds() {
        assert!(parse("2026-02-16T01:50:02Z").is_ok());
        assert!(parse("2026-02-16T03:50:02+02:00").is_ok());
        assert!(parse(EARLIEST).is_ok());
        assert!(parse("9999-12-31T23:59:59.999999Z").is_ok());
        assert!(parse("1969-12-31T23:59:59Z").is_err());
        assert!(parse("9999-12-31T23:59:59-00:01").is_err());
        let leap = parse("2099-12-31T23:59:60Z").unwrap_err();
        assert!(leap.contains("leap second"), "{leap}");
        assert!(parse("2016-12-31T23:59:60.5Z").is_err());
        assert!(parse("2026-02-30T00:00:00Z").is_err());
        assert!(parse("+12026-01-01T00:00:00Z").is_err());
    }
}
