//! API keys: creation (the secret is returned once and stored only as a
//! hash; at most `max_active_keys` active per user), listing and
//! revocation, always scoped to their owner.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, Set, Statement, TransactionSession, TransactionTrait,
};
use uuid::Uuid;

use crate::domain::secret::KeySecret;
use crate::domain::{KeyName, KeyType};
use crate::entity::api_key;
use crate::error::{Error, Result};
use crate::state::AccountPolicy;

/// A key just made, with the only copy of its secret.
pub struct CreatedKey {
    pub key: api_key::Model,
    pub secret: String,
}

pub const DEFAULT_KEY_NAME: &str = "Default key";

/// Makes a key for `user_id`, unless the user already holds
/// `policy.max_active_keys` active keys (then BAD_USER_INPUT). Runs in its
/// own transaction (a savepoint inside signup's), in which the user's key
/// creations are serialized, so racing calls at the cap make exactly one key.
pub async fn create<C: ConnectionTrait + TransactionTrait>(
    conn: &C,
    policy: &AccountPolicy,
    user_id: Uuid,
    name: KeyName,
    key_type: KeyType,
    now: DateTime<Utc>,
) -> Result<CreatedKey> {
    let txn = conn.begin().await?;
    let max = policy.max_active_keys;
    if max > 0 {
        serialize_key_creation(&txn, user_id).await?;
        let active = api_key::Entity::find()
            .filter(api_key::Column::UserId.eq(user_id))
            .filter(api_key::Column::RevokedAt.is_null())
            .count(&txn)
            .await?;
        if active >= u64::from(max) {
            return Err(Error::bad_input(format!(
                "keys: at most {max} active keys per account; revoke one to create another"
            )));
        }
    }
    let secret = KeySecret::generate(key_type);
    let key = api_key::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        name: Set(name.into_inner()),
        key_type: Set(key_type),
        prefix: Set(secret.prefix().to_owned()),
        secret_hash: Set(secret.hash().to_vec()),
        created_at: Set(now),
        last_used_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
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

/// The user's keys, newest first.
pub async fn list(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    include_revoked: bool,
) -> Result<Vec<api_key::Model>> {
    let mut query = api_key::Entity::find().filter(api_key::Column::UserId.eq(user_id));
    if !include_revoked {
        query = query.filter(api_key::Column::RevokedAt.is_null());
    }
    Ok(query
        .order_by_desc(api_key::Column::CreatedAt)
        .order_by_desc(api_key::Column::Id)
        .all(conn)
        .await?)
}

/// Revokes one of the user's keys. Revoking again changes nothing and
/// returns the key as it is; another user's key is NOT_FOUND, like a missing one.
pub async fn revoke(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    key_id: Uuid,
    now: DateTime<Utc>,
) -> Result<api_key::Model> {
    let owned_by_user = api_key::Column::Id
        .eq(key_id)
        .and(api_key::Column::UserId.eq(user_id));
    // Only a key not yet revoked is touched, so racing revokes agree on the
    // first one's timestamp.
    api_key::Entity::update_many()
        .col_expr(api_key::Column::RevokedAt, Expr::value(now))
        .filter(owned_by_user.clone())
        .filter(api_key::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    api_key::Entity::find()
        .filter(owned_by_user)
        .one(conn)
        .await?
        .ok_or(Error::NotFound)
}
