//! keymeter's rules that need no I/O: validated input types, secrets and
//! billing-cycle arithmetic.

pub mod admission;
pub mod alerts;
pub mod audit;
pub mod cycle;
pub mod email;
pub mod instant;
pub mod key;
pub mod membership;
pub mod metering;
pub mod password;
mod policy;
pub mod rate_limit;
pub mod secret;
mod series;
pub mod text;
mod verification;
pub mod webhook;

#[cfg(test)]
mod properties;

pub use cycle::Cycle;
pub use email::Email;
pub use key::{GracePeriod, KeyExpiry, KeyName, KeyStatus, KeyType};
pub use membership::{AccountName, MemberRole, Membership};
pub use metering::{Charge, Refund, RefundCode, VerifyCode};
pub use password::Password;
pub use policy::{AccountPolicy, Limit, LoginLimits, Retention, ROTATION_GRACE_ALLOWANCE};
pub use rate_limit::{RateLimit, RateLimitState};
pub use secret::{BrowserBinding, SecretHash, SessionToken};
pub use series::{Interval, SeriesRange};
pub use verification::{AccountPricing, Counter, KeyAccount, KeyRate, KeyRef, Verification};
