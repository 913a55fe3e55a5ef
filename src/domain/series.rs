//! Usage over time: buckets of an hour or a day, in UTC, and the rules a
//! requested range must keep.

use async_graphql::Enum;
use chrono::{DateTime, Duration, Utc};

use crate::error::{Error, Result};

/// The width of one bucket of a usage series, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Enum)]
#[graphql(name = "UsageInterval")]
pub enum Interval {
    Hour,
    Day,
}

impl Interval {
    pub fn length(self) -> Duration {
        match self {
            Self::Hour => Duration::hours(1),
            Self::Day => Duration::days(1),
        }
    }

    /// The most buckets one series may have.
    pub fn max_buckets(self) -> i64 {
        match self {
            Self::Hour => 168,
            Self::Day => 92,
        }
    }

    /// The start of the bucket holding `t`; None only for an instant so
    /// near chrono's first that its bucket would start before it. Computed
    /// on whole seconds, so it holds for every instant (nanosecond
    /// arithmetic overflows past 2262).
    pub fn truncate(self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let seconds = t.timestamp();
        let start = seconds.checked_sub(seconds.rem_euclid(self.length().num_seconds()))?;
        DateTime::from_timestamp(start, 0)
    }

    /// The bucket a charge made at `now` (the server's clock) falls in. Every
    /// instant of this era has one; `now` itself stands in for the
    /// impossible other case rather than a panic on the charging path.
    pub fn bucket_of_charge(self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.truncate(now).unwrap_or(now)
    }

    /// `t` if it starts a bucket, else the start of the next one; None past
    /// the last instant chrono holds.
    pub fn round_up(self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let start = self.truncate(t)?;
        if start == t {
            Some(t)
        } else {
            start.checked_add_signed(self.length())
        }
    }
}

/// A series' range: `from` truncated and `to` rounded up to the interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeriesRange {
    pub interval: Interval,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl SeriesRange {
    /// The range asked for, refused (BAD_USER_INPUT, saying the limit) when
    /// `from` is not before `to` or it spans too many buckets. Never panics,
    /// whatever the instants (a property test covers chrono's whole range).
    pub fn parse(interval: Interval, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<Self> {
        if from >= to {
            return Err(Error::bad_input("usageSeries: `from` must be before `to`"));
        }
        let widened = interval.truncate(from).zip(interval.round_up(to));
        let Some((from, to)) = widened else {
            return Err(Error::bad_input(
                "usageSeries: `from` and `to` must be instants keymeter can count in",
            ));
        };
        let range = Self { interval, from, to };
        if range.buckets() > interval.max_buckets() {
            return Err(Error::bad_input(format!(
                "usageSeries: at most {} {} buckets per series",
                interval.max_buckets(),
                match interval {
                    Interval::Hour => "HOUR",
                    Interval::Day => "DAY",
                }
            )));
        }
        Ok(range)
    }

    pub fn buckets(&self) -> i64 {
        (self.to - self.from).num_seconds() / self.interval.length().num_seconds()
    }

    /// The start of each bucket, oldest first.
    pub fn starts(&self) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        (0..self.buckets()).map(|i| self.from + self.interval.length() * i as i32)
    }

    /// The index of the bucket holding `t`, if it is in the range.
    pub fn bucket_of(&self, t: DateTime<Utc>) -> Option<usize> {
        if t < self.from || t >= self.to {
            return None;
        }
        usize::try_from((t - self.from).num_seconds() / self.interval.length().num_seconds()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn ranges_are_widened_to_whole_buckets() {
        let range = SeriesRange::parse(
            Interval::Day,
            at("2026-01-31T13:00:00Z"),
            at("2026-02-02T00:00:01Z"),
        )
        .unwrap();
        assert_eq!(
            (range.from, range.to),
            (at("2026-01-31T00:00:00Z"), at("2026-02-03T00:00:00Z"))
        );
        assert_eq!(range.buckets(), 3);
        assert_eq!(range.bucket_of(at("2026-02-01T23:59:59Z")), Some(1));
        assert_eq!(range.bucket_of(at("2026-02-03T00:00:00Z")), None);
        let hours = SeriesRange::parse(
            Interval::Hour,
            at("2026-01-31T13:30:00Z"),
            at("2026-01-31T15:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            hours.starts().collect::<Vec<_>>(),
            [at("2026-01-31T13:00:00Z"), at("2026-01-31T14:00:00Z")]
        );
    }

    #[test]
    fn too_many_buckets_or_a_backwards_range_are_refused() {
        let from = at("2026-01-01T00:00:00Z");
        assert!(SeriesRange::parse(Interval::Hour, from, from + Duration::hours(168)).is_ok());
        let err =
            SeriesRange::parse(Interval::Hour, from, from + Duration::hours(169)).unwrap_err();
        assert!(err.to_string().contains("168"));
        assert!(SeriesRange::parse(Interval::Day, from, from + Duration::days(92)).is_ok());
        let err = SeriesRange::parse(Interval::Day, from, from + Duration::days(93)).unwrap_err();
        assert!(err.to_string().contains("92"));
        assert!(SeriesRange::parse(Interval::Day, from, from).is_err());
        assert!(SeriesRange::parse(Interval::Day, from + Duration::days(1), from).is_err());
    }
}
