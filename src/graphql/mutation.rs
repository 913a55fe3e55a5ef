use async_graphql::{Context, Object};
use uuid::Uuid;

use super::context::{
    actor, bearer_token, client_address, current_user, end_session, member, metrics,
    sign_in_browser, state,
};
use super::cookies;
use super::cost;
use super::teams::{Account, CreateInvitationInput, CreateInvitationPayload, Invitation, Member};
use super::types::{
    ApiKey, AuthPayload, CompleteSignInInput, CreateKeyInput, CreateKeyPayload, LoginInput,
    RateLimitInput, RefundResult, RefundUsageInput, RotateKeyInput, RotateKeyPayload, SignInStart,
    SignupInput, SignupPayload, User, VerifyKeyInput, VerifyKeyResult,
};
use super::webhooks::{CreateWebhookEndpointInput, CreateWebhookEndpointPayload, WebhookDelivery};
use crate::domain::alerts::Thresholds;
use crate::domain::{AccountName, Charge, Email, GracePeriod, KeyName, KeyType, MemberRole};
use crate::error::Result;
use crate::service::accounts::SignedUp;
use crate::service::sign_in::Callback;

pub struct Mutation;

#[Object]
impl Mutation {
    /// Creates the user, a billing account and a default DEV key, and signs in.
    #[graphql(complexity = "cost::PASSWORD + child_complexity")]
    async fn signup(&self, ctx: &Context<'_>, input: SignupInput) -> Result<SignupPayload> {
        let accounts = &state(ctx).accounts;
        let signed_up = accounts
            .signup(client_address(ctx), &input.email, &input.password)
            .await?;
        cookies::set_session(ctx, &signed_up.signed_in.token, accounts.session_ttl());
        Ok(signup_payload(signed_up, state(ctx).clock.now()))
    }

    #[graphql(complexity = "cost::PASSWORD + child_complexity")]
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<AuthPayload> {
        let accounts = &state(ctx).accounts;
        let signed_in = accounts
            .login(client_address(ctx), &input.email, &input.password)
            .await?;
        cookies::set_session(ctx, &signed_in.token, accounts.session_ttl());
        Ok(AuthPayload {
            token: signed_in.token,
            user: User::new(signed_in.user, None),
        })
    }

    /// Ends the session of the presented token.
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn logout(&self, ctx: &Context<'_>) -> Result<bool> {
        // Cleared first: a browser whose session already ended must still
        // lose the cookie, though the answer is UNAUTHENTICATED.
        cookies::clear_session(ctx);
        state(ctx).sessions.end(bearer_token(ctx)?).await?;
        end_session(ctx);
        Ok(true)
    }

    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn create_key(
        &self,
        ctx: &Context<'_>,
        input: CreateKeyInput,
    ) -> Result<CreateKeyPayload> {
        let name = KeyName::parse(&input.name)?;
        let rate_limit = input.rate_limit.map(RateLimitInput::parse).transpose()?;
        let (user, member) = member(ctx, input.account_id).await?;
        let state = state(ctx);
        let key_type = input.key_type.unwrap_or(KeyType::Dev);
        let expires_at = input.expires_at.map(|at| at.0);
        let created = state
            .keys
            .create(
                &member,
                &actor(ctx, user),
                name,
                key_type,
                expires_at,
                rate_limit,
            )
            .await?;
        Ok(CreateKeyPayload::new(created, state.clock.now()))
    }

    /// Revokes one of the signed-in user's keys; revoking twice returns the same key.
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn revoke_key(&self, ctx: &Context<'_>, id: Uuid) -> Result<ApiKey> {
        let user = current_user(ctx).await?;
        let state = state(ctx);
        let key = state.keys.revoke(&actor(ctx, user), id).await?;
        Ok(ApiKey::new(key, state.clock.now()))
    }

    /// Used by API gateways: checks a presented secret and, when valid and within the
    /// account's credits, records the usage. Needs no token: the secret is the credential.
    #[graphql(complexity = "cost::CHARGE + child_complexity")]
    async fn verify_key(
        &self,
        ctx: &Context<'_>,
        input: VerifyKeyInput,
    ) -> Result<VerifyKeyResult> {
        let charge = Charge::parse(input.credits.unwrap_or(1), input.endpoint, input.request_id)?;
        let verification = state(ctx).metering.verify(&input.key, charge).await?;
        metrics(ctx).verify_answered(verification.code);
        Ok(verification.into())
    }

    /// v3: gives back the credits of one charged call, found by its key and requestId, so that a
    /// gateway charges only calls its upstream served. Needs no token: the secret is the credential,
    /// as for verifyKey. Racing and repeated refunds of one call give back its credits once.
    #[graphql(complexity = "cost::CHARGE + child_complexity")]
    async fn refund_usage(
        &self,
        ctx: &Context<'_>,
        input: RefundUsageInput,
    ) -> Result<RefundResult> {
        let refund = state(ctx)
            .metering
            .refund(&input.key, &input.request_id)
            .await?;
        Ok(refund.into())
    }

    /// v2: starts signing in with a configured provider (OpenID Connect authorization code flow
    /// with PKCE). Unknown provider: BAD_USER_INPUT.
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn start_sign_in(&self, ctx: &Context<'_>, provider: String) -> Result<SignInStart> {
        let started = state(ctx)
            .sign_in
            .start(client_address(ctx), &provider)
            .await?;
        cookies::set_sign_in(ctx, started.browser.expose());
        Ok(SignInStart {
            authorization_url: started.authorization_url,
        })
    }

    /// v2: finishes a sign-in the provider sent back to {public URL}/auth/callback.
    #[graphql(complexity = "cost::PASSWORD + child_complexity")]
    async fn complete_sign_in(
        &self,
        ctx: &Context<'_>,
        input: CompleteSignInInput,
    ) -> Result<SignupPayload> {
        let callback = Callback {
            provider: &input.provider,
            code: &input.code,
            state: &input.state,
            browser: sign_in_browser(ctx),
        };
        let state = state(ctx);
        let signed_up = state
            .sign_in
            .complete(client_address(ctx), callback)
            .await?;
        cookies::set_session(
            ctx,
            &signed_up.signed_in.token,
            state.accounts.session_ttl(),
        );
        Ok(signup_payload(signed_up, state.clock.now()))
    }

    /// v2: replaces one of the user's keys by a new one with a new secret. A revoked, expired or
    /// already rotated key: BAD_USER_INPUT. Another user's key: NOT_FOUND.
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn rotate_key(
        &self,
        ctx: &Context<'_>,
        input: RotateKeyInput,
    ) -> Result<RotateKeyPayload> {
        let grace = GracePeriod::parse(input.grace_period_seconds.unwrap_or(0))?;
        let user = current_user(ctx).await?;
        let state = state(ctx);
        let rotated = state
            .keys
            .rotate(&actor(ctx, user), input.id, grace)
            .await?;
        Ok(RotateKeyPayload::new(rotated, state.clock.now()))
    }

    /// v2: renames one of the user's keys (same rules as createKey's name).
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn rename_key(&self, ctx: &Context<'_>, id: Uuid, name: String) -> Result<ApiKey> {
        let name = KeyName::parse(&name)?;
        let user = current_user(ctx).await?;
        let state = state(ctx);
        let key = state.keys.rename(&actor(ctx, user), id, name).await?;
        Ok(ApiKey::new(key, state.clock.now()))
    }

    /// v3: sets (or with null removes) a key's rate limit. Any member of the key's account.
    // Whatever the key's status, as renameKey; setting the limit a key
    // already has writes no audit event (see `Keys::set_rate_limit`).
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn set_key_rate_limit(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        rate_limit: Option<RateLimitInput>,
    ) -> Result<ApiKey> {
        let limit = rate_limit.map(RateLimitInput::parse).transpose()?;
        let user = current_user(ctx).await?;
        let state = state(ctx);
        let key = state
            .keys
            .set_rate_limit(&actor(ctx, user), id, limit)
            .await?;
        Ok(ApiKey::new(key, state.clock.now()))
    }

    /// v2: lazy provisioning, for dashboards. If the signed-in user has never had a default key
    /// (signup's provisioning failed, or none was made at their first sign-in), makes it and returns
    /// it with its secret, shown this once; otherwise null. Concurrent calls make at most one key.
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn ensure_default_key(&self, ctx: &Context<'_>) -> Result<Option<CreateKeyPayload>> {
        let user = current_user(ctx).await?;
        let state = state(ctx);
        let created = state.accounts.ensure_default_key(user).await?;
        let now = state.clock.now();
        Ok(created.map(|created| CreateKeyPayload::new(created, now)))
    }

    /// v3: makes a new account (a team) with the signed-in user as its only member and OWNER, and
    /// its own billing account with the default plan and monthly credits; it has no keys yet.
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn create_account(&self, ctx: &Context<'_>, name: String) -> Result<Account> {
        let name = AccountName::parse(&name)?;
        let user = current_user(ctx).await?;
        let made = state(ctx)
            .teams
            .create_account(user, &actor(ctx, user), name)
            .await?;
        Ok(made.into())
    }

    /// v3: OWNER. Renames the account (1 to 64 characters).
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn rename_account(
        &self,
        ctx: &Context<'_>,
        account_id: Uuid,
        name: String,
    ) -> Result<Account> {
        let name = AccountName::parse(&name)?;
        let (user, member) = member(ctx, Some(account_id)).await?;
        let account = state(ctx)
            .teams
            .rename(&member, &actor(ctx, user), name)
            .await?;
        Ok(Account::new(account, member))
    }

    /// v3: OWNER. Invites an email to the account.
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn create_invitation(
        &self,
        ctx: &Context<'_>,
        input: CreateInvitationInput,
    ) -> Result<CreateInvitationPayload> {
        let email = Email::parse(&input.email)?;
        let (user, member) = member(ctx, input.account_id).await?;
        let role = input.role.unwrap_or(MemberRole::Member);
        let invited = state(ctx)
            .invitations
            .invite(&member, &actor(ctx, user), email, role)
            .await?;
        Ok(CreateInvitationPayload::new(invited, user))
    }

    /// v3: OWNER of the invitation's account.
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn revoke_invitation(&self, ctx: &Context<'_>, id: Uuid) -> Result<Invitation> {
        let user = current_user(ctx).await?;
        let state = state(ctx);
        let revoked = state
            .invitations
            .revoke(user, &actor(ctx, user), id)
            .await?;
        let inviter = state.teams.users(vec![revoked.invited_by]).await?;
        let users = inviter
            .into_iter()
            .map(|user| (user.id, user.into()))
            .collect();
        Ok(Invitation::new(revoked, &users))
    }

    /// v3: the signed-in user joins the invitation's account with its role.
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn accept_invitation(&self, ctx: &Context<'_>, token: String) -> Result<Account> {
        let user = current_user(ctx).await?;
        let joined = state(ctx)
            .invitations
            .accept(user, &actor(ctx, user), &token)
            .await?;
        Ok(joined.into())
    }

    /// v3: OWNER. Demoting the last OWNER: BAD_USER_INPUT.
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn set_member_role(
        &self,
        ctx: &Context<'_>,
        account_id: Uuid,
        user_id: Uuid,
        role: MemberRole,
    ) -> Result<Member> {
        let (user, member) = member(ctx, Some(account_id)).await?;
        let changed = state(ctx)
            .teams
            .set_role(&member, &actor(ctx, user), user_id, role)
            .await?;
        Ok(changed.into())
    }

    /// v3: OWNER. Sets the account's usage alert thresholds (0 to 5 distinct values, 1 to 100).
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn set_usage_alerts(
        &self,
        ctx: &Context<'_>,
        account_id: Option<Uuid>,
        thresholds: Vec<i32>,
    ) -> Result<Account> {
        let thresholds = Thresholds::parse(&thresholds)?;
        let (user, member) = member(ctx, account_id).await?;
        let state = state(ctx);
        state
            .alerts
            .set(&member, &actor(ctx, user), thresholds)
            .await?;
        let account = state.teams.account(&member).await?;
        Ok(Account::new(account, member))
    }

    /// v3: an OWNER removes a member, or a member removes themself (leaves).
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn remove_member(
        &self,
        ctx: &Context<'_>,
        account_id: Uuid,
        user_id: Uuid,
    ) -> Result<bool> {
        let (user, member) = member(ctx, Some(account_id)).await?;
        state(ctx)
            .teams
            .remove(&member, &actor(ctx, user), user_id)
            .await?;
        Ok(true)
    }

    /// v3: OWNER. At most 10 endpoints per account, else BAD_USER_INPUT.
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn create_webhook_endpoint(
        &self,
        ctx: &Context<'_>,
        input: CreateWebhookEndpointInput,
    ) -> Result<CreateWebhookEndpointPayload> {
        let (user, member) = member(ctx, input.account_id).await?;
        let events = input.events.unwrap_or_default();
        let created = state(ctx)
            .webhooks
            .create(&member, &actor(ctx, user), &input.url, &events)
            .await?;
        Ok(created.into())
    }

    /// v3: OWNER. Its pending deliveries are dropped.
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn delete_webhook_endpoint(&self, ctx: &Context<'_>, id: Uuid) -> Result<bool> {
        let webhooks = &state(ctx).webhooks;
        let account_id = webhooks.account_of_endpoint(id).await?;
        let (user, member) = member(ctx, Some(account_id)).await?;
        webhooks.delete(&member, &actor(ctx, user), id).await?;
        Ok(true)
    }

    /// v3: OWNER. Sends a webhook.test event (data: {endpointId}) to the endpoint now, whatever
    /// its event filter; it appears in webhookDeliveries like any other.
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn send_test_webhook(
        &self,
        ctx: &Context<'_>,
        endpoint_id: Uuid,
    ) -> Result<WebhookDelivery> {
        let webhooks = &state(ctx).webhooks;
        let account_id = webhooks.account_of_endpoint(endpoint_id).await?;
        let (_, member) = member(ctx, Some(account_id)).await?;
        Ok(webhooks.send_test(&member, endpoint_id).await?.into())
    }

    /// v3: OWNER. Delivers a delivery's event again (a SUCCEEDED or FAILED one), with the same
    /// webhook-id, as a new attempt of the same delivery; it is PENDING until that attempt ends.
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn redeliver_webhook(
        &self,
        ctx: &Context<'_>,
        delivery_id: Uuid,
    ) -> Result<WebhookDelivery> {
        let webhooks = &state(ctx).webhooks;
        let account_id = webhooks.account_of_delivery(delivery_id).await?;
        let (_, member) = member(ctx, Some(account_id)).await?;
        Ok(webhooks.redeliver(&member, delivery_id).await?.into())
    }
}

/// What signup and a first sign-in answer; the default key's status is
/// computed at `now`.
fn signup_payload(signed_up: SignedUp, now: chrono::DateTime<chrono::Utc>) -> SignupPayload {
    SignupPayload {
        token: signed_up.signed_in.token,
        user: User::new(signed_up.signed_in.user, signed_up.billing_account),
        default_key: signed_up
            .default_key
            .map(|created| CreateKeyPayload::new(created, now)),
    }
}
