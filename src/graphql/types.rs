//! Output and input types of the contract, converted from entities.

use async_graphql::{ComplexObject, Context, InputObject, Object, SimpleObject};
use uuid::Uuid;

use super::context::{current_user, named_user, own_account, state};
use super::cost;
use super::points::UsagePoints;
use super::scalars::{saturating_i32, DateTime};
use crate::domain::{self, rate_limit, Interval, Verification};
use crate::domain::{Cycle, KeyStatus, KeyType, Refund, RefundCode, VerifyCode};
use crate::entity::{api_key, billing_account, user};
use crate::error::Result;
use crate::metering;
use crate::service::keys::{CreatedKey, RotatedKey};

type Now = chrono::DateTime<chrono::Utc>;

pub struct User {
    user: user::Model,
    /// Set when the caller already has it, to spare a query.
    billing_account: Option<billing_account::Model>,
}

impl User {
    pub fn new(user: user::Model, billing_account: Option<billing_account::Model>) -> Self {
        Self {
            user,
            billing_account,
        }
    }
}

#[Object]
impl User {
    async fn id(&self) -> Uuid {
        self.user.id
    }

    async fn email(&self) -> &str {
        &self.user.email
    }

    async fn created_at(&self) -> DateTime {
        self.user.created_at.into()
    }

    /// The billing account of the user's own account (v3: the account made at signup).
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn billing_account(&self, ctx: &Context<'_>) -> Result<BillingAccount> {
        let state = state(ctx);
        let signed_in = current_user(ctx).await.ok().map(|user| user.id);
        let account = match &self.billing_account {
            Some(account) => account.clone(),
            // `me`: the row the session's lookup read with the user.
            None if signed_in == Some(self.user.id) => own_account(ctx).await?.clone(),
            None => state.teams.own_account(&self.user).await?,
        };
        Ok(BillingAccount::new(account, state.clock.now()))
    }
}

#[derive(SimpleObject)]
pub struct BillingAccount {
    id: Uuid,
    plan: String,
    /// Credits included in each billing cycle.
    monthly_credits: i32,
    /// Start of the current cycle (inclusive).
    billing_cycle_start: DateTime,
    /// End of the current cycle (exclusive): billingCycleStart plus one calendar month.
    billing_cycle_end: DateTime,
}

impl BillingAccount {
    pub fn new(account: billing_account::Model, now: chrono::DateTime<chrono::Utc>) -> Self {
        let cycle = Cycle::current(account.billing_cycle_start, now);
        Self {
            id: account.id,
            plan: account.plan,
            monthly_credits: saturating_i32(account.monthly_credits),
            billing_cycle_start: cycle.start.into(),
            billing_cycle_end: cycle.end.into(),
        }
    }
}

#[derive(SimpleObject)]
#[graphql(complex)]
pub struct ApiKey {
    id: Uuid,
    name: String,
    key_type: KeyType,
    /// The first characters of the secret, safe to show, e.g. sk_dev_3fA9.
    prefix: String,
    created_at: DateTime,
    last_used_at: Option<DateTime>,
    revoked_at: Option<DateTime>,
    /// v2: when the key stops verifying (verifyKey answers EXPIRED from then on); null: never.
    expires_at: Option<DateTime>,
    /// v2
    status: KeyStatus,
    /// v2: the key this one replaced (rotateKey); null for a key made by createKey or signup.
    rotated_from_id: Option<Uuid>,
    /// v3: the account the key belongs to and charges.
    account_id: Uuid,
    /// v3: null: no limit.
    rate_limit: Option<RateLimit>,
    #[graphql(skip)]
    created_by_id: Uuid,
    /// Set when the maker was read with the key, to spare a query.
    #[graphql(skip)]
    maker: Option<MemberUser>,
}

#[ComplexObject]
impl ApiKey {
    /// v3: the member who made the key (for a rotated key: who rotated it).
    // Read with the key by `keys`; elsewhere looked up once per maker and
    // request (`context::named_user`), so aliases do not multiply lookups.
    async fn created_by(&self, ctx: &Context<'_>) -> Result<MemberUser> {
        match &self.maker {
            Some(maker) => Ok(maker.clone()),
            None => Ok(named_user(ctx, self.created_by_id)
                .await?
                .map(MemberUser::from)
                .unwrap_or_else(|| MemberUser::unknown(self.created_by_id))),
        }
    }
}

impl ApiKey {
    /// The key with its maker, read with it.
    pub fn made_by(mut self, maker: Option<MemberUser>) -> Self {
        self.maker = maker;
        self
    }

    /// The key as it stands at `now`, the request's instant: its status
    /// depends on it, and is computed here so that every field of a key
    /// agrees with one clock reading.
    pub fn new(key: api_key::Model, now: Now) -> Self {
        Self {
            status: KeyStatus::at(key.revoked_at, key.expires_at, now),
            rate_limit: key.rate_limit().map(RateLimit::from),
            id: key.id,
            name: key.name,
            key_type: key.key_type,
            prefix: key.prefix,
            created_at: key.created_at.into(),
            last_used_at: key.last_used_at.map(Into::into),
            revoked_at: key.revoked_at.map(Into::into),
            expires_at: key.expires_at.map(Into::into),
            rotated_from_id: key.rotated_from_id,
            account_id: key.account_id,
            created_by_id: key.created_by,
            maker: None,
        }
    }
}

/// v3: a key's rate limit: at most `limit` calls answered VALID in each window of
/// `windowSeconds`. Windows are fixed: they start at multiples of windowSeconds since
/// 1970-01-01T00:00:00Z.
#[derive(SimpleObject)]
pub struct RateLimit {
    limit: i32,
    window_seconds: i32,
}

impl From<rate_limit::RateLimit> for RateLimit {
    fn from(limit: rate_limit::RateLimit) -> Self {
        Self {
            limit: limit.limit,
            window_seconds: limit.window_secs,
        }
    }
}

/// v3: limit 1 to 1,000,000; windowSeconds 1 to 86,400; else BAD_USER_INPUT.
#[derive(InputObject)]
pub struct RateLimitInput {
    pub limit: i32,
    pub window_seconds: i32,
}

impl RateLimitInput {
    /// The limit asked for, validated (see `RateLimit::parse`).
    pub fn parse(self) -> Result<rate_limit::RateLimit> {
        rate_limit::RateLimit::parse(self.limit, self.window_seconds)
    }
}

#[derive(SimpleObject)]
pub struct CreateKeyPayload {
    api_key: ApiKey,
    /// The full secret. Returned once, never stored in plain text, never shown again.
    secret: String,
}

impl CreateKeyPayload {
    pub fn new(created: CreatedKey, now: Now) -> Self {
        Self {
            api_key: ApiKey::new(created.key, now),
            secret: created.secret,
        }
    }
}

/// v2
#[derive(SimpleObject)]
pub struct RotateKeyPayload {
    /// The new key: the old key's name, keyType and expiresAt, rotatedFromId set to the old key.
    api_key: ApiKey,
    /// The new key's full secret. Returned once.
    secret: String,
    /// The old key as it now stands: revoked (grace 0) or expiring at the end of the grace period.
    previous_key: ApiKey,
}

impl RotateKeyPayload {
    pub fn new(rotated: RotatedKey, now: Now) -> Self {
        Self {
            api_key: ApiKey::new(rotated.created.key, now),
            secret: rotated.created.secret,
            previous_key: ApiKey::new(rotated.previous, now),
        }
    }
}

#[derive(SimpleObject)]
pub struct AuthPayload {
    pub token: String,
    pub user: User,
}

#[derive(SimpleObject)]
pub struct SignupPayload {
    pub token: String,
    pub user: User,
    /// The default DEV key made at signup; null if provisioning failed (signup still succeeds).
    pub default_key: Option<CreateKeyPayload>,
}

#[derive(InputObject)]
pub struct SignupInput {
    pub email: String,
    pub password: String,
}

#[derive(InputObject)]
pub struct LoginInput {
    pub email: String,
    pub password: String,
}

#[derive(InputObject)]
pub struct CreateKeyInput {
    pub name: String,
    #[graphql(default_with = "Some(KeyType::Dev)")]
    pub key_type: Option<KeyType>,
    /// v2: optional; at least 60 seconds ahead and before 2100-01-01T00:00:00Z, else BAD_USER_INPUT.
    pub expires_at: Option<DateTime>,
    /// v3: the account to make the key in; default: the user's own account. Not a member: NOT_FOUND.
    pub account_id: Option<Uuid>,
    /// v3: optional rate limit.
    pub rate_limit: Option<RateLimitInput>,
}

/// v2
#[derive(InputObject)]
pub struct RotateKeyInput {
    pub id: Uuid,
    /// How long the old key keeps verifying: 0 to 2,592,000 seconds (30 days). 0 revokes it at once.
    /// A grace period never extends an expiry the old key already had.
    #[graphql(default_with = "Some(0)")]
    pub grace_period_seconds: Option<i32>,
}

#[derive(InputObject)]
pub struct VerifyKeyInput {
    /// The full secret presented by an API caller.
    pub key: String,
    /// Credits this call costs; 0 checks the key without charging.
    #[graphql(default_with = "Some(1)")]
    pub credits: Option<i32>,
    pub endpoint: Option<String>,
    /// Idempotency key chosen by the gateway (at most 128 characters). A retry with the same
    /// requestId for the same key within 24 hours returns the first call's answer and charges
    /// nothing more, so a retried request is never billed twice.
    pub request_id: Option<String>,
}

#[derive(SimpleObject)]
pub struct VerifyKeyResult {
    valid: bool,
    code: VerifyCode,
    key_id: Option<Uuid>,
    key_type: Option<KeyType>,
    /// Credits left in the account's cycle after this call; null when the key is unknown.
    remaining_credits: Option<i32>,
    /// When the account's current cycle ends and its credits renew; null when the key is unknown.
    /// Lets a gateway answer USAGE_EXCEEDED with a Retry-After.
    cycle_end: Option<DateTime>,
    /// v3: the key's account; null when the key is unknown.
    account_id: Option<Uuid>,
    /// v3: the key's rate limit as it stands after this call; null when the key has none or is unknown.
    rate_limit: Option<RateLimitState>,
    /// v3: with RATE_LIMITED, seconds until the window frees (at least 1); with USAGE_EXCEEDED,
    /// seconds until cycleEnd (at least 1); null otherwise.
    retry_after_seconds: Option<i32>,
}

impl From<Verification> for VerifyKeyResult {
    fn from(v: Verification) -> Self {
        Self {
            valid: v.code == VerifyCode::Valid,
            code: v.code,
            key_id: v.key.map(|key| key.id),
            key_type: v.key.map(|key| key.key_type),
            remaining_credits: v.remaining_credits.map(saturating_i32),
            cycle_end: v.cycle_end.map(Into::into),
            account_id: v.account_id,
            rate_limit: v.rate_limit.map(RateLimitState::from),
            retry_after_seconds: v.retry_after_secs.map(saturating_i32),
        }
    }
}

/// v3
#[derive(SimpleObject)]
pub struct RateLimitState {
    limit: i32,
    /// Calls the current window still admits after this one.
    remaining: i32,
    /// When the current window ends.
    reset: DateTime,
}

impl From<domain::RateLimitState> for RateLimitState {
    fn from(state: domain::RateLimitState) -> Self {
        Self {
            limit: state.limit,
            remaining: saturating_i32(state.remaining),
            reset: state.reset.into(),
        }
    }
}

/// v3
#[derive(SimpleObject)]
pub struct RefundResult {
    code: RefundCode,
    /// Credits given back by this refund (0 unless REFUNDED).
    credits: i32,
    /// The account's remaining credits after it; null when the key is unknown.
    remaining_credits: Option<i32>,
}

impl From<Refund> for RefundResult {
    fn from(refund: Refund) -> Self {
        Self {
            code: refund.code,
            credits: saturating_i32(refund.credits),
            remaining_credits: refund.remaining_credits.map(saturating_i32),
        }
    }
}

/// v3
#[derive(InputObject)]
pub struct RefundUsageInput {
    /// The secret the charged call presented.
    pub key: String,
    /// The requestId the charged call carried.
    pub request_id: String,
}

#[derive(SimpleObject)]
pub struct KeyUsage {
    api_key: ApiKey,
    /// Credits this key used in the current billing cycle.
    credits: i32,
    /// Successful verifications of this key in the current billing cycle.
    requests: i32,
}

#[derive(SimpleObject)]
pub struct KeysUsage {
    cycle_start: DateTime,
    cycle_end: DateTime,
    /// Sum of credits over all keys in the cycle.
    total_credits: i32,
    /// monthlyCredits minus totalCredits, never below 0.
    remaining_credits: i32,
    /// Every key of the account that is active or has usage in the cycle,
    /// most credits first, then newest first.
    keys: Vec<KeyUsage>,
}

impl From<metering::KeysUsage> for KeysUsage {
    fn from(usage: metering::KeysUsage) -> Self {
        let now = usage.now;
        Self {
            cycle_start: usage.cycle.start.into(),
            cycle_end: usage.cycle.end.into(),
            total_credits: saturating_i32(usage.total_credits),
            remaining_credits: saturating_i32(usage.remaining_credits),
            keys: usage
                .keys
                .into_iter()
                .map(|k| KeyUsage {
                    api_key: ApiKey::new(k.key, now).made_by(k.maker.map(MemberUser::from)),
                    credits: saturating_i32(k.credits),
                    requests: saturating_i32(k.requests),
                })
                .collect(),
        }
    }
}

/// v2: a configured sign-in provider.
#[derive(SimpleObject)]
pub struct AuthProvider {
    /// The id startSignIn and completeSignIn take, e.g. "google".
    pub id: String,
    /// What a sign-in button shows, e.g. "Google".
    pub name: String,
}

/// v2
#[derive(SimpleObject)]
pub struct SignInStart {
    /// Where to send the browser: the provider's authorization endpoint, with this sign-in's
    /// state, nonce and PKCE (S256) challenge, and redirect_uri {public URL}/auth/callback.
    pub authorization_url: String,
}

/// v2
#[derive(InputObject)]
pub struct CompleteSignInInput {
    pub provider: String,
    /// The code and state the provider appended to the redirect_uri.
    pub code: String,
    pub state: String,
}

/// v2
#[derive(SimpleObject)]
pub struct KeyUsageSeries {
    api_key: ApiKey,
    /// One point per bucket of the series, oldest first, zero where nothing was charged.
    points: UsagePoints,
}

/// v2: usage over time, for charts.
#[derive(SimpleObject)]
pub struct UsageSeries {
    interval: Interval,
    /// Start of the first bucket: the requested `from` truncated to the interval.
    from: DateTime,
    /// End of the last bucket (exclusive): the requested `to` rounded up to the interval.
    to: DateTime,
    /// The series' keys together (all the user's keys, or those of keyIds): one point per bucket,
    /// oldest first, zero where nothing was charged.
    total: UsagePoints,
    /// One series per key with usage in the range (with keyIds: exactly those keys),
    /// most credits in the range first, then newest first.
    keys: Vec<KeyUsageSeries>,
}

impl From<metering::UsageSeries> for UsageSeries {
    fn from(series: metering::UsageSeries) -> Self {
        let range = series.range;
        let starts = UsagePoints::starts(range.starts());
        let points = |points| UsagePoints::new(&starts, points);
        let now = series.now;
        Self {
            interval: range.interval,
            from: range.from.into(),
            to: range.to.into(),
            total: points(series.total),
            keys: series
                .keys
                .into_iter()
                .map(|key| KeyUsageSeries {
                    api_key: ApiKey::new(key.key, now),
                    points: points(key.points),
                })
                .collect(),
        }
    }
}

/// v3: the public face of a user inside an account.
#[derive(SimpleObject, Clone)]
pub struct MemberUser {
    id: Uuid,
    email: String,
}

impl From<metering::Maker> for MemberUser {
    fn from(maker: metering::Maker) -> Self {
        Self {
            id: maker.id,
            email: maker.email,
        }
    }
}

impl From<user::Model> for MemberUser {
    fn from(user: user::Model) -> Self {
        Self {
            id: user.id,
            email: user.email,
        }
    }
}

impl MemberUser {
    /// A user whose row is gone (never, as users are not deleted): shown
    /// by id, without an email.
    pub fn unknown(id: Uuid) -> Self {
        Self {
            id,
            email: String::new(),
        }
    }
}
