//! Usage alerts (contract v3): each account's thresholds, and the worker
//! that fans out the thresholds reached. The charging statements raise an
//! alert (a row of `usage_alerts`, one per account, cycle and threshold)
//! in the charge's own statement or transaction, so a charge that rolls
//! back raises nothing and racing charges raise it once. This worker turns
//! each row into its audit event (actor SYSTEM), its webhooks and the
//! owners' email, in one transaction that also marks the row: the mark is
//! a conditional UPDATE taken first, so of processes racing for one row,
//! one fans it out and the others find it done.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use uuid::Uuid;

use super::audit;
use super::mail::{Email as OutgoingEmail, Mailer};
use crate::clock::Clock;
use crate::domain::alerts::Thresholds;
use crate::domain::audit::{Action, Actor, Change, TargetType};
use crate::domain::{instant, Cycle, MemberRole, Membership};
use crate::entity::{account_member, billing_account, usage_alert, usage_alert_threshold, user};
use crate::error::Result;
use crate::shared_reads::SharedReads;
use crate::store::db::Db;

/// How often the worker looks for alerts to fan out.
const POLL: Duration = Duration::from_secs(1);
/// Most alerts fanned out per look.
const BATCH: u64 = 50;

#[derive(Clone)]
pub struct Alerts {
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub mail: Mailer,
    /// An account's thresholds, read once for the requests asking together.
    pub threshold_reads: SharedReads<Uuid, Vec<i32>>,
}

impl Alerts {
    /// The account's thresholds, ascending. Any member may read them.
    pub async fn thresholds(&self, account_id: Uuid) -> Result<Vec<i32>> {
        let db = self.db.clone();
        let read = move || {
            let db = db.clone();
            async move {
                let rows = usage_alert_threshold::Entity::find()
                    .filter(usage_alert_threshold::Column::AccountId.eq(account_id))
                    .order_by_asc(usage_alert_threshold::Column::Threshold)
                    .all(&db)
                    .await?;
                Ok(rows.into_iter().map(|row| row.threshold).collect())
            }
        };
        self.threshold_reads.read(account_id, read).await
    }

    /// setUsageAlerts: OWNER. Applies from the next charge; a threshold
    /// already raised in the cycle is not raised again.
    pub async fn set(
        &self,
        member: &Membership,
        actor: &Actor,
        thresholds: Thresholds,
    ) -> Result<Vec<i32>> {
        member.require_owner()?;
        let txn = self.db.begin().await?;
        usage_alert_threshold::Entity::delete_many()
            .filter(usage_alert_threshold::Column::AccountId.eq(member.account_id))
            .exec(&txn)
            .await?;
        let rows: Vec<_> = thresholds
            .as_slice()
            .iter()
            .map(|threshold| usage_alert_threshold::ActiveModel {
                account_id: Set(member.account_id),
                threshold: Set(*threshold),
            })
            .collect();
        if !rows.is_empty() {
            usage_alert_threshold::Entity::insert_many(rows)
                .exec_without_returning(&txn)
                .await?;
        }
        let listed: Vec<String> = thresholds.as_slice().iter().map(i32::to_string).collect();
        let change = Change::new(
            Action::UsageAlertsChanged,
            TargetType::Account,
            member.account_id,
        )
        .named(listed.join(", "));
        audit::record(&txn, member.account_id, actor, change, self.clock.now()).await?;
        txn.commit().await?;
        Ok(thresholds.as_slice().to_vec())
    }

    /// Fans out alerts as they are raised, until aborted.
    pub async fn fan_out_forever(self) {
        loop {
            match self.fan_out_due().await {
                Ok(0) => tokio::time::sleep(POLL).await,
                Ok(_) => {}
                Err(err) => {
                    err.log_if_internal();
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }

    /// One look: fans out the oldest alerts not yet fanned out; how many
    /// this process did.
    pub async fn fan_out_due(&self) -> Result<usize> {
        let due = usage_alert::Entity::find()
            .filter(usage_alert::Column::FannedOutAt.is_null())
            .order_by_asc(usage_alert::Column::RaisedAt)
            .limit(BATCH)
            .all(&self.db)
            .await?;
        let mut done = 0;
        for alert in due {
            // One alert that cannot be fanned out (its transaction rolled
            // back whole) must not hold back the accounts behind it; it is
            // tried again at the next look.
            match self.fan_out(&alert).await {
                Ok(true) => done += 1,
                Ok(false) => {}
                Err(err) => err.log_if_internal(),
            }
        }
        Ok(done)
    }

    /// Writes the alert's audit event, webhooks and email, and marks it, in
    /// one transaction; false when another process marked it first.
    async fn fan_out(&self, alert: &usage_alert::Model) -> Result<bool> {
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        let marked = usage_alert::Entity::update_many()
            .col_expr(usage_alert::Column::FannedOutAt, Expr::value(now))
            .filter(usage_alert::Column::AccountId.eq(alert.account_id))
            .filter(usage_alert::Column::CycleStart.eq(alert.cycle_start))
            .filter(usage_alert::Column::Threshold.eq(alert.threshold))
            .filter(usage_alert::Column::FannedOutAt.is_null())
            .exec(&txn)
            .await?;
        if marked.rows_affected == 0 {
            return Ok(false);
        }
        let Some(account) = billing_account::Entity::find_by_id(alert.account_id)
            .one(&txn)
            .await?
        else {
            return Ok(false);
        };
        let reached = Reached::of(alert, &account);
        let change = Change::new(
            Action::UsageThresholdReached,
            TargetType::Account,
            alert.account_id,
        )
        .named(reached.summary());
        // The event is dated when the charge raised it, not when this
        // worker came by.
        let data = Some(reached.data());
        audit::record_with_data(
            &txn,
            alert.account_id,
            &Actor::System,
            change,
            alert.raised_at,
            data,
        )
        .await?;
        let owners = account_member::Entity::find()
            .filter(account_member::Column::AccountId.eq(alert.account_id))
            .filter(account_member::Column::Role.eq(MemberRole::Owner))
            .find_also_related(user::Entity)
            .all(&txn)
            .await?;
        for (_, owner) in owners {
            if let Some(owner) = owner {
                self.mail
                    .enqueue(&txn, reached.email(&account, &owner.email), now)
                    .await?;
            }
        }
        txn.commit().await?;
        Ok(true)
    }
}

/// A threshold reached, as the event's data says it.
pub struct Reached {
    pub account_id: Uuid,
    pub threshold: i32,
    pub credits_used: i64,
    pub monthly_credits: i64,
    pub cycle: Cycle,
}

impl Reached {
    fn of(alert: &usage_alert::Model, account: &billing_account::Model) -> Self {
        Self {
            account_id: alert.account_id,
            threshold: alert.threshold,
            credits_used: alert.credits_used,
            monthly_credits: alert.monthly_credits,
            cycle: Cycle::current(account.billing_cycle_start, alert.cycle_start),
        }
    }

    fn summary(&self) -> String {
        format!(
            "{}% of {} credits ({} used)",
            self.threshold, self.monthly_credits, self.credits_used
        )
    }

    /// The event's `data`, as webhooks carry it.
    pub fn data(&self) -> serde_json::Value {
        serde_json::json!({
            "accountId": self.account_id,
            "threshold": self.threshold,
            "creditsUsed": self.credits_used,
            "monthlyCredits": self.monthly_credits,
            "cycleStart": render(self.cycle.start),
            "cycleEnd": render(self.cycle.end),
        })
    }

    fn email(&self, account: &billing_account::Model, to: &str) -> OutgoingEmail {
        OutgoingEmail {
            to: to.to_owned(),
            subject: format!(
                "{} has used {}% of its monthly credits",
                account.name, self.threshold
            ),
            text: format!(
                "The account \"{}\" has used {} of its {} monthly credits ({}% or more) in the \
                 cycle from {} to {}.\n\nWhen its credits run out, its keys answer \
                 USAGE_EXCEEDED until the next cycle.\n",
                account.name,
                self.credits_used,
                self.monthly_credits,
                self.threshold,
                render(self.cycle.start),
                render(self.cycle.end),
            ),
        }
    }
}

/// As the API renders instants, so the data's cycle matches `cycleStart`.
fn render(at: DateTime<Utc>) -> String {
    instant::render(at)
}
