//! Signing in with an OpenID Connect provider: the flow kept in the
//! database between `startSignIn` and `completeSignIn`, and the user a
//! provider account signs in as (made, and provisioned, on its first sign-in).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set, Statement,
    TransactionTrait,
};

use super::accounts::{self, Accounts, SignedIn, SignedUp, NO_PASSWORD};
use super::{limits, on_unique_violation, sessions};
use crate::domain::{BrowserBinding, Email, SecretHash};
use crate::entity::{sign_in_flow, user, user_identity};
use crate::error::{Error, Result};
use crate::oidc::{Identity, Providers};

/// How long a started sign-in may take to complete; older flows are refused
/// and swept.
pub const FLOW_LIFETIME: chrono::Duration = chrono::Duration::minutes(10);

pub struct Started {
    pub authorization_url: String,
    /// Goes to the browser in the sign-in cookie (`graphql::cookies`), and only there.
    pub browser: BrowserBinding,
}

/// Starts a sign-in with `provider`: the flow is stored so that any process
/// can complete it, bound to a browser by the hash of a fresh cookie value.
#[tracing::instrument(name = "start_sign_in", skip(accounts, providers))]
pub async fn start(accounts: &Accounts, providers: &Providers, provider: &str) -> Result<Started> {
    let provider = providers.get(provider)?;
    let authorization = provider.authorize();
    let browser = BrowserBinding::generate();
    sign_in_flow::ActiveModel {
        state: Set(authorization.state),
        provider: Set(provider.id.clone()),
        nonce: Set(authorization.nonce),
        pkce_verifier: Set(authorization.pkce_verifier),
        browser_hash: Set(browser.hash().to_vec()),
        created_at: Set(accounts.clock.now()),
    }
    .insert(&accounts.db)
    .await?;
    Ok(Started {
        authorization_url: authorization.url,
        browser,
    })
}

/// What the callback brought back, and the cookie of the browser bringing it.
pub struct Callback<'a> {
    pub provider: &'a str,
    pub code: &'a str,
    pub state: &'a str,
    pub browser: Option<&'a str>,
}

/// Completes a sign-in: redeems its flow, has the provider vouch for the
/// code, and signs the provider account in, making its user on the first
/// sign-in (`default_key` set then, and only then).
#[tracing::instrument(name = "complete_sign_in", skip_all, fields(provider = callback.provider))]
pub async fn complete(
    accounts: &Accounts,
    providers: &Providers,
    client: IpAddr,
    callback: Callback<'_>,
) -> Result<SignedUp> {
    let provider = providers.get(callback.provider)?;
    let now = accounts.clock.now();
    let flow = redeem(&accounts.db, callback.state).await?;
    let browser_hash = callback.browser.map(|value| SecretHash::of(value).to_vec());
    let valid = flow.as_ref().is_some_and(|flow| {
        flow.provider == provider.id
            && flow.created_at > now - FLOW_LIFETIME
            && browser_hash.as_ref() == Some(&flow.browser_hash)
    });
    let Some(flow) = flow.filter(|_| valid) else {
        return Err(Error::InvalidCredentials);
    };
    let identity = providers
        .redeem(provider, callback.code, &flow.pkce_verifier, &flow.nonce)
        .await?;
    sign_in_as(accounts, client, &provider.id, identity, now).await
}

/// Takes the flow out of the database, so it is redeemed at most once: of
/// two racing completions only one gets the row back. It is gone even when
/// the checks that follow refuse it, as a used state should be.
async fn redeem(db: &DatabaseConnection, state: &str) -> Result<Option<sign_in_flow::Model>> {
    const REDEEM: &str = "DELETE FROM sign_in_flows WHERE state = $1 \
         RETURNING state, provider, nonce, pkce_verifier, browser_hash, created_at";
    let statement =
        Statement::from_sql_and_values(db.get_database_backend(), REDEEM, [state.into()]);
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

async fn known_user(
    db: &DatabaseConnection,
    provider: &str,
    subject: &str,
) -> Result<Option<user::Model>> {
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
pub async fn forget_expired_flows(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<()> {
    sign_in_flow::Entity::delete_many()
        .filter(sign_in_flow::Column::CreatedAt.lt(now - FLOW_LIFETIME))
        .exec(db)
        .await?;
    Ok(())
}
