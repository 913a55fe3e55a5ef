use async_graphql::{Context, Object};
use uuid::Uuid;

use super::context::{current_user, state};
use super::scalars::DateTime;
use super::types::{ApiKey, AuthProvider, KeysUsage, UsageSeries, User};
use super::{budget, cost};
use crate::domain::Interval;
use crate::error::Result;
use crate::metering::SeriesAsk;

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
        let keys = state
            .keys
            .list(user.id, include_revoked.unwrap_or(false))
            .await?;
        budget::charge_key_list(ctx, keys.len(), budget::item_fields(ctx.field()))?;
        let now = state.clock.now();
        Ok(keys.into_iter().map(|key| ApiKey::new(key, now)).collect())
    }

    /// Per-key credits within the current billing cycle of the signed-in user's account.
    #[graphql(complexity = "cost::USAGE + child_complexity")]
    async fn keys_usage(&self, ctx: &Context<'_>) -> Result<KeysUsage> {
        let user = current_user(ctx).await?;
        let usage = state(ctx).metering.keys_usage(user.id).await?;
        let item_fields = ctx
            .field()
            .selection_set()
            .filter(|field| field.name() == "keys")
            .map(budget::item_fields)
            .sum();
        budget::charge_key_list(ctx, usage.keys.len(), item_fields)?;
        Ok(usage.into())
    }

    /// v2: charged credits and requests of the signed-in user's keys over time. Defaults: from
    /// the start of the current billing cycle to now, by DAY. At most 168 HOUR or 92 DAY buckets,
    /// and `from` before `to`, else BAD_USER_INPUT. keyIds restricts the series to those keys
    /// (an id that is not the user's: NOT_FOUND).
    #[graphql(complexity = "cost::USAGE + child_complexity")]
    async fn usage_series(
        &self,
        ctx: &Context<'_>,
        from: Option<DateTime>,
        to: Option<DateTime>,
        #[graphql(default_with = "Some(Interval::Day)")] interval: Option<Interval>,
        key_ids: Option<Vec<Uuid>>,
    ) -> Result<UsageSeries> {
        let user = current_user(ctx).await?;
        let ask = SeriesAsk {
            from: from.map(|t| t.0),
            to: to.map(|t| t.0),
            interval: interval.unwrap_or(Interval::Day),
            key_ids,
        };
        Ok(state(ctx).metering.usage_series(user.id, ask).await?.into())
    }

    /// v2: the sign-in providers this server is configured with; empty by default. Needs no token.
    async fn auth_providers(&self, ctx: &Context<'_>) -> Vec<AuthProvider> {
        state(ctx)
            .sign_in
            .providers()
            .list()
            .iter()
            .map(|provider| AuthProvider {
                id: provider.id.clone(),
                name: provider.name.clone(),
            })
            .collect()
    }
}
