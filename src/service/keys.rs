//! API keys: creation (the secret is returned once and stored only as a
//! hash; at most `max_active_keys` active per user), the default key,
//! listing, renaming, rotation and revocation, always scoped to their owner.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbBackend,
    DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set, Statement,
    TransactionSession, TransactionTrait,
};
use uuid::Uuid;

use super::{billing, on_unique_violation};
use crate::clock::Clock;
use crate::domain::secret::KeySecret;
use crate::domain::{
    AccountPolicy, GracePeriod, KeyExpiry, KeyName, KeyType, ROTATION_GRACE_ALLOWANCE,
};
use crate::entity::{api_key, user};
use crate::error::{Error, Result};

/// A key just made, with the only copy of its secret.
pub struct CreatedKey {
    pub key: api_key::Model,
    pub secret: String,
}

/// What rotateKey made: the new key, and the old one as it now stands.
pub struct RotatedKey {
    pub created: CreatedKey,
    pub previous: api_key::Model,
}

pub const DEFAULT_KEY_NAME: &str = "Default key";

/// What a key is made with.
pub struct NewKey {
    name: String,
    key_type: KeyType,
    expires_at: Option<DateTime<Utc>>,
    rotated_from_id: Option<Uuid>,
}

impl NewKey {
    /// A key made by createKey or signup.
    pub fn new(name: KeyName, key_type: KeyType, expiry: Option<KeyExpiry>) -> Self {
        Self {
            name: name.into_inner(),
            key_type,
            expires_at: expiry.map(KeyExpiry::at),
            rotated_from_id: None,
        }
    }

    /// The replacement of `old`: its name, kind and expiry, so that a
    /// rotation never turns an expiring key into a permanent one.
    fn replacing(old: &api_key::Model) -> Self {
        Self {
            name: old.name.clone(),
            key_type: old.key_type,
            expires_at: old.expires_at,
            rotated_from_id: Some(old.id),
        }
    }
}

/// Makes a key for `user_id`, unless the user already holds
/// `policy.max_active_keys` active keys (then BAD_USER_INPUT). Runs in its
/// own transaction (a savepoint inside signup's), in which the user's key
/// creations are serialized, so racing calls at the cap make exactly one key.
pub(super) async fn create_capped<C: ConnectionTrait + TransactionTrait>(
    conn: &C,
    policy: &AccountPolicy,
    user_id: Uuid,
    new: NewKey,
    now: DateTime<Utc>,
) -> Result<CreatedKey> {
    let txn = conn.begin().await?;
    let max = policy.max_active_keys;
    if max > 0 {
        serialize_key_creation(&txn, user_id).await?;
        // Expired keys verify no more, so they leave room as revoked ones do.
        let active = api_key::Entity::find()
            .filter(api_key::Column::UserId.eq(user_id))
            .filter(usable_at(now))
            .count(&txn)
            .await?;
        if active >= u64::from(max) {
            return Err(Error::bad_input(format!(
                "keys: at most {max} active keys per account; revoke one to create another"
            )));
        }
    }
    let created = insert(&txn, user_id, new, now).await?;
    txn.commit().await?;
    Ok(created)
}

/// API keys as the API manages them, scoped to their owner; owns what it
/// needs (the pool, the clock, the policy), so a resolver calls it with the
/// request's data only.
#[derive(Clone)]
pub struct Keys {
    pub db: DatabaseConnection,
    pub clock: Arc<dyn Clock>,
    pub policy: AccountPolicy,
}

impl Keys {
    /// Makes a key for `user_id` (see `create_capped` for the cap); an
    /// expiry is checked against now.
    #[tracing::instrument(name = "create_key", skip_all, fields(%user_id))]
    pub async fn create(
        &self,
        user_id: Uuid,
        name: KeyName,
        key_type: KeyType,
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<CreatedKey> {
        let now = self.clock.now();
        let expiry = expires_at.map(|at| KeyExpiry::parse(at, now)).transpose()?;
        let new = NewKey::new(name, key_type, expiry);
        create_capped(&self.db, &self.policy, user_id, new, now).await
    }

    /// The user's keys, newest first; expired ones included (they show as
    /// EXPIRED), revoked ones only when asked for. Reading them provisions
    /// the user's billing account if signup could not.
    pub async fn list(&self, user_id: Uuid, include_revoked: bool) -> Result<Vec<api_key::Model>> {
        billing::billing_account(&self.db, &self.policy, user_id, self.clock.now()).await?;
        let mut query = api_key::Entity::find().filter(api_key::Column::UserId.eq(user_id));
        if !include_revoked {
            query = query.filter(api_key::Column::RevokedAt.is_null());
        }
        Ok(query
            .order_by_desc(api_key::Column::CreatedAt)
            .order_by_desc(api_key::Column::Id)
            .all(&self.db)
            .await?)
    }

    /// Revokes one of the user's keys. Revoking again changes nothing and
    /// returns the key as it is; another user's key is NOT_FOUND, like a missing one.
    #[tracing::instrument(name = "revoke_key", skip(self))]
    pub async fn revoke(&self, user_id: Uuid, key_id: Uuid) -> Result<api_key::Model> {
        let now = self.clock.now();
        // Only a key not yet revoked is touched, so racing revokes agree on the
        // first one's timestamp.
        api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Expr::value(now))
            .filter(owned_by(user_id, key_id))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(&self.db)
            .await?;
        find_owned(&self.db, user_id, key_id).await
    }

    /// Renames one of the user's keys, whatever its status: a name is only a label.
    #[tracing::instrument(name = "rename_key", skip(self, name))]
    pub async fn rename(
        &self,
        user_id: Uuid,
        key_id: Uuid,
        name: KeyName,
    ) -> Result<api_key::Model> {
        api_key::Entity::update_many()
            .col_expr(api_key::Column::Name, Expr::value(name.into_inner()))
            .filter(owned_by(user_id, key_id))
            .exec(&self.db)
            .await?;
        find_owned(&self.db, user_id, key_id).await
    }

    /// Replaces one of the user's active keys by a new one with a new secret
    /// (see `NewKey::replacing`); the old key expires at the end of `grace`, or
    /// sooner if it already did, and with no grace is revoked now.
    ///
    /// Held to the cap only as far as keys that still verify go: a rotation
    /// replaces a key, so one at the cap is allowed, but a grace period keeps
    /// the old key verifying, so with one the user's usable keys may reach the
    /// cap plus `ROTATION_GRACE_ALLOWANCE` and no more (counted as createKey
    /// counts, taking turns with the user's other creations and rotations).
    ///
    /// Which of racing rotations of one key wins is decided by the unique index
    /// on `rotated_from_id`: the first insert commits, every other fails on it
    /// (on PostgreSQL after waiting for the first to commit) and is rolled back
    /// whole, its change to the old key included.
    #[tracing::instrument(name = "rotate_key", skip(self))]
    pub async fn rotate(
        &self,
        user_id: Uuid,
        key_id: Uuid,
        grace: GracePeriod,
    ) -> Result<RotatedKey> {
        let now = self.clock.now();
        let old = find_owned(&self.db, user_id, key_id).await?;
        if old.revoked_at.is_some() {
            return Err(not_rotatable("is revoked"));
        }
        if old.expires_at.is_some_and(|at| at <= now) {
            return Err(not_rotatable("has expired"));
        }
        let txn = self.db.begin().await?;
        if !grace.revokes_at_once() {
            check_room_for_grace(&txn, &self.policy, user_id, now).await?;
        }
        let previous = retire(&txn, old.clone(), grace, now).await?;
        let created = insert(&txn, user_id, NewKey::replacing(&old), now)
            .await
            .map_err(|err| on_unique_violation(err, not_rotatable("was already rotated")))?;
        txn.commit().await?;
        Ok(RotatedKey { created, previous })
    }

    /// How many of the user's keys were usable at some instant of [from, to),
    /// so could have been charged in it: made before its end, neither revoked
    /// nor expired before its start. One indexed count: what a usage series
    /// over that range can list at most.
    pub async fn usable_within(
        &self,
        user_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<u64> {
        let count = api_key::Entity::find()
            .filter(api_key::Column::UserId.eq(user_id))
            .filter(api_key::Column::CreatedAt.lt(to))
            .filter(
                Condition::any()
                    .add(api_key::Column::RevokedAt.is_null())
                    .add(api_key::Column::RevokedAt.gt(from)),
            )
            .filter(
                Condition::any()
                    .add(api_key::Column::ExpiresAt.is_null())
                    .add(api_key::Column::ExpiresAt.gt(from)),
            )
            .count(&self.db)
            .await?;
        Ok(count)
    }
}

/// Neither revoked nor expired at `now`.
fn usable_at(now: DateTime<Utc>) -> Condition {
    Condition::all()
        .add(api_key::Column::RevokedAt.is_null())
        .add(
            Condition::any()
                .add(api_key::Column::ExpiresAt.is_null())
                .add(api_key::Column::ExpiresAt.gt(now)),
        )
}

async fn insert(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    new: NewKey,
    now: DateTime<Utc>,
) -> Result<CreatedKey, DbErr> {
    let secret = KeySecret::generate(new.key_type);
    let key = api_key::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        name: Set(new.name),
        key_type: Set(new.key_type),
        prefix: Set(secret.prefix().to_owned()),
        secret_hash: Set(secret.hash().to_vec()),
        created_at: Set(now),
        last_used_at: Set(None),
        revoked_at: Set(None),
        expires_at: Set(new.expires_at),
        rotated_from_id: Set(new.rotated_from_id),
    }
    .insert(conn)
    .await?;
    Ok(CreatedKey {
        key,
        secret: secret.into_secret(),
    })
}

/// Makes the user's key creations take turns until `txn` ends, so the count
/// of active keys read next stays true until the insert commits.
/// PostgreSQL: the user's row is locked FOR NO KEY UPDATE, which other
/// createKey calls wait for but inserts referencing the user (sessions,
/// keys) do not. SQLite: a transaction whose first statement writes takes
/// the database's one write lock at once (waiting out the busy timeout),
/// instead of reading first and failing to upgrade with "database is locked".
async fn serialize_key_creation(txn: &impl ConnectionTrait, user_id: Uuid) -> Result<()> {
    let backend = txn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => "SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE",
        _ => "UPDATE users SET created_at = created_at WHERE id = $1",
    };
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [user_id.into()],
    ))
    .await?;
    Ok(())
}

/// Makes the user's default key (DEV, "Default key") unless they have ever
/// had one; None then. The claim on `users.default_key_at` is a conditional
/// UPDATE in the key's own transaction: of racing calls, in one process or
/// several, one sets it and makes the key, the others change nothing (on
/// PostgreSQL they wait for its commit and then find it set). If making the
/// key fails, the claim is rolled back with it.
pub async fn create_default<C: ConnectionTrait + TransactionTrait>(
    conn: &C,
    policy: &AccountPolicy,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<CreatedKey>> {
    // Its first statement writes: on SQLite it takes the write lock at once.
    let txn = conn.begin().await?;
    let claimed = user::Entity::update_many()
        .col_expr(user::Column::DefaultKeyAt, Expr::value(now))
        .filter(user::Column::Id.eq(user_id))
        .filter(user::Column::DefaultKeyAt.is_null())
        .exec(&txn)
        .await?;
    if claimed.rows_affected == 0 {
        return Ok(None);
    }
    let name = KeyName::parse(DEFAULT_KEY_NAME)?;
    let new = NewKey::new(name, KeyType::Dev, None);
    let created = create_capped(&txn, policy, user_id, new, now).await?;
    txn.commit().await?;
    Ok(Some(created))
}

fn owned_by(user_id: Uuid, key_id: Uuid) -> Condition {
    Condition::all()
        .add(api_key::Column::Id.eq(key_id))
        .add(api_key::Column::UserId.eq(user_id))
}

/// One of the user's keys; another user's key is NOT_FOUND, like a missing one.
async fn find_owned(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    key_id: Uuid,
) -> Result<api_key::Model> {
    api_key::Entity::find()
        .filter(owned_by(user_id, key_id))
        .one(conn)
        .await?
        .ok_or(Error::NotFound)
}

/// A rotation with a grace period adds a key that verifies: refused once
/// the user's usable keys reach the cap plus the allowance.
async fn check_room_for_grace(
    txn: &impl ConnectionTrait,
    policy: &AccountPolicy,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<()> {
    let max = policy.max_active_keys;
    if max == 0 {
        return Ok(());
    }
    serialize_key_creation(txn, user_id).await?;
    let usable = api_key::Entity::find()
        .filter(api_key::Column::UserId.eq(user_id))
        .filter(usable_at(now))
        .count(txn)
        .await?;
    if usable >= u64::from(max) + u64::from(ROTATION_GRACE_ALLOWANCE) {
        return Err(Error::bad_input(format!(
            "gracePeriodSeconds: at most {max} active keys per account, and \
             {ROTATION_GRACE_ALLOWANCE} more while rotated keys are in their grace period; \
             rotate with gracePeriodSeconds 0, or revoke a key"
        )));
    }
    Ok(())
}

fn not_rotatable(why: &str) -> Error {
    Error::bad_input(format!(
        "id: the key {why}; only an active key that has not been rotated can be rotated"
    ))
}

/// Sets the old key's expiry (and, with no grace, its revocation) if it is
/// still active: a revoke or expiry that came since it was read wins.
/// Returns the key as it now stands.
async fn retire(
    txn: &impl ConnectionTrait,
    mut old: api_key::Model,
    grace: GracePeriod,
    now: DateTime<Utc>,
) -> Result<api_key::Model> {
    let expires_at = grace.expiry_of_replaced(old.expires_at, now);
    let revoked_at = grace.revokes_at_once().then_some(now);
    let mut update = api_key::Entity::update_many()
        .col_expr(api_key::Column::ExpiresAt, Expr::value(expires_at));
    if let Some(revoked_at) = revoked_at {
        update = update.col_expr(api_key::Column::RevokedAt, Expr::value(revoked_at));
    }
    let done = update
        .filter(api_key::Column::Id.eq(old.id))
        .filter(usable_at(now))
        .exec(txn)
        .await?;
    if done.rows_affected == 0 {
        return Err(not_rotatable("is no longer active"));
    }
    old.expires_at = Some(expires_at);
    old.revoked_at = revoked_at;
    Ok(old)
}
