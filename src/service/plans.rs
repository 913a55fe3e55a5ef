//! Plans, for operators: `keymeter accounts show` and `keymeter accounts
//! set-plan`, on the server's own database (SQLite or PostgreSQL).
//!
//! A plan change is one UPDATE of the account's row. The cycle's counter is
//! left as it is, so credits already used count against the new allowance,
//! and every charge reads the allowance from that row in the statement that
//! charges, so the change prices the next verifyKey in every process.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, TransactionTrait};

use super::{audit, billing};
use crate::domain::audit::{Action, Actor, Change, TargetType};
use crate::domain::text::is_printable;
use crate::domain::{AccountPolicy, Counter, Cycle, Email};
use crate::entity::{billing_account, user};
use crate::error::{Error, Result};
use crate::store::db::Db;
use crate::store::usage::newest_counter;

/// An account as an operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountReport {
    pub email: String,
    pub plan: String,
    pub monthly_credits: i64,
    pub cycle: Cycle,
    pub credits_used: i64,
}

impl fmt::Display for AccountReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let left = (self.monthly_credits - self.credits_used).max(0);
        writeln!(f, "email            {}", self.email)?;
        writeln!(f, "plan             {}", self.plan)?;
        writeln!(f, "monthly credits  {}", self.monthly_credits)?;
        writeln!(f, "cycle start      {}", time(self.cycle.start))?;
        writeln!(f, "cycle end        {}", time(self.cycle.end))?;
        writeln!(f, "credits used     {}", self.credits_used)?;
        writeln!(f, "credits left     {left}")
    }
}

/// A new plan, validated: a name of 1 to 32 printable characters (the
/// column's width) and 0 to i32::MAX monthly credits (GraphQL's Int, in
/// which the API reports them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanChange {
    plan: String,
    monthly_credits: i64,
}

impl PlanChange {
    pub fn parse(plan: &str, monthly_credits: &str) -> Result<Self> {
        let plan = plan.trim();
        if !(1..=32).contains(&plan.chars().count()) || !is_printable(plan) {
            return Err(Error::bad_input(
                "--plan: 1 to 32 printable characters after trimming",
            ));
        }
        let monthly_credits = monthly_credits
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=i64::from(i32::MAX)).contains(n))
            .ok_or_else(|| {
                Error::bad_input(format!(
                    "--monthly-credits: a whole number from 0 to {}",
                    i32::MAX
                ))
            })?;
        Ok(Self {
            plan: plan.to_owned(),
            monthly_credits,
        })
    }
}

/// The account of the user with `email`, provisioned if it is missing, as
/// every read of the server does.
pub async fn show(
    db: &Db,
    policy: &AccountPolicy,
    email: &str,
    now: DateTime<Utc>,
) -> Result<AccountReport> {
    let user = find_user(db, email).await?;
    let account = billing::own_account(db, policy, &user, now).await?;
    report(db, user, account, now).await
}

/// Sets the plan and monthly credits of the user with `email`. Everything is
/// checked before the one write, so bad input changes nothing.
pub async fn set_plan(
    db: &Db,
    policy: &AccountPolicy,
    email: &str,
    change: PlanChange,
    now: DateTime<Utc>,
) -> Result<AccountReport> {
    let user = find_user(db, email).await?;
    let account = billing::own_account(db, policy, &user, now).await?;
    // The change and its plan.changed event, one transaction.
    let txn = db.begin().await?;
    let PlanChange {
        plan,
        monthly_credits,
    } = change;
    let event = Change::new(Action::PlanChanged, TargetType::Account, account.id)
        .named(format!("{plan} ({monthly_credits} credits)"));
    billing_account::Entity::update_many()
        .col_expr(billing_account::Column::Plan, Expr::value(plan))
        .col_expr(
            billing_account::Column::MonthlyCredits,
            Expr::value(monthly_credits),
        )
        .filter(billing_account::Column::Id.eq(account.id))
        .exec(&txn)
        .await?;
    audit::record(&txn, account.id, &Actor::Operator, event, now).await?;
    txn.commit().await?;
    show(db, policy, email, now).await
}

async fn find_user(db: &impl ConnectionTrait, email: &str) -> Result<user::Model> {
    let email = Email::parse(email)?;
    user::Entity::find()
        .filter(user::Column::Email.eq(email.as_str()))
        .one(db)
        .await?
        .ok_or_else(|| Error::bad_input(format!("no user has the email {}", email.as_str())))
}

async fn report(
    db: &impl ConnectionTrait,
    user: user::Model,
    account: billing_account::Model,
    now: DateTime<Utc>,
) -> Result<AccountReport> {
    let cycle = Cycle::current(account.billing_cycle_start, now);
    Ok(AccountReport {
        credits_used: Counter::used_in(newest_counter(db, account.id).await?, &cycle),
        email: user.email,
        plan: account.plan,
        monthly_credits: account.monthly_credits,
        cycle,
    })
}

/// What an operator is told when a command fails: the reason for input they
/// can correct, and the whole cause otherwise (this is their terminal, not
/// a client).
pub fn operator_message(err: &Error) -> String {
    match err {
        Error::Internal(source) => format!("{source:#}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_changes_are_validated() {
        let change = PlanChange::parse("  pro ", "5000").unwrap();
        assert_eq!(
            (change.plan.as_str(), change.monthly_credits),
            ("pro", 5000)
        );
        assert!(PlanChange::parse("free", "0").is_ok());
        assert!(PlanChange::parse(&"p".repeat(32), "2147483647").is_ok());
        for (plan, credits, field) in [
            ("", "10", "--plan"),
            ("   ", "10", "--plan"),
            (&"p".repeat(33) as &str, "10", "--plan"),
            ("pro\u{202e}", "10", "--plan"),
            ("pro", "-1", "--monthly-credits"),
            ("pro", "2147483648", "--monthly-credits"),
            ("pro", "lots", "--monthly-credits"),
            ("pro", "", "--monthly-credits"),
        ] {
            let err = PlanChange::parse(plan, credits).unwrap_err();
            assert!(
                err.to_string().starts_with(field),
                "{plan:?} {credits:?}: {err}"
            );
        }
    }
}
