//! Signing up and signing in, with the own account (billing account and
//! default key) every user gets at signup.

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, Set,
    TransactionTrait,
};
use uuid::Uuid;

use super::billing;
use super::keys::{self, CreatedKey};
use super::limits;
use super::passwords::PasswordHasher;
use super::{on_unique_violation, sessions};
use crate::clock::Clock;
use crate::domain::{AccountPolicy, Email, Password};
use crate::entity::{billing_account, user};
use crate::error::{Error, Result};
use crate::store::db::Db;

/// What signing up, signing in and provisioning need: the parts of the
/// application they use, not the application.
#[derive(Clone)]
pub struct Accounts {
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub hasher: PasswordHasher,
    pub policy: AccountPolicy,
}

pub struct SignedIn {
    pub token: String,
    pub user: user::Model,
}

pub struct SignedUp {
    pub signed_in: SignedIn,
    /// None when provisioning failed; signup succeeded all the same.
    pub billing_account: Option<billing_account::Model>,
    pub default_key: Option<CreatedKey>,
}

/// What a user without a password stores as its hash: nothing Argon2 can
/// match, so `login` treats it as no user at all (same error, same time).
/// An empty string rather than NULL: SQLite cannot drop the NOT NULL of
/// `users.password_hash` without rebuilding every table that references users.
pub(crate) const NO_PASSWORD: &str = "";

/// Inserts the user in `txn`. The unique index on email decides races: of
/// 20 concurrent signups for one address, exactly one insert succeeds.
pub(crate) async fn insert_user(
    txn: &DatabaseTransaction,
    email: &Email,
    password_hash: String,
    now: DateTime<Utc>,
) -> Result<user::Model> {
    user::ActiveModel {
        id: Set(Uuid::new_v4()),
        email: Set(email.as_str().to_owned()),
        password_hash: Set(password_hash),
        created_at: Set(now),
        // Set with the default key, in provisioning's savepoint.
        default_key_at: Set(None),
    }
    .insert(txn)
    .await
    .map_err(|e| on_unique_violation(e, Error::EmailTaken))
}

/// Signs a user just inserted in `txn` in, and provisions their billing
/// account and default DEV key in a savepoint: if provisioning fails only it
/// is rolled back, the failure is logged, and the user still signs up.
/// The caller commits.
pub(crate) async fn open_account(
    txn: &DatabaseTransaction,
    accounts: &Accounts,
    user: user::Model,
    now: DateTime<Utc>,
) -> Result<SignedUp> {
    let token = sessions::start(txn, user.id, now, accounts.policy.session_ttl).await?;
    let provisioned = match provision_in_savepoint(txn, &accounts.policy, &user, now).await {
        Ok(provisioned) => Some(provisioned),
        Err(err) => {
            tracing::error!(
                user_id = %user.id,
                error = format!("{err:#}"),
                "provisioning at signup failed; the billing account will be created on first read"
            );
            None
        }
    };
    let (billing_account, default_key) = provisioned.unzip();
    Ok(SignedUp {
        signed_in: SignedIn { token, user },
        billing_account,
        default_key,
    })
}

async fn provision_in_savepoint(
    txn: &DatabaseTransaction,
    policy: &AccountPolicy,
    user: &user::Model,
    now: DateTime<Utc>,
) -> anyhow::Result<(billing_account::Model, CreatedKey)> {
    let savepoint = txn.begin().await?;
    let provisioned = async {
        let account = billing::own_account(&savepoint, policy, user, now).await?;
        let key = keys::create_default(&savepoint, policy, &account, user.id, now)
            .await?
            .ok_or_else(|| anyhow::anyhow!("a new user {} already had a default key", user.id))?;
        Ok::<_, Error>((account, key))
    }
    .await;
    match provisioned {
        Ok(done) => {
            savepoint.commit().await?;
            Ok(done)
        }
        Err(err) => {
            savepoint.rollback().await?;
            Err(anyhow::Error::new(err))
        }
    }
}

impl Accounts {
    /// Creates the user and a session, and provisions a billing account and a
    /// default DEV key, all in one transaction (see `open_account`); a failed
    /// provisioning is redone lazily (`billing::own_account`) on the next read.
    #[tracing::instrument(name = "signup", skip_all)]
    pub async fn signup(&self, client: IpAddr, email: &str, password: &str) -> Result<SignedUp> {
        let email = Email::parse(email)?;
        let password = Password::parse(password)?;
        let now = self.clock.now();
        // Counted before hashing, in the statement that admits it, so that a
        // flood is refused before it costs anything, however many race.
        let client = client.to_string();
        limits::reserve_signup(&self.db, self.policy.signup_limit, &client, now).await?;
        let password_hash = self.hasher.hash(&password).await?;

        let txn = self.db.begin().await?;
        let user = insert_user(&txn, &email, password_hash, now).await?;
        let signed_up = open_account(&txn, self, user, now).await?;
        txn.commit().await?;
        Ok(signed_up)
    }

    /// ensureDefaultKey: the signed-in user's default key, made now with its
    /// secret if they have never had one (signup's provisioning failed, or they
    /// arrived another way); None otherwise, also when it was revoked since.
    /// Provisions the billing account too if it is missing.
    #[tracing::instrument(name = "ensure_default_key", skip_all, fields(user_id = %user.id))]
    pub async fn ensure_default_key(&self, user: &user::Model) -> Result<Option<CreatedKey>> {
        let now = self.clock.now();
        let account = billing::own_account(&self.db, &self.policy, user, now).await?;
        // Read with the session, so most calls write nothing; a user read as
        // never having had one is still decided by `create_default`'s claim.
        if user.default_key_at.is_some() {
            return Ok(None);
        }
        keys::create_default(&self.db, &self.policy, &account, user.id, now).await
    }

    /// Signs in with email and password. A wrong email and a wrong password are
    /// indistinguishable: same error, same message, one Argon2 verification each.
    #[tracing::instrument(name = "login", skip_all)]
    pub async fn login(&self, client: IpAddr, email: &str, password: &str) -> Result<SignedIn> {
        // Format rules are public, so checking them first reveals nothing about
        // which accounts exist, and keeps huge passwords away from Argon2.
        let email = Email::parse(email)?;
        let password = Password::parse(password)?;
        let now = self.clock.now();
        // Counted as a failure before the password is checked, by the statement
        // that decides whether it may be checked at all: however many guesses
        // race, no more than a limit allows are ever verified. Past a limit even
        // the right password is refused, so guessing stops paying off until the
        // window moves on.
        let client = client.to_string();
        let reservation = limits::reserve_login(
            &self.db,
            &self.policy.login_limits,
            email.as_str(),
            &client,
            now,
        )
        .await?;
        let user = user::Entity::find()
            .filter(user::Column::Email.eq(email.as_str()))
            .one(&self.db)
            .await?;
        let stored_hash = user
            .as_ref()
            .map(|u| u.password_hash.clone())
            .filter(|hash| hash != NO_PASSWORD);
        // Verified even when no user has this email, so both failures take as long.
        let verified = self.hasher.verify(&password, stored_hash).await?;
        let user = match user {
            Some(user) if verified => user,
            // The reservation stays, as the failure it was counted as.
            _ => return Err(Error::InvalidCredentials),
        };
        limits::forgive_login(&self.db, email.as_str(), &client, reservation).await?;
        sessions::purge_expired(&self.db, user.id, now).await?;
        let token = sessions::start(&self.db, user.id, now, self.policy.session_ttl).await?;
        Ok(SignedIn { token, user })
    }

    /// How long a session made now lasts (the cookie's max-age).
    pub fn session_ttl(&self) -> chrono::Duration {
        self.policy.session_ttl
    }
}
