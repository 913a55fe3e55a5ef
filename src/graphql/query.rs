use async_graphql::{Context, Object};

use super::context::{current_user, state};
use super::cost;
use super::types::{ApiKey, AuthProvider, KeysUsage, User};
use crate::error::Result;
use crate::service::{accounts, keys};

pub struct Query;

#[Object]
impl Query {
    /// The signed-in user. UNAUTHENTICATED without a valid token.
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        Ok(User::new(current_user(ctx).await?.clone(), None))
    }

    /// The signed-in user's keys, newest first.
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn keys(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(false)")] include_revoked: Option<bool>,
    ) -> Result<Vec<ApiKey>> {
        let user = current_user(ctx).await?;
        let state = state(ctx);
        let now = state.clock.now();
        // Reading the account provisions it if signup could not.
        accounts::billing_account(&state.db, &state.policy, user.id, now).await?;
        let keys = keys::list(&state.db, user.id, include_revoked.unwrap_or(false)).await?;
        Ok(keys.into_iter().map(|key| ApiKey::new(key, now)).collect())
    }

    /// Per-key credits within the current billing cycle of the signed-in user's account.
    #[graphql(complexity = "cost::USAGE + child_complexity")]
    async fn keys_usage(&self, ctx: &Context<'_>) -> Result<KeysUsage> {
        let user = current_user(ctx).await?;
        Ok(state(ctx).metering.keys_usage(user.id).await?.into())
    }

    /// v2: the sign-in providers this server is configured with; empty by default. Needs no token.
    async fn auth_providers(&self, ctx: &Context<'_>) -> Vec<AuthProvider> {
        state(ctx)
            .providers
            .list()
            .iter()
            .map(|provider| AuthProvider {
                id: provider.id.clone(),
                name: provider.name.clone(),
            })
            .collect()
    }
}
