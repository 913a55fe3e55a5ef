use async_graphql::{Context, Object};
use uuid::Uuid;

use super::context::{
    bearer_token, client_address, current_user, end_session, metrics, sign_in_browser, state,
};
use super::cost;
use super::types::{
    ApiKey, AuthPayload, CompleteSignInInput, CreateKeyInput, CreateKeyPayload, LoginInput,
    SignInStart, SignupInput, SignupPayload, User, VerifyKeyInput, VerifyKeyResult,
};
use crate::domain::{Charge, KeyName, KeyType};
use crate::error::Result;
use crate::service::accounts::SignedUp;
use crate::service::sign_in::{self, Callback, BROWSER_COOKIE};
use crate::service::{accounts, keys, metering, sessions};

pub struct Mutation;

#[Object]
impl Mutation {
    /// Creates the user, a billing account and a default DEV key, and signs in.
    #[graphql(complexity = "cost::PASSWORD + child_complexity")]
    async fn signup(&self, ctx: &Context<'_>, input: SignupInput) -> Result<SignupPayload> {
        let signed_up = accounts::signup(
            state(ctx),
            client_address(ctx),
            &input.email,
            &input.password,
        )
        .await?;
        Ok(signed_up.into())
    }

    #[graphql(complexity = "cost::PASSWORD + child_complexity")]
    async fn login(&self, ctx: &Context<'_>, input: LoginInput) -> Result<AuthPayload> {
        let signed_in = accounts::login(
            state(ctx),
            client_address(ctx),
            &input.email,
            &input.password,
        )
        .await?;
        Ok(AuthPayload {
            token: signed_in.token,
            user: User::new(signed_in.user, None),
        })
    }

    /// Ends the session of the presented token.
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn logout(&self, ctx: &Context<'_>) -> Result<bool> {
        let state = state(ctx);
        sessions::end(&state.db, bearer_token(ctx)?, state.clock.now()).await?;
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
        let user = current_user(ctx).await?;
        let state = state(ctx);
        let key_type = input.key_type.unwrap_or(KeyType::Dev);
        let now = state.clock.now();
        let created = keys::create(&state.db, &state.policy, user.id, name, key_type, now).await?;
        Ok(created.into())
    }

    /// Revokes one of the signed-in user's keys; revoking twice returns the same key.
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn revoke_key(&self, ctx: &Context<'_>, id: Uuid) -> Result<ApiKey> {
        let user = current_user(ctx).await?;
        let state = state(ctx);
        Ok(keys::revoke(&state.db, user.id, id, state.clock.now())
            .await?
            .into())
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
        let verification = metering::verify(state(ctx), &input.key, charge).await?;
        metrics(ctx).verify_answered(verification.code);
        Ok(verification.into())
    }

    /// v2: starts signing in with a configured provider (OpenID Connect authorization code flow
    /// with PKCE). Unknown provider: BAD_USER_INPUT.
    #[graphql(complexity = "cost::WRITE + child_complexity")]
    async fn start_sign_in(&self, ctx: &Context<'_>, provider: String) -> Result<SignInStart> {
        let state = state(ctx);
        let started = sign_in::start(state, &provider).await?;
        // Lax: the cookie rides along when the callback page, on our own
        // origin, calls completeSignIn; never on another site's requests.
        let secure = if state.providers.secure_cookies() {
            "; Secure"
        } else {
            ""
        };
        let max_age = sign_in::FLOW_LIFETIME.num_seconds();
        ctx.append_http_header(
            "set-cookie",
            format!(
                "{BROWSER_COOKIE}={}; Path=/graphql; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
                started.browser.expose()
            ),
        );
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
        let signed_up = sign_in::complete(state(ctx), client_address(ctx), callback).await?;
        Ok(signed_up.into())
    }
}

impl From<SignedUp> for SignupPayload {
    fn from(signed_up: SignedUp) -> Self {
        Self {
            token: signed_up.signed_in.token,
            user: User::new(signed_up.signed_in.user, signed_up.billing_account),
            default_key: signed_up.default_key.map(Into::into),
        }
    }
}
