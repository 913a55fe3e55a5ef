//! Bearer-token sessions. Only the token's SHA-256 is stored; a token is
//! valid until it expires or its session is ended by logout.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::domain::{SecretHash, SessionToken};
use crate::entity::{session, user};
use crate::error::{Error, Result};

/// Starts a session for `user_id` and returns its bearer token.
pub async fn start(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    now: DateTime<Utc>,
    ttl: chrono::Duration,
) -> Result<String> {
    let token = SessionToken::generate();
    session::ActiveModel {
        token_hash: Set(token.hash().to_vec()),
        user_id: Set(user_id),
        created_at: Set(now),
        expires_at: Set(now + ttl),
    }
    .insert(conn)
    .await?;
    Ok(token.into_string())
}

/// The user a live token belongs to, in one indexed lookup.
pub async fn authenticate(
    conn: &impl ConnectionTrait,
    token: &str,
    now: DateTime<Utc>,
) -> Result<user::Model> {
    user::Entity::find()
        .inner_join(session::Entity)
        .filter(session::Column::TokenHash.eq(SecretHash::of(token).to_vec()))
        .filter(session::Column::ExpiresAt.gt(now))
        .one(conn)
        .await?
        .ok_or(Error::Unauthenticated)
}

/// Ends the session of `token`. An unknown or expired token is UNAUTHENTICATED.
pub async fn end(conn: &impl ConnectionTrait, token: &str, now: DateTime<Utc>) -> Result<()> {
    let deleted = session::Entity::delete_many()
        .filter(session::Column::TokenHash.eq(SecretHash::of(token).to_vec()))
        .filter(session::Column::ExpiresAt.gt(now))
        .exec(conn)
        .await?;
    if deleted.rows_affected == 0 {
        return Err(Error::Unauthenticated);
    }
    Ok(())
}

/// Deletes a user's expired sessions; run at login so that the table does
/// not grow without bound and no background job is needed.
pub async fn purge_expired(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<()> {
    session::Entity::delete_many()
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::ExpiresAt.lte(now))
        .exec(conn)
        .await?;
    Ok(())
}
