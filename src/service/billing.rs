//! The billing account every user must have, provisioned in one place: a
//! signup whose provisioning failed, or a user who arrived another way, gets
//! it on the next read of an account, whichever service reads it.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use crate::domain::AccountPolicy;
use crate::entity::billing_account;
use crate::error::Result;

/// The user's billing account, provisioned now if it is missing (a signup
/// whose provisioning failed, or a user who arrived another way). Safe under
/// concurrent first reads: the insert yields to the unique index on user_id,
/// so a user never gets two accounts.
pub async fn billing_account(
    conn: &impl ConnectionTrait,
    policy: &AccountPolicy,
    user_id: Uuid,
    now: DateTime<Utc>,
) -> Result<billing_account::Model> {
    if let Some(account) = find_billing_account(conn, user_id).await? {
        return Ok(account);
    }
    let account = billing_account::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        plan: Set(policy.plan.clone()),
        monthly_credits: Set(policy.monthly_credits),
        billing_cycle_start: Set(now),
        created_at: Set(now),
    };
    billing_account::Entity::insert(account)
        .on_conflict(
            OnConflict::column(billing_account::Column::UserId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    find_billing_account(conn, user_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("billing account of {user_id} missing after insert").into())
}

async fn find_billing_account(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<Option<billing_account::Model>> {
    Ok(billing_account::Entity::find()
        .filter(billing_account::Column::UserId.eq(user_id))
        .one(conn)
        .await?)
}
