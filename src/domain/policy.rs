//! The operator's policy: what a new account gets, how many keys it may
//! hold, how long a sign-in lasts, and the rate limits on the guessable
//! operations. Values only; `config` builds them, services obey them.

use chrono::Duration;

/// Keys beyond `max_active_keys` that may still verify while rotated away:
/// a rotation with a grace period keeps the old key working for a while, so
/// an account at the cap can rotate, but chained rotations cannot pile up
/// working keys past the cap plus this many.
pub const ROTATION_GRACE_ALLOWANCE: u32 = 20;

/// What a new account gets, how many keys it may hold and how long a
/// sign-in lasts.
#[derive(Debug, Clone)]
pub struct AccountPolicy {
    pub plan: String,
    pub monthly_credits: i64,
    /// Active keys per user; 0: no cap.
    pub max_active_keys: u32,
    pub session_ttl: Duration,
    pub login_limits: LoginLimits,
    pub signup_limit: Limit,
    /// Provider sign-ins started per client address.
    pub sign_in_limit: Limit,
    /// Started provider sign-ins kept at once, across every client.
    pub max_sign_in_flows: u32,
    /// How far back hourly usage is kept (`Retention::hourly_usage`).
    pub hourly_usage_kept: Duration,
}

/// How long usage is kept in raw and hourly form, and how often a process
/// sweeps what is older. Daily rollups and cycle counters are kept for
/// ever; requestIds for their 24 hours whatever these say.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub events: Duration,
    pub hourly_usage: Duration,
    pub sweep_every: std::time::Duration,
}

impl AccountPolicy {
    /// How long an auth attempt can still count against some limit.
    pub fn longest_limit_window(&self) -> Duration {
        self.login_limits
            .longest_window()
            .max(self.signup_limit.window)
            .max(self.sign_in_limit.window)
    }
}

/// At most `max` attempts within any `window`; a `max` of 0 is no limit.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub max: u32,
    pub window: Duration,
}

/// The bounds on failed logins. The tightest is per email *and* client
/// address, so that someone guessing at an account from one address does
/// not lock its owner out at another; the per-address bound stops one
/// address spraying guesses over many emails, and the per-email bound
/// stops many addresses sharing the guesses at one email (past it, the
/// owner is locked out too: the price of bounding a distributed attack).
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    pub per_email_and_address: Limit,
    pub per_address: Limit,
    pub per_email: Limit,
}

impl LoginLimits {
    pub fn longest_window(&self) -> Duration {
        [self.per_email_and_address, self.per_address, self.per_email]
            .iter()
            .map(|limit| limit.window)
            .max()
            .unwrap_or_else(Duration::zero)
    }
}
