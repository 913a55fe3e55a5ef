//! Output and input types of the contract, converted from entities.

use async_graphql::{Context, InputObject, Object, SimpleObject};
use uuid::Uuid;

use super::context::state;
use super::scalars::DateTime;
use crate::domain::{Cycle, KeyType};
use crate::entity::{api_key, billing_account, user};
use crate::error::Result;
use crate::service::{accounts, keys::CreatedKey};

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

    async fn billing_account(&self, ctx: &Context<'_>) -> Result<BillingAccount> {
        let state = state(ctx);
        let now = state.clock.now();
        let account = match &self.billing_account {
            Some(account) => account.clone(),
            None => accounts::billing_account(&state.db, &state.policy, self.user.id, now).await?,
        };
        Ok(BillingAccount::new(account, now))
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

/// GraphQL's Int is 32 bits; counts are kept in 64.
pub fn saturating_i32(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(if n < 0 { i32::MIN } else { i32::MAX })
}

#[derive(SimpleObject)]
pub struct ApiKey {
    id: Uuid,
    name: String,
    key_type: KeyType,
    /// The first characters of the secret, safe to show, e.g. sk_dev_3fA9.
    prefix: String,
    created_at: DateTime,
    last_used_at: Option<DateTime>,
    revoked_at: Option<DateTime>,
}

impl From<api_key::Model> for ApiKey {
    fn from(key: api_key::Model) -> Self {
        Self {
            id: key.id,
            name: key.name,
            key_type: key.key_type,
            prefix: key.prefix,
            created_at: key.created_at.into(),
            last_used_at: key.last_used_at.map(Into::into),
            revoked_at: key.revoked_at.map(Into::into),
        }
    }
}

#[derive(SimpleObject)]
pub struct CreateKeyPayload {
    api_key: ApiKey,
    /// The full secret. Returned once, never stored in plain text, never shown again.
    secret: String,
}

impl From<CreatedKey> for CreateKeyPayload {
    fn from(created: CreatedKey) -> Self {
        Self {
            api_key: created.key.into(),
            secret: created.secret,
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
}
