//! What verifyKey works with and answers: a key found by its secret, its
//! account's pricing and newest counter, and the answer itself.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::rate_limit::{seconds_until, RateLimit, RateLimitState, Window, WindowCount};
use super::{Cycle, KeyType, VerifyCode};

/// A key as verifyKey reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRef {
    pub id: Uuid,
    pub key_type: KeyType,
}

/// verifyKey's answer. Unknown keys carry nothing but the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub code: VerifyCode,
    pub key: Option<KeyRef>,
    /// The key's account.
    pub account_id: Option<Uuid>,
    pub remaining_credits: Option<i64>,
    pub cycle_end: Option<DateTime<Utc>>,
    /// The key's rate limit as it stands after this call; `None` when the
    /// key has none.
    pub rate_limit: Option<RateLimitState>,
    /// Set as the answer leaves metering (`answered_at`): with
    /// USAGE_EXCEEDED, seconds until the cycle ends; with RATE_LIMITED,
    /// until the window ends; rounded up, at least 1.
    pub retry_after_secs: Option<i64>,
    /// Set by `answered_at` for a key with a limit: seconds until its
    /// window ends, rounded up, at least 1 (the gateway's X-RateLimit-Reset).
    pub window_resets_in_secs: Option<i64>,
}

impl Verification {
    pub fn not_found() -> Self {
        Self {
            code: VerifyCode::NotFound,
            key: None,
            account_id: None,
            remaining_credits: None,
            cycle_end: None,
            rate_limit: None,
            retry_after_secs: None,
            window_resets_in_secs: None,
        }
    }

    /// The answer about a known key whose account has used `used` of its
    /// `monthly_credits` in `cycle`.
    pub fn for_key(
        code: VerifyCode,
        key: KeyRef,
        account: &AccountPricing,
        used: i64,
        cycle: &Cycle,
    ) -> Self {
        Self {
            code,
            key: Some(key),
            account_id: Some(account.account_id),
            remaining_credits: Some((account.monthly_credits - used).max(0)),
            cycle_end: Some(cycle.end),
            rate_limit: None,
            retry_after_secs: None,
            window_resets_in_secs: None,
        }
    }

    /// With the key's rate limit as it stands after this call.
    pub fn with_rate_limit(mut self, state: Option<RateLimitState>) -> Self {
        self.rate_limit = state;
        self
    }

    /// The answer as given at `now`, with the seconds a refused call should
    /// wait before it can succeed: with USAGE_EXCEEDED, until the cycle
    /// ends and the credits renew (the same cycle arithmetic as cycleEnd);
    /// with RATE_LIMITED, until the key's window ends.
    pub fn answered_at(mut self, now: DateTime<Utc>) -> Self {
        let frees_at = match self.code {
            VerifyCode::UsageExceeded => self.cycle_end,
            VerifyCode::RateLimited => self.rate_limit.map(|state| state.reset),
            _ => None,
        };
        self.retry_after_secs = frees_at.map(|at| seconds_until(at, now));
        self.window_resets_in_secs = self.rate_limit.map(|state| seconds_until(state.reset, now));
        self
    }
}

/// An account's counter row: credits used in the cycle starting at `cycle_start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counter {
    pub cycle_start: DateTime<Utc>,
    pub used: i64,
}

impl Counter {
    /// Credits used in `cycle` by an account whose newest counter is
    /// `newest`. A cycle's first charge makes its counter, so the newest one
    /// is the current cycle's exactly when it starts with it; else nothing
    /// was charged in this cycle yet.
    pub fn used_in(newest: Option<Counter>, cycle: &Cycle) -> i64 {
        match newest {
            Some(counter) if counter.cycle_start == cycle.start => counter.used,
            _ => 0,
        }
    }
}

/// An account as charging needs it: its pricing, and its newest counter.
#[derive(Debug, Clone)]
pub struct AccountPricing {
    pub account_id: Uuid,
    pub monthly_credits: i64,
    /// The instant every cycle of the account is counted from.
    pub anchor: DateTime<Utc>,
    pub latest: Option<Counter>,
}

impl AccountPricing {
    /// Credits used in `cycle`, as last read.
    pub fn used_in(&self, cycle: &Cycle) -> i64 {
        Counter::used_in(self.latest, cycle)
    }
}

/// A key found by its secret, with its account (`None` only if the row
/// it names is missing, which the foreign key prevents).
#[derive(Debug, Clone)]
pub struct KeyAccount {
    pub key_id: Uuid,
    pub key_type: KeyType,
    pub revoked: bool,
    /// When the key stops verifying; `None`: never.
    pub expires_at: Option<DateTime<Utc>>,
    pub rate_limit: Option<RateLimit>,
    /// The key's window count as read (a hint: charging reads it again
    /// under its lock).
    pub window: Option<WindowCount>,
    pub account: Option<AccountPricing>,
}

impl KeyAccount {
    /// What verifyKey answers for this key at `now` before any credits are
    /// weighed: REVOKED wins over EXPIRED; `None` when the key may be charged.
    pub fn refusal_at(&self, now: DateTime<Utc>) -> Option<VerifyCode> {
        if self.revoked {
            Some(VerifyCode::Revoked)
        } else if self.expires_at.is_some_and(|at| at <= now) {
            Some(VerifyCode::Expired)
        } else {
            None
        }
    }

    /// The key's limit, its window at `now` and the calls that window had
    /// admitted as read; `None` when the key has no limit.
    pub fn rate_at(&self, now: DateTime<Utc>) -> Option<KeyRate> {
        let limit = self.rate_limit?;
        let window = limit.window_at(now);
        Some(KeyRate {
            limit,
            window,
            used_before: WindowCount::used_in(self.window, &window),
        })
    }

    pub fn key_ref(&self) -> KeyRef {
        KeyRef {
            id: self.key_id,
            key_type: self.key_type,
        }
    }
}

/// A limited key's window for one call: the limit, the window the call
/// falls in, and the calls it had admitted when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRate {
    pub limit: RateLimit,
    pub window: Window,
    pub used_before: i64,
}

impl KeyRate {
    /// What an answer says once the window has admitted `used` calls.
    pub fn state(&self, used: i64) -> RateLimitState {
        RateLimitState::of(self.limit, &self.window, used)
    }

    pub fn limit(&self) -> i64 {
        i64::from(self.limit.limit)
    }
}
