//! Signing in with an OpenID Connect provider: the flow kept in the
//! database between `startSignIn` and `completeSignIn`, and the user a
//! provider account signs in as (made, and provisioned, on its first sign-in).

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IsolationLevel,
    QueryFilter, QueryOrder, Set, Statement, TransactionTrait,
};

use super::accounts::{self, Accounts, SignedIn, SignedUp, NO_PASSWORD};
use super::{limits, on_unique_violation, sessions};
use crate::domain::{BrowserBinding, Email, SecretHash};
use crate::entity::{sign_in_flow, user, user_identity};
use crate::error::{Error, Result};
use crate::oidc::{Identity, Providers};
use crate::store::db::Db;

/// How long a started sign-in may take to complete; older flows are refused
/// and swept.
pub const FLOW_LIFETIME: chrono::Duration = chrono::Duration::minutes(10);

pub struct Started {
    pub authorization_url: String,
    /// Goes to the browser in the sign-in cookie (`graphql::cookies`), and only there.
    pub browser: BrowserBinding,
}

/// Longest provider id, code or state accepted: far above what providers
/// issue, so that a client's megabyte goes no further than this check.
const LONGEST_INPUT: usize = 2048;

fn bounded(field: &str, value: &str) -> Result<()> {
    match value.len() <= LONGEST_INPUT {
        true => Ok(()),
        false => Err(Error::bad_input(format!(
            "{field}: at most {LONGEST_INPUT} characters"
        ))),
    }
}

/// Stores `flow` unless `max` live flows are stored already (then
/// RATE_LIMITED until the oldest expires). On SQLite the one statement is
/// the decision (one writer at a time); on PostgreSQL starts take turns on
/// an advisory lock first, so that racing starts cannot both count `max - 1`.
async fn store_if_room(db: &Db, flow: sign_in_flow::Model, max: u32) -> Result<()> {
    const STORE: &str = "INSERT INTO sign_in_flows
 (state, provider, nonce, pkce_verifier, browser_hash, created_at)
 SELECT $1, $2, $3, $4, $5, $6
 WHERE (SELECT COUNT(*) FROM sign_in_flows WHERE created_at > $7) < $8
 RETURNING state";
    const TAKE_TURNS: &str = "SELECT pg_advisory_xact_lock(hashtext('keymeter.sign_in_flows'))";
    let live_since = flow.created_at - FLOW_LIFETIME;
    let now = flow.created_at;
    let values = vec![
        flow.state.into(),
        flow.provider.into(),
        flow.nonce.into(),
        flow.pkce_verifier.into(),
        flow.browser_hash.into(),
        flow.created_at.into(),
        live_since.into(),
        i64::from(max).into(),
    ];
    let backend = db.get_database_backend();
    let store = Statement::from_sql_and_values(backend, STORE, values);
    let stored = if backend == DbBackend::Postgres {
        let txn = db
            .begin_with_config(Some(IsolationLevel::ReadCommitted), None)
            .await?;
        txn.execute_unprepared(TAKE_TURNS).await?;
        let stored = txn.query_one_raw(store).await?;
        txn.commit().await?;
        stored
    } else {
        db.query_one_raw(store).await?
    };
    match stored {
        Some(_) => Ok(()),
        None => Err(Error::RateLimited {
            retry_after_secs: until_a_flow_expires(db, live_since, now).await?,
        }),
    }
}

/// Seconds until the oldest live flow expires and frees a place.
async fn until_a_flow_expires(
    db: &Db,
    live_since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64> {
    let oldest = sign_in_flow::Entity::find()
        .filter(sign_in_flow::Column::CreatedAt.gt(live_since))
        .order_by_asc(sign_in_flow::Column::CreatedAt)
        .one(db)
        .await?;
    let wait = oldest.map_or(chrono::Duration::zero(), |flow| {
        flow.created_at + FLOW_LIFETIME - now
    });
    Ok(u64::try_from(wait.num_seconds()).unwrap_or(0).max(1))
}

/// Signing in with a provider: the accounts service it signs users into
/// and the providers it signs them in with, owned, so a resolver calls it
/// with the request's data only.
#[derive(Clone)]
pub struct SignIn {
    accounts: Accounts,
    providers: Arc<Providers>,
}

impl SignIn {
    pub fn new(accounts: Accounts, providers: Providers) -> Self {
        Self {
            accounts,
            providers: Arc::new(providers),
        }
    }

    /// The providers configured, discovered at start.
    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    /// Starts a sign-in with `provider`: the flow is stored so that any process
    /// can complete it, bound to a browser by the hash of a fresh cookie value.
    /// Each start stores a row, so it is counted against the client address's
    /// limit before anything else, and refused while `max_sign_in_flows` live
    /// flows are stored.
    #[tracing::instrument(name = "start_sign_in", skip(self, provider))]
    pub async fn start(&self, client: IpAddr, provider: &str) -> Result<Started> {
        let accounts = &self.accounts;
        bounded("provider", provider)?;
        let now = accounts.clock.now();
        let policy = &accounts.policy;
        limits::reserve_sign_in(&accounts.db, policy.sign_in_limit, &client.to_string(), now)
            .await?;
        let provider = self.providers.get(provider)?;
        let authorization = provider.authorize();
        let browser = BrowserBinding::generate();
        let flow = sign_in_flow::Model {
            state: authorization.state,
            provider: provider.id.clone(),
            nonce: authorization.nonce,
            pkce_verifier: authorization.pkce_verifier,
            browser_hash: browser.hash().to_vec(),
            created_at: now,
        };
        store_if_room(&accounts.db, flow, policy.max_sign_in_flows).await?;
        Ok(Started {
            authorization_url: authorization.url,
            browser,
        })
    }

    /// Completes a sign-in: redeems its flow, has the provider vouch for the
    /// code, and signs the provider account in, making its user on the first
    /// sign-in (`default_key` set then, and only then).
    #[tracing::instrument(name = "complete_sign_in", skip_all, fields(provider = callback.provider))]
    pub async fn complete(&self, client: IpAddr, callback: Callback<'_>) -> Result<SignedUp> {
        let (accounts, providers) = (&self.accounts, &*self.providers);
        for (field, value) in [
            ("provider", callback.provider),
            ("code", callback.code),
            ("state", callback.state),
        ] {
            bounded(field, value)?;
        }
        let provider = providers.get(callback.provider)?;
        let now = accounts.clock.now();
        let Some(browser) = callback.browser else {
            return Err(Error::InvalidCredentials);
        };
        let flow = redeem(&accounts.db, callback.state, SecretHash::of(browser)).await?;
        let valid = flow.as_ref().is_some_and(|flow| {
            flow.provider == provider.id && flow.created_at > now - FLOW_LIFETIME
        });
        let Some(flow) = flow.filter(|_| valid) else {
            return Err(Error::InvalidCredentials);
        };
        let identity = providers
            .redeem(provider, callback.code, &flow.pkce_verifier, &flow.nonce)
            .await?;
        sign_in_as(accounts, client, &provider.id, identity, now).await
    }
}

/// What the callback brought back, and the cookie of the browser bringing it.
pub struct Callback<'a> {
    pub provider: &'a str,
    pub code: &'a str,
    pub state: &'a str,
    pub browser: Option<&'a str>,
}

/// Takes the flow out of the database if this browser started it, so it is
/// redeemed at most once: of two racing completions only one gets the row
/// back. A completion from another browser (someone who learnt the state)
/// finds nothing and leaves the flow for its own browser. Once taken, the
/// flow is gone even when the checks that follow refuse it, as a used state
/// should be.
async fn redeem(db: &Db, state: &str, browser: SecretHash) -> Result<Option<sign_in_flow::Model>> {
    const REDEEM: &str = "DELETE FROM sign_in_flows WHERE state = $1 AND browser_hash = $2 \
         RETURNING state, provider, nonce, pkce_verifier, browser_hash, created_at";
    let values = [state.into(), browser.to_vec().into()];
    let statement = Statement::from_sql_and_values(db.get_database_backend(), REDEEM, values);
    Ok(sign_in_flow::Entity::find()
        .from_raw_sql(statement)
        .one(db)
        .await?)
}

async fn sign_in_as(
    accounts: &Accounts,
    client: IpAddr,
    provider: &str,
    identity: Identity,
    now: DateTime<Utc>,
) -> Result<SignedUp> {
    if let Some(user) = known_user(&accounts.db, provider, &identity.subject).await? {
        return signed_in_again(accounts, user, now).await;
    }
    let email = verified_email(&identity)?;
    // A first sign-in makes an account, as a signup does, and counts as one.
    let address = client.to_string();
    limits::reserve_signup(&accounts.db, accounts.policy.signup_limit, &address, now).await?;
    match first_sign_in(accounts, provider, &identity.subject, &email, now).await {
        // Either another first sign-in of this subject won the race (then it
        // is this user now), or the email belongs to another account, which
        // is never linked silently.
        Err(Error::EmailTaken) => {
            match known_user(&accounts.db, provider, &identity.subject).await? {
                Some(user) => signed_in_again(accounts, user, now).await,
                None => Err(Error::EmailTaken),
            }
        }
        outcome => outcome,
    }
}

/// The email a new user is made with: one the provider vouches for.
fn verified_email(identity: &Identity) -> Result<Email> {
    match &identity.email {
        Some(email) if identity.email_verified => Email::parse(email),
        _ => Err(Error::bad_input(
            "email: the provider has not verified this account's email address",
        )),
    }
}

/// Makes the user, their identity, session and provisioning in one
/// transaction, exactly as signup does. EMAIL_TAKEN when the email or the
/// identity is already taken (the unique indexes decide races).
async fn first_sign_in(
    accounts: &Accounts,
    provider: &str,
    subject: &str,
    email: &Email,
    now: DateTime<Utc>,
) -> Result<SignedUp> {
    let txn = accounts.db.begin().await?;
    let user = accounts::insert_user(&txn, email, NO_PASSWORD.to_owned(), now).await?;
    user_identity::ActiveModel {
        provider: Set(provider.to_owned()),
        subject: Set(subject.to_owned()),
        user_id: Set(user.id),
        created_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(|e| on_unique_violation(e, Error::EmailTaken))?;
    let signed_up = accounts::open_account(&txn, accounts, user, now).await?;
    txn.commit().await?;
    Ok(signed_up)
}

async fn signed_in_again(
    accounts: &Accounts,
    user: user::Model,
    now: DateTime<Utc>,
) -> Result<SignedUp> {
    sessions::purge_expired(&accounts.db, user.id, now).await?;
    let token = sessions::start(&accounts.db, user.id, now, accounts.policy.session_ttl).await?;
    Ok(SignedUp {
        signed_in: SignedIn { token, user },
        billing_account: None,
        default_key: None,
    })
}

async fn known_user(db: &Db, provider: &str, subject: &str) -> Result<Option<user::Model>> {
    let identity = user_identity::Entity::find()
        .filter(user_identity::Column::Provider.eq(provider))
        .filter(user_identity::Column::Subject.eq(subject))
        .one(db)
        .await?;
    let Some(identity) = identity else {
        return Ok(None);
    };
    Ok(user::Entity::find_by_id(identity.user_id).one(db).await?)
}

/// Deletes flows too old to complete; run by the background sweep.
pub async fn forget_expired_flows(db: &Db, now: DateTime<Utc>) -> Result<()> {
    sign_in_flow::Entity::delete_many()
        .filter(sign_in_flow::Column::CreatedAt.lt(now - FLOW_LIFETIME))
        .exec(db)
        .await?;
    Ok(())
}
