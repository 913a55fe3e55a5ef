//! API keys: creation (the secret is returned once and stored only as a
//! hash; at most `max_active_keys` active per account), the default key,
//! renaming, rate limits (set and removed; verifyKey enforces
//! them), rotation and revocation. Keys belong to an account; every member
//! of it reaches them, nobody else does (another account's key is
//! NOT_FOUND, like a missing one), and every change is written to the
//! account's audit log in its own transaction. Listing is keysUsage's read
//! (`metering::AccountKeys`), which a dashboard asks for beside it.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, Set, Statement, TransactionSession, TransactionTrait,
};
use uuid::Uuid;

use super::{audit, on_unique_violation};
use crate::clock::Clock;
use crate::domain::audit::{Action, Actor, Change, TargetType};
use crate::domain::secret::KeySecret;
use crate::domain::{
    AccountPolicy, GracePeriod, KeyExpiry, KeyName, KeyType, Membership, RateLimit,
    ROTATION_GRACE_ALLOWANCE,
};
use crate::entity::{account_member, api_key, billing_account, user};
use crate::error::{Error, Result};
use crate::shared_reads::SharedReads;
use crate::store::db::Db;
use crate::store::rate_windows;

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
    rate_limit: Option<RateLimit>,
}

impl NewKey {
    /// A key made by createKey or signup.
    pub fn new(name: KeyName, key_type: KeyType, expiry: Option<KeyExpiry>) -> Self {
        Self {
            name: name.into_inner(),
            key_type,
            expires_at: expiry.map(KeyExpiry::at),
            rotated_from_id: None,
            rate_limit: None,
        }
    }

    /// With at most `limit` calls answered VALID per window.
    pub fn rate_limited(mut self, limit: Option<RateLimit>) -> Self {
        self.rate_limit = limit;
        self
    }

    /// The replacement of `old`: its name, kind, expiry and rate limit, so
    /// that a rotation never turns an expiring key into a permanent one or
    /// a limited key into an unlimited one (the new key's window count is
    /// its own).
    fn replacing(old: &api_key::Model) -> Self {
        Self {
            name: old.name.clone(),
            key_type: old.key_type,
            expires_at: old.expires_at,
            rotated_from_id: Some(old.id),
            rate_limit: old.rate_limit(),
        }
    }
}

/// Who makes a key, where: the account it belongs to and the member who
/// makes it; `audit` says who the log names (None: provisioning, which the
/// log does not record).
pub(super) struct Maker<'a> {
    pub account_id: Uuid,
    pub user_id: Uuid,
    pub audit: Option<&'a Actor>,
}

/// Makes a key in the maker's account, unless the account already holds
/// `policy.max_active_keys` active keys (then BAD_USER_INPUT). Runs in its
/// own transaction (a savepoint inside signup's), in which the account's key
/// creations are serialized, so racing calls at the cap make exactly one key.
pub(super) async fn create_capped<C: ConnectionTrait + TransactionTrait>(
    conn: &C,
    policy: &AccountPolicy,
    maker: Maker<'_>,
    new: NewKey,
    now: DateTime<Utc>,
) -> Result<CreatedKey> {
    let txn = conn.begin().await?;
    let max = policy.max_active_keys;
    if max > 0 {
        serialize_key_creation(&txn, maker.account_id).await?;
        // Expired keys verify no more, so they leave room as revoked ones do.
        let active = api_key::Entity::find()
            .filter(api_key::Column::AccountId.eq(maker.account_id))
            .filter(usable_at(now))
            .count(&txn)
            .await?;
        if active >= u64::from(max) {
            return Err(Error::bad_input(format!(
                "keys: at most {max} active keys per account; revoke one to create another"
            )));
        }
    }
    let created = insert(&txn, maker.account_id, maker.user_id, new, now).await?;
    if let Some(actor) = maker.audit {
        let change = Change::new(Action::KeyCreated, TargetType::Key, created.key.id)
            .named(created.key.name.clone());
        audit::record(&txn, maker.account_id, actor, change, now).await?;
    }
    txn.commit().await?;
    Ok(created)
}

/// API keys as the API manages them, scoped to their account; owns what it
/// needs (the pool, the clock, the policy), so a resolver calls it with the
/// request's data only.
#[derive(Clone)]
pub struct Keys {
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub policy: AccountPolicy,
    /// The answer budget's count of usable keys, by user and window (a
    /// window is whole buckets, so the same for a page's requests), read
    /// once for the requests asking together.
    pub usable_reads: SharedReads<(Uuid, DateTime<Utc>, DateTime<Utc>), u64>,
}

impl Keys {
    /// Makes a key in the member's account (see `create_capped` for the
    /// cap); an expiry is checked against now. A key made with a rate
    /// limit is logged as key.created only: the limit is part of the key.
    #[tracing::instrument(name = "create_key", skip_all, fields(account_id = %member.account_id))]
    pub async fn create(
        &self,
        member: &Membership,
        actor: &Actor,
        name: KeyName,
        key_type: KeyType,
        expires_at: Option<DateTime<Utc>>,
        rate_limit: Option<RateLimit>,
    ) -> Result<CreatedKey> {
        let now = self.clock.now();
        let expiry = expires_at.map(|at| KeyExpiry::parse(at, now)).transpose()?;
        let new = NewKey::new(name, key_type, expiry).rate_limited(rate_limit);
        let maker = Maker {
            account_id: member.account_id,
            user_id: member.user_id,
            audit: Some(actor),
        };
        create_capped(&self.db, &self.policy, maker, new, now).await
    }

    /// Revokes a key of an account `user_id` is a member of. Revoking again
    /// changes nothing (and logs nothing) and returns the key as it is.
    #[tracing::instrument(name = "revoke_key", skip(self, actor))]
    pub async fn revoke(&self, actor: &Actor, key_id: Uuid) -> Result<api_key::Model> {
        let key = find_reachable(&self.db, actor, key_id).await?;
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        // Only a key not yet revoked is touched, so racing revokes agree on the
        // first one's timestamp, and only the first is logged.
        let revoked = api_key::Entity::update_many()
            .col_expr(api_key::Column::RevokedAt, Expr::value(now))
            .filter(api_key::Column::Id.eq(key.id))
            .filter(api_key::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        if revoked.rows_affected == 1 {
            let change = Change::new(Action::KeyRevoked, TargetType::Key, key.id).named(key.name);
            audit::record(&txn, key.account_id, actor, change, now).await?;
        }
        txn.commit().await?;
        find_reachable(&self.db, actor, key_id).await
    }

    /// Renames a key, whatever its status: a name is only a label. The log
    /// records the new name.
    #[tracing::instrument(name = "rename_key", skip(self, actor, name))]
    pub async fn rename(
        &self,
        actor: &Actor,
        key_id: Uuid,
        name: KeyName,
    ) -> Result<api_key::Model> {
        let key = find_reachable(&self.db, actor, key_id).await?;
        let name = name.into_inner();
        let txn = self.db.begin().await?;
        api_key::Entity::update_many()
            .col_expr(api_key::Column::Name, Expr::value(name.clone()))
            .filter(api_key::Column::Id.eq(key.id))
            .exec(&txn)
            .await?;
        let change = Change::new(Action::KeyRenamed, TargetType::Key, key.id).named(name);
        audit::record(&txn, key.account_id, actor, change, self.clock.now()).await?;
        txn.commit().await?;
        find_reachable(&self.db, actor, key_id).await
    }

    /// Sets a key's rate limit, or with None removes it, whatever the key's
    /// status, as a rename does: revoked or expired, the key keeps what it
    /// was given, though it verifies no more. Only a change is logged:
    /// setting the limit a key already has changes nothing and writes no
    /// event, as revoking twice does.
    #[tracing::instrument(name = "set_key_rate_limit", skip(self, actor))]
    pub async fn set_rate_limit(
        &self,
        actor: &Actor,
        key_id: Uuid,
        limit: Option<RateLimit>,
    ) -> Result<api_key::Model> {
        let key = find_reachable(&self.db, actor, key_id).await?;
        let txn = self.db.begin().await?;
        // Only a row whose limit differs is touched, so that of racing
        // identical calls exactly one is logged (on PostgreSQL the others
        // wait for its commit, then find nothing left to change).
        let changed = api_key::Entity::update_many()
            .col_expr(
                api_key::Column::RateLimit,
                Expr::value(limit.map(|limit| limit.limit)),
            )
            .col_expr(
                api_key::Column::RateWindowSecs,
                Expr::value(limit.map(|limit| limit.window_secs)),
            )
            .filter(api_key::Column::Id.eq(key.id))
            .filter(limit_differs_from(limit))
            .exec(&txn)
            .await?;
        if changed.rows_affected == 1 {
            let now = self.clock.now();
            restart_window(&txn, &key, limit, now).await?;
            let change =
                Change::new(Action::KeyRateLimitChanged, TargetType::Key, key.id).named(key.name);
            audit::record(&txn, key.account_id, actor, change, now).await?;
        }
        txn.commit().await?;
        find_reachable(&self.db, actor, key_id).await
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
    #[tracing::instrument(name = "rotate_key", skip(self, actor))]
    pub async fn rotate(
        &self,
        actor: &Actor,
        key_id: Uuid,
        grace: GracePeriod,
    ) -> Result<RotatedKey> {
        let now = self.clock.now();
        let old = find_reachable(&self.db, actor, key_id).await?;
        let user_id = actor.user_id().ok_or(Error::NotFound)?;
        if old.revoked_at.is_some() {
            return Err(not_rotatable("is revoked"));
        }
        if old.expires_at.is_some_and(|at| at <= now) {
            return Err(not_rotatable("has expired"));
        }
        let txn = self.db.begin().await?;
        if !grace.revokes_at_once() {
            check_room_for_grace(&txn, &self.policy, old.account_id, now).await?;
        }
        let previous = retire(&txn, old.clone(), grace, now).await?;
        let created = insert(&txn, old.account_id, user_id, NewKey::replacing(&old), now)
            .await
            .map_err(|err| on_unique_violation(err, not_rotatable("was already rotated")))?;
        // One event, on the old key: the new one is its continuation.
        let change = Change::new(Action::KeyRotated, TargetType::Key, old.id).named(old.name);
        audit::record(&txn, old.account_id, actor, change, now).await?;
        txn.commit().await?;
        Ok(RotatedKey { created, previous })
    }

    /// The most keys any one account of `user_id` had usable at some
    /// instant of [from, to) (made before its end, neither revoked nor
    /// expired before its start): what a usage series over that range can
    /// list at most, whichever of the user's accounts it reads. One query
    /// over the accounts' key index.
    pub async fn most_usable_within(
        &self,
        user_id: Uuid,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<u64> {
        let db = self.db.clone();
        let read = move || {
            let db = db.clone();
            async move { most_usable_within(&db, user_id, from, to).await }
        };
        self.usable_reads.read((user_id, from, to), read).await
    }
}

async fn most_usable_within(
    db: &Db,
    user_id: Uuid,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<u64> {
    const MOST: &str = "SELECT COALESCE(MAX(n), 0) AS most FROM (
          SELECT COUNT(*) AS n FROM api_keys k
           WHERE k.account_id IN (SELECT m.account_id FROM account_members m WHERE m.user_id = $1)
             AND k.created_at < $3
             AND (k.revoked_at IS NULL OR k.revoked_at > $2)
             AND (k.expires_at IS NULL OR k.expires_at > $2)
           GROUP BY k.account_id) per_account";
    let backend = db.get_database_backend();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            MOST,
            [user_id.into(), from.into(), to.into()],
        ))
        .await?;
    let most: i64 = match row {
        Some(row) => row.try_get("", "most")?,
        None => 0,
    };
    Ok(u64::try_from(most).unwrap_or(0))
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

/// The window a changed limit counts from (contract: calls answered VALID
/// before a limit was set or changed count in the window they fell in). A
/// limit kept on the same window keeps its count; a limit set on a key
/// without one, or moved to a window of another length, counts the calls
/// charged in its current window; a removed limit forgets its window.
async fn restart_window(
    conn: &impl ConnectionTrait,
    key: &api_key::Model,
    limit: Option<RateLimit>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let Some(limit) = limit else {
        return rate_windows::forget(conn, key.id).await;
    };
    let window = limit.window_at(now);
    let counted = rate_windows::window_of(conn, key.id).await?;
    let same_window =
        key.rate_limit().is_some() && counted.is_some_and(|c| c.start == window.start);
    if !same_window {
        rate_windows::count_from_events(conn, key.id, &window, limit.limit).await?;
    }
    Ok(())
}

/// A stored limit other than `limit`. SQL's `<>` is never true of NULL,
/// so a column that is NULL is asked for as such.
fn limit_differs_from(limit: Option<RateLimit>) -> Condition {
    use api_key::Column::{RateLimit as Limit, RateWindowSecs as Window};
    match limit {
        Some(limit) => Condition::any()
            .add(Limit.is_null())
            .add(Window.is_null())
            .add(Limit.ne(limit.limit))
            .add(Window.ne(limit.window_secs)),
        None => Condition::any()
            .add(Limit.is_not_null())
            .add(Window.is_not_null()),
    }
}

async fn insert(
    conn: &impl ConnectionTrait,
    account_id: Uuid,
    created_by: Uuid,
    new: NewKey,
    now: DateTime<Utc>,
) -> Result<CreatedKey, DbErr> {
    let secret = KeySecret::generate(new.key_type);
    let key = api_key::ActiveModel {
        id: Set(Uuid::new_v4()),
        account_id: Set(account_id),
        created_by: Set(created_by),
        name: Set(new.name),
        key_type: Set(new.key_type),
        prefix: Set(secret.prefix().to_owned()),
        secret_hash: Set(secret.hash().to_vec()),
        created_at: Set(now),
        last_used_at: Set(None),
        revoked_at: Set(None),
        expires_at: Set(new.expires_at),
        rotated_from_id: Set(new.rotated_from_id),
        rate_limit: Set(new.rate_limit.map(|limit| limit.limit)),
        rate_window_secs: Set(new.rate_limit.map(|limit| limit.window_secs)),
    }
    .insert(conn)
    .await?;
    Ok(CreatedKey {
        key,
        secret: secret.into_secret(),
    })
}

/// Makes the account's key creations take turns until `txn` ends, so the
/// count of active keys read next stays true until the insert commits.
/// PostgreSQL: the account's row is locked FOR NO KEY UPDATE, which other
/// createKey calls wait for but charges (whose counters reference the
/// account) do not. SQLite: a transaction whose first statement writes takes
/// the database's one write lock at once (waiting out the busy timeout),
/// instead of reading first and failing to upgrade with "database is locked".
pub(super) async fn serialize_key_creation(
    txn: &impl ConnectionTrait,
    account_id: Uuid,
) -> Result<()> {
    let backend = txn.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => "SELECT 1 FROM billing_accounts WHERE id = $1 FOR NO KEY UPDATE",
        _ => "UPDATE billing_accounts SET plan = plan WHERE id = $1",
    };
    txn.execute_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [account_id.into()],
    ))
    .await?;
    Ok(())
}

/// Makes the user's default key (DEV, "Default key") in their own account
/// unless they have ever had one; None then. The claim on `users.default_key_at` is a conditional
/// UPDATE in the key's own transaction: of racing calls, in one process or
/// several, one sets it and makes the key, the others change nothing (on
/// PostgreSQL they wait for its commit and then find it set). If making the
/// key fails, the claim is rolled back with it.
pub async fn create_default<C: ConnectionTrait + TransactionTrait>(
    conn: &C,
    policy: &AccountPolicy,
    own_account: &billing_account::Model,
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
    let maker = Maker {
        account_id: own_account.id,
        user_id,
        audit: None,
    };
    let created = create_capped(&txn, policy, maker, new, now).await?;
    txn.commit().await?;
    Ok(Some(created))
}

/// A key of an account the actor is a member of, read with the membership
/// check in one query; any other key is NOT_FOUND, like a missing one.
pub async fn find_reachable(
    conn: &impl ConnectionTrait,
    actor: &Actor,
    key_id: Uuid,
) -> Result<api_key::Model> {
    let user_id = actor.user_id().ok_or(Error::NotFound)?;
    let memberships = sea_orm::sea_query::Query::select()
        .column(account_member::Column::AccountId)
        .from(account_member::Entity)
        .and_where(account_member::Column::UserId.eq(user_id))
        .to_owned();
    api_key::Entity::find()
        .filter(api_key::Column::Id.eq(key_id))
        .filter(api_key::Column::AccountId.in_subquery(memberships))
        .one(conn)
        .await?
        .ok_or(Error::NotFound)
}

/// A rotation with a grace period adds a key that verifies: refused once
/// the account's usable keys reach the cap plus the allowance.
async fn check_room_for_grace(
    txn: &impl ConnectionTrait,
    policy: &AccountPolicy,
    account_id: Uuid,
    now: DateTime<Utc>,
) -> Result<()> {
    let max = policy.max_active_keys;
    if max == 0 {
        return Ok(());
    }
    serialize_key_creation(txn, account_id).await?;
    let usable = api_key::Entity::find()
        .filter(api_key::Column::AccountId.eq(account_id))
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
