//! API keys: creation (the secret is returned once and stored only as a
//! hash), listing and revocation, always scoped to their owner.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use uuid::Uuid;

use crate::domain::secret::KeySecret;
use crate::domain::{KeyName, KeyType};
use crate::entity::api_key;
use crate::error::{Error, Result};

/// A key just made, with the only copy of its secret.
pub struct CreatedKey {
    pub key: api_key::Model,
    pub secret: String,
}

pub const DEFAULT_KEY_NAME: &str = "Default key";

pub async fn create(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    name: KeyName,
    key_type: KeyType,
    now: DateTime<Utc>,
) -> Result<CreatedKey> {
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
    .insert(conn)
    .await?;
    Ok(CreatedKey {
        key,
        secret: secret.into_secret(),
    })
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
