use async_graphql::{Context, Object};
use uuid::Uuid;

use super::context::{account_keys, current_user, member, own_account, own_account_named, state};
use super::scalars::DateTime;
use super::teams::Account;
use super::types::{ApiKey, AuthProvider, KeysUsage, MemberUser, UsageSeries, User};
use super::{budget, cost};
use crate::domain::{Interval, Membership};
use crate::error::Result;
use crate::metering::SeriesAsk;

pub struct Query;

#[Object]
impl Query {
    /// The signed-in user. UNAUTHENTICATED without a valid token.
    async fn me(&self, ctx: &Context<'_>) -> Result<User> {
        Ok(User::new(current_user(ctx).await?.clone(), None))
    }

    /// The signed-in user's keys, newest first. v3: the keys of the account accountId (default:
    /// the user's own account), made by any member.
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn keys(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(false)")] include_revoked: Option<bool>,
        account_id: Option<Uuid>,
    ) -> Result<Vec<ApiKey>> {
        let (_, member) = member(ctx, account_id).await?;
        let keys = account_keys(ctx, &member)
            .await?
            .listed(include_revoked.unwrap_or(false));
        budget::charge_key_list(ctx, keys.len(), budget::item_fields(ctx.field()))?;
        let now = state(ctx).clock.now();
        Ok(keys
            .into_iter()
            .map(|(key, maker)| ApiKey::new(key, now).made_by(maker.map(MemberUser::from)))
            .collect())
    }

    /// Per-key credits within the current billing cycle of the signed-in user's account.
    /// v3: of the account accountId (default: the user's own).
    #[graphql(complexity = "cost::USAGE + child_complexity")]
    async fn keys_usage(&self, ctx: &Context<'_>, account_id: Option<Uuid>) -> Result<KeysUsage> {
        let (_, member) = member(ctx, account_id).await?;
        let usage = account_keys(ctx, &member)
            .await?
            .usage(state(ctx).clock.now());
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
        account_id: Option<Uuid>,
    ) -> Result<UsageSeries> {
        let (_, member) = member(ctx, account_id).await?;
        // The own account was read with the session: its cycle is known.
        let cycle_anchor = match account_id {
            None => Some(own_account(ctx).await?.billing_cycle_start),
            Some(_) => None,
        };
        let ask = SeriesAsk {
            from: from.map(|t| t.0),
            to: to.map(|t| t.0),
            interval: interval.unwrap_or(Interval::Day),
            key_ids,
            cycle_anchor,
        };
        Ok(state(ctx).metering.usage_series(&member, ask).await?.into())
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

    /// v3: the accounts the signed-in user is a member of, their own first, then by name.
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn accounts(&self, ctx: &Context<'_>) -> Result<Vec<Account>> {
        let user = current_user(ctx).await?;
        let accounts = state(ctx).teams.accounts(user).await?;
        Ok(accounts.into_iter().map(Account::from).collect())
    }

    /// v3: one of them; default: the user's own. Not a member (or no such account): NOT_FOUND.
    #[graphql(complexity = "cost::READ + child_complexity")]
    async fn account(&self, ctx: &Context<'_>, id: Option<Uuid>) -> Result<Account> {
        let user = current_user(ctx).await?;
        let named_own = id.and_then(|id| own_account_named(ctx, id));
        let (account, member) = match (id, named_own) {
            (Some(_), None) => state(ctx).teams.membership_of(user, id).await?,
            (_, Some(own)) => (own.clone(), Membership::own(own.id, user.id)),
            (None, None) => {
                let own = own_account(ctx).await?;
                (own.clone(), Membership::own(own.id, user.id))
            }
        };
        Ok(Account::new(account, member))
    }
}
