//! Bearer-token sessions. Only the token's SHA-256 is stored; a token is
//! valid until it expires or its session is ended by logout.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::clock::Clock;
use crate::domain::{SecretHash, SessionToken};
use crate::entity::{billing_account, session, user};
use crate::error::{Error, Result};
use crate::store::db::Db;

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

/// The users whose live sessions the `token_hashes` belong to, with their
/// own accounts, keyed by token hash, in one indexed read; unknown or
/// expired tokens are absent.
pub async fn users_of(
    conn: &impl ConnectionTrait,
    token_hashes: &[Vec<u8>],
    now: DateTime<Utc>,
) -> Result<HashMap<Vec<u8>, SessionUser>> {
    let found = session::Entity::find()
        .find_also_related(user::Entity)
        .and_also_related(billing_account::Entity)
        .filter(session::Column::TokenHash.is_in(token_hashes.iter().cloned()))
        .filter(session::Column::ExpiresAt.gt(now))
        .all(conn)
        .await?;
    Ok(found
        .into_iter()
        .filter_map(|(session, user, own_account)| {
            let signed_in = SessionUser {
                user: user?,
                own_account,
            };
            Some((session.token_hash, signed_in))
        })
        .collect())
}

/// A session's user, with their own account read in the same statement
/// (every signed-in page acts on it; None only when signup could not
/// provision it yet).
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub user: user::Model,
    pub own_account: Option<billing_account::Model>,
}

/// Sessions as the API ends them; owns the pool and the clock.
#[derive(Clone)]
pub struct Sessions {
    pub db: Db,
    pub clock: Arc<dyn Clock>,
}

impl Sessions {
    /// Ends the session of `token`. An unknown or expired token is UNAUTHENTICATED.
    pub async fn end(&self, token: &str) -> Result<()> {
        let deleted = session::Entity::delete_many()
            .filter(session::Column::TokenHash.eq(SecretHash::of(token).to_vec()))
            .filter(session::Column::ExpiresAt.gt(self.clock.now()))
            .exec(&self.db)
            .await?;
        if deleted.rows_affected == 0 {
            return Err(Error::Unauthenticated);
        }
        Ok(())
    }
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
