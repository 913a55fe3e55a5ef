//! Taking a charged call back (refundUsage): marking its requestId's row
//! refunded, once, and subtracting its credits and its request from the
//! counter and the rollups it was added to. Each statement is built with
//! its values; `metering::refund` runs them in one short transaction.

use chrono::{DateTime, Utc};
use sea_orm::{DbBackend, FromQueryResult, Statement};
use uuid::Uuid;

use super::counters::{time_rollup_table, TIME_ROLLUPS};
use super::requests::REQUEST_ID_TTL;
use super::statement;
use crate::domain::VerifyCode;

/// The charge a refund took back, as its requestId's row recorded it.
#[derive(FromQueryResult, Debug)]
pub struct RefundedCharge {
    pub credits: i64,
    /// When it was charged: the instant its rollups' buckets were taken from.
    pub created_at: DateTime<Utc>,
    /// The end of the cycle it was charged in.
    pub cycle_end: DateTime<Utc>,
}

/// Marks the charged call (key, requestId) of the last 24 hours refunded,
/// unless it already was: of racing refunds, one updates the row (the
/// others wait for its lock, then find it refunded). Returns the charge.
pub fn mark_refunded(
    backend: DbBackend,
    key_id: Uuid,
    request_id: &str,
    now: DateTime<Utc>,
) -> Statement {
    const MARK: &str = "UPDATE verify_requests SET refunded_at = $3
 WHERE api_key_id = $1 AND request_id = $2 AND created_at > $4
   AND code = $5 AND credits > 0 AND refunded_at IS NULL
 RETURNING credits, created_at, cycle_end";
    let values = vec![
        key_id.into(),
        request_id.into(),
        now.into(),
        (now - REQUEST_ID_TTL).into(),
        VerifyCode::Valid.as_str().into(),
    ];
    statement(backend, MARK, values)
}

/// Whether the charged call (key, requestId) of the last 24 hours exists,
/// and if so whether it was refunded: one row, or none.
#[derive(FromQueryResult, Debug)]
pub struct ChargedCall {
    pub refunded: bool,
}

pub fn charged_call(
    backend: DbBackend,
    key_id: Uuid,
    request_id: &str,
    now: DateTime<Utc>,
) -> Statement {
    const FIND: &str = "SELECT refunded_at IS NOT NULL AS refunded FROM verify_requests
 WHERE api_key_id = $1 AND request_id = $2 AND created_at > $3 AND code = $4 AND credits > 0";
    let values = vec![
        key_id.into(),
        request_id.into(),
        (now - REQUEST_ID_TTL).into(),
        VerifyCode::Valid.as_str().into(),
    ];
    statement(backend, FIND, values)
}

/// Where a refunded charge was counted: its account's counter for its
/// cycle, and its key's rollups for that cycle and for the hour and day it
/// was charged in.
#[derive(Debug, Clone, Copy)]
pub struct TakeBack {
    pub account_id: Uuid,
    pub key_id: Uuid,
    pub cycle_start: DateTime<Utc>,
    pub charged_at: DateTime<Utc>,
    pub credits: i64,
}

/// The account's counter after the take-back.
#[derive(FromQueryResult, Debug)]
pub struct CounterAfter {
    pub credits_used: i64,
}

impl TakeBack {
    /// The statements subtracting the charge, the counter's last: it
    /// returns the credits the cycle has used since. On PostgreSQL they are
    /// one statement (data-modifying CTEs) with shared parameters; SQLite
    /// runs them in turn, each with its own.
    pub fn statements(&self, backend: DbBackend) -> Vec<Statement> {
        let buckets = self.buckets();
        if backend == DbBackend::Postgres {
            // $1 credits, $2 key, $3 account, then each bucket.
            let ctes: Vec<String> = buckets
                .iter()
                .enumerate()
                .map(|(i, (table, column, _))| {
                    format!("rollup{i} AS ({})", subtract_from(table, column, i + 4))
                })
                .collect();
            let sql = format!(
                "WITH {}, counter AS ({}) SELECT credits_used FROM counter",
                ctes.join(", "),
                counter(3, 4)
            );
            let mut values = vec![
                self.credits.into(),
                self.key_id.into(),
                self.account_id.into(),
            ];
            values.extend(buckets.iter().map(|&(_, _, start)| start.into()));
            return vec![statement(backend, &sql, values)];
        }
        let mut statements: Vec<Statement> = buckets
            .iter()
            .map(|&(table, column, start)| {
                let values = vec![self.credits.into(), self.key_id.into(), start.into()];
                statement(backend, &subtract_from(table, column, 3), values)
            })
            .collect();
        let values = vec![
            self.credits.into(),
            self.account_id.into(),
            self.cycle_start.into(),
        ];
        statements.push(statement(backend, &counter(2, 3), values));
        statements
    }

    /// Each rollup the charge was added to: table, bucket column, bucket.
    fn buckets(&self) -> Vec<(&'static str, &'static str, DateTime<Utc>)> {
        let mut buckets = vec![("api_key_cycle_usage", "cycle_start", self.cycle_start)];
        for interval in TIME_ROLLUPS {
            let (table, column) = time_rollup_table(interval);
            buckets.push((table, column, interval.bucket_of_charge(self.charged_at)));
        }
        buckets
    }
}

/// The counter less $1 credits; `account` and `cycle` number its other parameters.
fn counter(account: usize, cycle: usize) -> String {
    format!(
        "UPDATE billing_cycle_usage SET credits_used = credits_used - $1
 WHERE billing_account_id = ${account} AND cycle_start = ${cycle} RETURNING credits_used"
    )
}

/// A rollup less $1 credits and one request, for key $2 and `bucket`.
fn subtract_from(table: &str, column: &str, bucket: usize) -> String {
    format!(
        "UPDATE {table} SET credits = credits - $1, requests = requests - 1
 WHERE api_key_id = $2 AND {column} = ${bucket}"
    )
}
