//! The own account every user must have, provisioned in one place: a
//! signup whose provisioning failed, or a user who arrived another way,
//! gets it when their membership of it is first asked for
//! (`teams::Teams::membership`) or an operator reads it.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, TransactionSession,
    TransactionTrait,
};
use uuid::Uuid;

use crate::domain::alerts::DEFAULT_THRESHOLDS;
use crate::domain::{AccountName, AccountPolicy, MemberRole};
use crate::entity::{account_member, billing_account, usage_alert_threshold, user};
use crate::error::Result;

/// The user's own account, provisioned now (with them as its OWNER) if it
/// is missing. Safe under concurrent first reads: the insert yields to the
/// unique index on user_id, so a user never gets two own accounts, and the
/// account and its owner are written in one transaction.
pub async fn own_account<C: ConnectionTrait + TransactionTrait>(
    conn: &C,
    policy: &AccountPolicy,
    user: &user::Model,
    now: DateTime<Utc>,
) -> Result<billing_account::Model> {
    if let Some(account) = find_own_account(conn, user.id).await? {
        return Ok(account);
    }
    let txn = conn.begin().await?;
    let account = billing_account::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(Some(user.id)),
        name: Set(AccountName::of_email(&user.email).into_inner()),
        plan: Set(policy.plan.clone()),
        monthly_credits: Set(policy.monthly_credits),
        billing_cycle_start: Set(now),
        created_at: Set(now),
    };
    let inserted = billing_account::Entity::insert(account)
        .on_conflict(
            OnConflict::column(billing_account::Column::UserId)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
    let account = find_own_account(&txn, user.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("own account of {} missing after insert", user.id))?;
    // A racing first read that made it also made its owner and thresholds.
    if inserted == 1 {
        let owner = MemberRole::Owner;
        add_member(&txn, account.id, user.id, owner, account.created_at).await?;
        seed_alerts(&txn, account.id).await?;
    }
    txn.commit().await?;
    Ok(account)
}

/// Gives a new account the default usage alert thresholds.
pub async fn seed_alerts(conn: &impl ConnectionTrait, account_id: Uuid) -> Result<()> {
    let rows = DEFAULT_THRESHOLDS.map(|threshold| usage_alert_threshold::ActiveModel {
        account_id: Set(account_id),
        threshold: Set(threshold),
    });
    usage_alert_threshold::Entity::insert_many(rows)
        .exec_without_returning(conn)
        .await?;
    Ok(())
}

/// Makes `user_id` a member of `account_id`; an existing membership is
/// left as it is (the caller checks for it where that matters).
pub async fn add_member(
    conn: &impl ConnectionTrait,
    account_id: Uuid,
    user_id: Uuid,
    role: MemberRole,
    now: DateTime<Utc>,
) -> Result<u64> {
    let member = account_member::ActiveModel {
        account_id: Set(account_id),
        user_id: Set(user_id),
        role: Set(role),
        joined_at: Set(now),
    };
    let inserted = account_member::Entity::insert(member)
        .on_conflict(
            OnConflict::columns([
                account_member::Column::AccountId,
                account_member::Column::UserId,
            ])
            .do_nothing()
            .to_owned(),
        )
        .exec_without_returning(conn)
        .await?;
    Ok(inserted)
}

pub async fn find_own_account(
    conn: &impl ConnectionTrait,
    user_id: Uuid,
) -> Result<Option<billing_account::Model>> {
    Ok(billing_account::Entity::find()
        .filter(billing_account::Column::UserId.eq(user_id))
        .one(conn)
        .await?)
}
