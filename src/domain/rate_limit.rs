//! Per-key rate limits (contract v3): at most `limit` calls answered VALID
//! in each fixed window of `window_secs` seconds, windows starting at
//! multiples of `window_secs` since the Unix epoch. The arithmetic of
//! windows lives here; which call takes a slot is decided with the charge
//! (`admission`), and the slots themselves are counted in the database.

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};

/// A key's limit, validated: limit 1 to 1,000,000, window 1 s to a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: i32,
    pub window_secs: i32,
}

impl RateLimit {
    pub const MAX_LIMIT: i32 = 1_000_000;
    pub const MAX_WINDOW_SECS: i32 = 86_400;

    pub fn parse(limit: i32, window_secs: i32) -> Result<Self> {
        if !(1..=Self::MAX_LIMIT).contains(&limit) {
            return Err(Error::bad_input("rateLimit.limit: 1 to 1000000"));
        }
        if !(1..=Self::MAX_WINDOW_SECS).contains(&window_secs) {
            return Err(Error::bad_input("rateLimit.windowSeconds: 1 to 86400"));
        }
        Ok(Self { limit, window_secs })
    }

    /// The limit as stored (`api_keys.rate_limit`, `rate_window_secs`): both
    /// or neither; anything else (a row edited by hand) counts as no limit.
    pub fn from_stored(limit: Option<i32>, window_secs: Option<i32>) -> Option<Self> {
        Self::parse(limit?, window_secs?).ok()
    }

    /// The window `at` falls in.
    pub fn window_at(&self, at: DateTime<Utc>) -> Window {
        let secs = i64::from(self.window_secs);
        let start = at.timestamp().div_euclid(secs) * secs;
        let start = DateTime::from_timestamp(start, 0).unwrap_or(at);
        Window {
            start,
            end: start + chrono::Duration::seconds(secs),
        }
    }
}

/// One fixed window of a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A key's window as last written: the window it counts and the calls it
/// admitted in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowCount {
    pub start: DateTime<Utc>,
    pub used: i64,
}

impl WindowCount {
    /// Calls admitted in `window` by a key whose row says `count`: its
    /// count if it is that window's, else none yet.
    pub fn used_in(count: Option<WindowCount>, window: &Window) -> i64 {
        match count {
            Some(count) if count.start == window.start => count.used,
            _ => 0,
        }
    }
}

/// What an answer says of a key's limit (`RateLimitState`): the calls its
/// current window still admits and when that window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitState {
    pub limit: i32,
    pub remaining: i64,
    pub reset: DateTime<Utc>,
}

impl RateLimitState {
    /// The state of `limit` once `used` calls were admitted in `window`.
    pub fn of(limit: RateLimit, window: &Window, used: i64) -> Self {
        Self {
            limit: limit.limit,
            remaining: (i64::from(limit.limit) - used).max(0),
            reset: window.end,
        }
    }

    /// Seconds from `now` until the window ends, rounded up, at least 1:
    /// `retryAfterSeconds` and the `X-RateLimit-Reset` header.
    pub fn seconds_to_reset(&self, now: DateTime<Utc>) -> i64 {
        seconds_until(self.reset, now)
    }
}

/// Whole seconds from `now` until `at`, rounded up and at least 1.
pub fn seconds_until(at: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let millis = (at - now).num_milliseconds().max(0);
    (millis.saturating_add(999) / 1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64, millis: u32) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, millis * 1_000_000).unwrap()
    }

    #[test]
    fn windows_are_fixed_from_the_epoch() {
        let limit = RateLimit::parse(10, 60).unwrap();
        let window = limit.window_at(at(1_000_000_019, 500));
        assert_eq!(window.start, at(999_999_960, 0));
        assert_eq!(window.end, at(1_000_000_020, 0));
        assert_eq!(
            limit.window_at(at(1_000_000_020, 0)).start,
            at(1_000_000_020, 0)
        );
        let day = RateLimit::parse(1, 86_400).unwrap();
        assert_eq!(
            day.window_at(at(86_400 * 3 + 5, 0)).start,
            at(86_400 * 3, 0)
        );
    }

    #[test]
    fn limits_outside_their_range_are_refused() {
        for (limit, window) in [(0, 60), (1_000_001, 60), (10, 0), (10, 86_401), (-1, -1)] {
            assert!(RateLimit::parse(limit, window).is_err(), "{limit}/{window}");
        }
        assert!(RateLimit::parse(1_000_000, 86_400).is_ok());
        assert_eq!(RateLimit::from_stored(Some(5), None), None);
    }

    #[test]
    fn a_count_of_another_window_counts_nothing() {
        let limit = RateLimit::parse(10, 10).unwrap();
        let window = limit.window_at(at(105, 0));
        let old = WindowCount {
            start: at(90, 0),
            used: 7,
        };
        let current = WindowCount {
            start: at(100, 0),
            used: 7,
        };
        assert_eq!(WindowCount::used_in(Some(old), &window), 0);
        assert_eq!(WindowCount::used_in(Some(current), &window), 7);
        assert_eq!(WindowCount::used_in(None, &window), 0);
    }

    #[test]
    fn reset_is_rounded_up_and_at_least_a_second() {
        let limit = RateLimit::parse(3, 10).unwrap();
        let window = limit.window_at(at(100, 0));
        let state = RateLimitState::of(limit, &window, 5);
        assert_eq!(state.remaining, 0);
        assert_eq!(state.seconds_to_reset(at(100, 1)), 10);
        assert_eq!(state.seconds_to_reset(at(109, 999)), 1);
        assert_eq!(state.seconds_to_reset(at(110, 0)), 1);
        assert_eq!(state.seconds_to_reset(at(200, 0)), 1);
    }
}
