//! Reading the application state and the signed-in user out of a resolver's context.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_graphql::Context;
use tokio::sync::OnceCell;
use uuid::Uuid;

use crate::domain::audit::Actor;
use crate::domain::{Membership, SecretHash};
use crate::entity::{billing_account, user};
use crate::error::{Error, Result};
use crate::metering::AccountKeys;
use crate::metrics::Metrics;
use crate::state::AppState;

/// The session token of one HTTP request (its bearer token, or the
/// dashboard's session cookie, see `http::endpoint`), and the user it resolves to,
/// looked up at most once however many fields ask. Once `logout` ends the
/// session, the rest of the document runs signed out. Also the other users
/// the answer names (the makers of keys), each looked up once per request
/// however many aliases ask: made on first use, as most requests (every
/// verifyKey) name none.
pub struct RequestAuth {
    token: Option<String>,
    user: OnceCell<user::Model>,
    ended: AtomicBool,
    named: std::sync::OnceLock<tokio::sync::Mutex<HashMap<Uuid, Option<user::Model>>>>,
    /// The signed-in user's own account, as first read in this request: the
    /// user stays its OWNER, so the fields of one document that act on it
    /// (account, keys, keysUsage, …) read it once. Other accounts'
    /// memberships are read each time: a removal takes effect at once.
    own_account: OnceCell<billing_account::Model>,
    /// Each account's keys with their usage, as first read in this request:
    /// `keys` and `keysUsage` of one document share the read (a query
    /// writes nothing, so both see the same).
    account_keys: std::sync::Mutex<HashMap<Uuid, Arc<OnceCell<Arc<AccountKeys>>>>>,
}

impl RequestAuth {
    pub fn new(token: Option<String>) -> Self {
        Self {
            token,
            user: OnceCell::new(),
            ended: AtomicBool::new(false),
            named: std::sync::OnceLock::new(),
            own_account: OnceCell::new(),
            account_keys: Default::default(),
        }
    }

    pub fn token(&self) -> Result<&str> {
        if self.ended.load(Ordering::Acquire) {
            return Err(Error::Unauthenticated);
        }
        self.token.as_deref().ok_or(Error::Unauthenticated)
    }

    /// The session is over: no later field of this request may use it.
    pub fn end(&self) {
        self.ended.store(true, Ordering::Release);
    }
}

/// The sign-in cookie the request came with (see `service::sign_in`), if any.
pub struct SignInBrowser(pub Option<String>);

pub fn sign_in_browser<'a>(ctx: &Context<'a>) -> Option<&'a str> {
    ctx.data_opt::<SignInBrowser>()?.0.as_deref()
}

/// Who sent the request: its address, as rate limits see it, and its
/// User-Agent, for the audit log (kept as the header's bytes: only a write
/// that is audited reads it).
#[derive(Debug, Clone)]
pub struct Client {
    pub address: IpAddr,
    pub user_agent: Option<axum::http::HeaderValue>,
}

impl Client {
    pub fn new(address: IpAddr, headers: &axum::http::HeaderMap) -> Self {
        Self {
            address,
            user_agent: headers.get(axum::http::header::USER_AGENT).cloned(),
        }
    }
}

pub fn client_address(ctx: &Context<'_>) -> IpAddr {
    ctx.data_unchecked::<Client>().address
}

/// The signed-in user as the audit log names them: with the request's
/// client address and User-Agent.
pub fn actor(ctx: &Context<'_>, user: &user::Model) -> Actor {
    let client = ctx.data_unchecked::<Client>();
    let agent = client
        .user_agent
        .as_ref()
        .and_then(|agent| agent.to_str().ok());
    Actor::user(user.id, Some(client.address), agent)
}

/// The signed-in user and their membership of `account_id` (default: their
/// own account), as the `teams` service reads it for this request; not a
/// member: NOT_FOUND.
pub async fn member<'a>(
    ctx: &Context<'a>,
    account_id: Option<uuid::Uuid>,
) -> Result<(&'a user::Model, Membership)> {
    let user = current_user(ctx).await?;
    let membership = match account_id {
        Some(id) => match own_account_named(ctx, id) {
            Some(own) => Membership::own(own.id, user.id),
            None => state(ctx).teams.membership(user, account_id).await?,
        },
        None => Membership::own(own_account(ctx).await?.id, user.id),
    };
    Ok((user, membership))
}

/// The user's own account, when `account_id` names it and the session's
/// lookup read it (call after `current_user`): the page passes the own
/// account's id as any other, and the user is always its OWNER, so its
/// membership needs no read of its own.
pub fn own_account_named<'a>(
    ctx: &Context<'a>,
    account_id: uuid::Uuid,
) -> Option<&'a billing_account::Model> {
    auth(ctx)
        .own_account
        .get()
        .filter(|own| own.id == account_id)
}

/// The signed-in user's own account, read once per request (provisioned
/// now if signup could not).
pub async fn own_account<'a>(ctx: &Context<'a>) -> Result<&'a billing_account::Model> {
    let user = current_user(ctx).await?;
    auth(ctx)
        .own_account
        .get_or_try_init(|| state(ctx).teams.own_account(user))
        .await
}

/// The member's account's keys and their usage in the current cycle, read
/// once per request and account (concurrent fields wait for one read).
pub async fn account_keys(ctx: &Context<'_>, member: &Membership) -> Result<Arc<AccountKeys>> {
    let read = {
        let mut reads = auth(ctx)
            .account_keys
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        reads.entry(member.account_id).or_default().clone()
    };
    let keys = read
        .get_or_try_init(|| async { state(ctx).metering.account_keys(member).await })
        .await?;
    Ok(keys.clone())
}

pub fn metrics<'a>(ctx: &Context<'a>) -> &'a Metrics {
    ctx.data_unchecked::<Arc<Metrics>>()
}

pub fn state<'a>(ctx: &Context<'a>) -> &'a AppState {
    ctx.data_unchecked::<AppState>()
}

fn auth<'a>(ctx: &Context<'a>) -> &'a RequestAuth {
    ctx.data_unchecked::<RequestAuth>()
}

/// The bearer token of this request, or UNAUTHENTICATED.
pub fn bearer_token<'a>(ctx: &Context<'a>) -> Result<&'a str> {
    auth(ctx).token()
}

/// The user `id` as this request's answer names it (a key's maker), read
/// at most once per request; None if there is no such user.
pub async fn named_user(ctx: &Context<'_>, id: Uuid) -> Result<Option<user::Model>> {
    let Some(auth) = ctx.data_opt::<RequestAuth>() else {
        return read_user(ctx, id).await;
    };
    let mut named = auth.named.get_or_init(Default::default).lock().await;
    if let Some(known) = named.get(&id) {
        return Ok(known.clone());
    }
    let found = read_user(ctx, id).await?;
    named.insert(id, found.clone());
    Ok(found)
}

async fn read_user(ctx: &Context<'_>, id: Uuid) -> Result<Option<user::Model>> {
    Ok(state(ctx).teams.users(vec![id]).await?.into_iter().next())
}

/// Marks this request's session as ended (see `RequestAuth::end`).
pub fn end_session(ctx: &Context<'_>) {
    auth(ctx).end();
}

/// The signed-in user, or UNAUTHENTICATED.
pub async fn current_user<'a>(ctx: &Context<'a>) -> Result<&'a user::Model> {
    signed_in_user(auth(ctx), state(ctx)).await
}

/// The user `auth` resolves to, looked up once per request.
pub async fn signed_in_user<'a>(
    auth: &'a RequestAuth,
    state: &AppState,
) -> Result<&'a user::Model> {
    let token = auth.token()?;
    auth.user
        .get_or_try_init(|| async {
            let found = state.lookups.user(SecretHash::of(token).to_vec()).await?;
            let found = found.ok_or(Error::Unauthenticated)?;
            if let Some(own) = found.own_account {
                // Read with the session: the fields that act on it need
                // not read it again.
                let _ = auth.own_account.set(own);
            }
            Ok(found.user)
        })
        .await
}
