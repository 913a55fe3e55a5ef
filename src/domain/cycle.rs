//! Billing-cycle arithmetic. A cycle lasts one calendar month. Cycle `n`
//! starts `n` months after the account's anchor (its `billing_cycle_start`),
//! computed from the anchor itself and clamped to the month's end: an account
//! anchored on Jan 31 renews on Feb 28 (29 in leap years), then on Mar 31,
//! never drifting to the 28th. Because the current cycle is a pure function of
//! the anchor and the time, "rolling forward" needs no write and two racing
//! requests can never disagree about it.

use chrono::{DateTime, Datelike, Months, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cycle {
    /// Inclusive.
    pub start: DateTime<Utc>,
    /// Exclusive: `start` plus one calendar month from the anchor.
    pub end: DateTime<Utc>,
}

impl Cycle {
    /// The cycle that contains `now`. Before the anchor (a clock set back),
    /// the first cycle.
    pub fn current(anchor: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        let months_apart =
            (now.year() - anchor.year()) * 12 + now.month() as i32 - anchor.month() as i32;
        let mut n = u32::try_from(months_apart).unwrap_or(0);
        // The estimate is off by at most one: back up when the month has not
        // yet reached the anchor's day and time.
        while n > 0 && nth_start(anchor, n) > now {
            n -= 1;
        }
        Self {
            start: nth_start(anchor, n),
            end: nth_start(anchor, n + 1),
        }
    }

    #[cfg(test)]
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
}

fn nth_start(anchor: DateTime<Utc>, n: u32) -> DateTime<Utc> {
    // chrono clamps to the last day of a shorter month. Only overflows past
    // year 262143, where one more month of the same cycle is the sane answer.
    anchor
        .checked_add_months(Months::new(n))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn first_cycle_runs_one_calendar_month_from_the_anchor() {
        let c = Cycle::current(t("2026-03-15T10:00:00Z"), t("2026-03-20T00:00:00Z"));
        assert_eq!(c.start, t("2026-03-15T10:00:00Z"));
        assert_eq!(c.end, t("2026-04-15T10:00:00Z"));
    }

    #[test]
    fn end_is_exclusive() {
        let anchor = t("2026-03-15T10:00:00Z");
        let c = Cycle::current(anchor, t("2026-04-15T10:00:00Z"));
        assert_eq!(c.start, t("2026-04-15T10:00:00Z"));
        let c = Cycle::current(anchor, t("2026-04-15T09:59:59.999999Z"));
        assert_eq!(c.start, anchor);
    }

    #[test]
    fn month_end_anchor_clamps_then_returns_to_its_day() {
        let anchor = t("2026-01-31T12:00:00Z");
        let feb = Cycle::current(anchor, t("2026-02-10T00:00:00Z"));
        assert_eq!(feb.start, anchor);
        assert_eq!(feb.end, t("2026-02-28T12:00:00Z"));
        let mar = Cycle::current(anchor, t("2026-03-01T00:00:00Z"));
        assert_eq!(mar.start, t("2026-02-28T12:00:00Z"));
        assert_eq!(mar.end, t("2026-03-31T12:00:00Z"));
    }

    #[test]
    fn leap_year_february_ends_on_the_29th() {
        let anchor = t("2028-01-31T00:00:00Z");
        let c = Cycle::current(anchor, t("2028-02-29T12:00:00Z"));
        assert_eq!(c.start, t("2028-02-29T00:00:00Z"));
        assert_eq!(c.end, t("2028-03-31T00:00:00Z"));
    }

    #[test]
    fn skipped_months_roll_forward_in_one_step() {
        let anchor = t("2025-05-31T08:00:00Z");
        let c = Cycle::current(anchor, t("2026-11-30T09:00:00Z"));
        assert_eq!(c.start, t("2026-11-30T08:00:00Z"));
        assert_eq!(c.end, t("2026-12-31T08:00:00Z"));
    }

    #[test]
    fn a_clock_before_the_anchor_gets_the_first_cycle() {
        let anchor = t("2026-05-10T00:00:00Z");
        assert_eq!(
            Cycle::current(anchor, t("2026-01-01T00:00:00Z")).start,
            anchor
        );
    }

    #[test]
    fn every_instant_falls_in_its_cycle() {
        let anchor = t("2024-01-31T23:59:59Z");
        let mut now = anchor;
        while now < t("2027-01-01T00:00:00Z") {
            let c = Cycle::current(anchor, now);
            assert!(c.contains(now), "{now} not in {c:?}");
            assert!(c.end > c.start);
            now += chrono::Duration::hours(13);
        }
    }
}
