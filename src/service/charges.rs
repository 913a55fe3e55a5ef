//! Charging verifyKey calls, several in one transaction.
//!
//! A batch is one transaction of a fixed number of statements, whatever its
//! size; a batch of one is the per-request mode. Each guarantee of a single
//! charge holds for every call of a batch:
//! - **Exact quota.** The account counters of the batch are locked first, in
//!   account order (so concurrent batches, in this process or another, queue
//!   instead of deadlocking), then calls are admitted in arrival order while
//!   they fit: a batch that would cross the limit admits exactly the calls
//!   that fit, and refuses the rest without recording anything for them.
//! - **Idempotent retries.** RequestIds are claimed first, in one insert
//!   whose primary key decides races with other batches; a call whose id is
//!   already answered gets that answer and is not charged, and a repeat of an
//!   id within the batch gets the first one's answer.
//! - **Durable before answered.** Answers are returned only after the commit.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement, TransactionTrait, Value};
use uuid::Uuid;

use super::metering::{Verification, REQUEST_ID_TTL};
use crate::domain::{Cycle, KeyType, VerifyCode};
use crate::error::Result;

/// A verifyKey call on a known, active key, to be charged.
#[derive(Debug, Clone)]
pub struct ChargeCall {
    pub key_id: Uuid,
    pub key_type: KeyType,
    pub account_id: Uuid,
    pub monthly_credits: i64,
    pub anchor: DateTime<Utc>,
    pub credits: i32,
    pub endpoint: Option<String>,
    pub request_id: Option<String>,
}

/// Charges `calls` in one transaction and answers each, in order.
pub async fn charge(
    db: &DatabaseConnection,
    calls: &[ChargeCall],
    now: DateTime<Utc>,
) -> Result<Vec<Verification>> {
    let backend = db.get_database_backend();
    let stmt =
        |sql: String, values: Vec<Value>| Statement::from_sql_and_values(backend, sql, values);
    let cycles: Vec<Cycle> = calls
        .iter()
        .map(|c| Cycle::current(c.anchor, now))
        .collect();
    let answer = |i: usize, code: VerifyCode, used: i64| Verification {
        code,
        key: Some((calls[i].key_id, calls[i].key_type)),
        remaining_credits: Some((calls[i].monthly_credits - used).max(0)),
        cycle_end: Some(cycles[i].end),
    };
    let mut answers: Vec<Option<Verification>> = vec![None; calls.len()];
    let txn = db.begin().await?;

    // 1. Claim each distinct (key, requestId), in key order; repeats within
    //    the batch wait for the first one's answer.
    let mut first_of: HashMap<(Uuid, &str), usize> = HashMap::new();
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        if let Some(request_id) = call.request_id.as_deref() {
            match first_of.get(&(call.key_id, request_id)) {
                Some(&first) => repeats.push((i, first)),
                None => {
                    first_of.insert((call.key_id, request_id), i);
                }
            }
        }
    }
    let mut claims: Vec<usize> = first_of.values().copied().collect();
    let mut fresh_claims: Vec<usize> = Vec::new();
    claims.sort_by_key(|&i| (calls[i].key_id, calls[i].request_id.clone()));
    if !claims.is_empty() {
        let mut values = Vec::with_capacity(claims.len() * 6 + 1);
        for &i in &claims {
            let call = &calls[i];
            values.extend([
                call.key_id.into(),
                call.request_id.clone().into(),
                now.into(),
                "pending".into(),
                0i64.into(),
                cycles[i].end.into(),
            ]);
        }
        let expired_at = values.len() + 1;
        values.push((now - REQUEST_ID_TTL).into());
        let sql = sql::claim_request_ids(claims.len(), expired_at);
        let claimed: Vec<(Uuid, String)> = txn
            .query_all_raw(stmt(sql, values))
            .await?
            .iter()
            .map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
            .collect::<Result<_>>()?;
        for &i in &claims {
            let call = &calls[i];
            let id = call.request_id.as_deref().unwrap_or_default();
            if claimed
                .iter()
                .any(|(key, request)| *key == call.key_id && request == id)
            {
                fresh_claims.push(i);
            } else {
                // Answered before, by this process or another: committed, so readable now.
                let remembered =
                    super::metering::remembered_answer(&txn, call.key_id, id, now).await?;
                answers[i] = Some(
                    remembered
                        .ok_or_else(|| anyhow::anyhow!("request id claimed but not readable"))?,
                );
            }
        }
    }
    let is_repeat = |i: usize| repeats.iter().any(|&(repeat, _)| repeat == i);

    // 2. Lock and read the counters of the accounts being charged, in account order.
    let mut totals: BTreeMap<(Uuid, DateTime<Utc>), (i64, i64)> = BTreeMap::new(); // (used before, used now)
    for (i, call) in calls.iter().enumerate() {
        if answers[i].is_none() && !is_repeat(i) {
            totals.insert((call.account_id, cycles[i].start), (0, 0));
        }
    }
    if !totals.is_empty() {
        let mut values = Vec::with_capacity(totals.len() * 2);
        for (account, cycle_start) in totals.keys() {
            values.extend([(*account).into(), (*cycle_start).into()]);
        }
        let rows: Vec<String> = (0..totals.len())
            .map(|r| format!("(${}, ${}, 0)", 2 * r + 1, 2 * r + 2))
            .collect();
        // The no-op DO UPDATE takes the row lock, so the totals read here
        // stay true until this transaction ends.
        let sql = format!(
            "INSERT INTO billing_cycle_usage (billing_account_id, cycle_start, credits_used)
             VALUES {}
             ON CONFLICT (billing_account_id, cycle_start) DO UPDATE SET credits_used = billing_cycle_usage.credits_used
             RETURNING billing_account_id, cycle_start, credits_used",
            rows.join(", ")
        );
        for row in txn.query_all_raw(stmt(sql, values)).await? {
            let key = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
            let used: i64 = row.try_get_by_index(2)?;
            totals.insert(key, (used, used));
        }
    }

    // 3. Admit in arrival order while the credits fit.
    let mut admitted: Vec<usize> = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        if answers[i].is_some() || is_repeat(i) {
            continue;
        }
        let (_, used) = totals
            .get_mut(&(call.account_id, cycles[i].start))
            .expect("locked above");
        let credits = i64::from(call.credits);
        if *used + credits <= call.monthly_credits {
            *used += credits;
            if credits > 0 {
                admitted.push(i);
            }
            answers[i] = Some(answer(i, VerifyCode::Valid, *used));
        } else {
            answers[i] = Some(answer(i, VerifyCode::UsageExceeded, *used));
        }
    }

    // 4. Record what was admitted.
    for ((account, cycle_start), (before, after)) in &totals {
        if after != before {
            let sql = "UPDATE billing_cycle_usage SET credits_used = $3 WHERE billing_account_id = $1 AND cycle_start = $2";
            txn.execute_raw(stmt(
                sql.into(),
                vec![(*account).into(), (*cycle_start).into(), (*after).into()],
            ))
            .await?;
        }
    }
    if !admitted.is_empty() {
        let mut values = Vec::with_capacity(admitted.len() * 4);
        let mut rollups: BTreeMap<(Uuid, DateTime<Utc>), (i64, i64)> = BTreeMap::new();
        for &i in &admitted {
            let call = &calls[i];
            values.extend([
                call.key_id.into(),
                call.credits.into(),
                call.endpoint.clone().into(),
                now.into(),
            ]);
            let rollup = rollups.entry((call.key_id, cycles[i].start)).or_default();
            rollup.0 += i64::from(call.credits);
            rollup.1 += 1;
        }
        txn.execute_raw(stmt(sql::insert_events(admitted.len()), values))
            .await?;

        let mut values = Vec::with_capacity(rollups.len() * 4);
        for ((key, cycle_start), (credits, requests)) in &rollups {
            values.extend([
                (*key).into(),
                (*cycle_start).into(),
                (*credits).into(),
                (*requests).into(),
            ]);
        }
        txn.execute_raw(stmt(sql::add_to_rollups(rollups.len()), values))
            .await?;

        let keys: Vec<Uuid> = rollups
            .keys()
            .map(|(key, _)| *key)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let sql = sql::touch_keys(keys.len());
        let mut values: Vec<Value> = vec![now.into()];
        values.extend(keys.into_iter().map(Value::from));
        txn.execute_raw(stmt(sql, values)).await?;
    }
    // The claimed requestIds get their answers, replacing the placeholders.
    for &i in &fresh_claims {
        if let Some(answer) = &answers[i] {
            let values = vec![
                calls[i].key_id.into(),
                calls[i].request_id.clone().into(),
                answer.code.as_str().into(),
                answer.remaining_credits.unwrap_or(0).into(),
                answer.cycle_end.unwrap_or(now).into(),
            ];
            txn.execute_raw(stmt(sql::ANSWER_REQUEST_ID.into(), values))
                .await?;
        }
    }
    txn.commit().await?;

    for &(repeat, first) in &repeats {
        answers[repeat] = answers[first].clone();
    }
    Ok(answers
        .into_iter()
        .map(|a| a.expect("every call is answered"))
        .collect())
}

/// The statements of a charging transaction, for `rows` calls, keys or
/// accounts. Public so the benchmark's pgbench ceiling runs exactly these.
pub mod sql {
    /// `(…), (…)` with `rows` groups of `columns` numbered placeholders.
    fn placeholders(rows: usize, columns: usize) -> String {
        (0..rows)
            .map(|row| {
                let cells: Vec<String> = (1..=columns)
                    .map(|c| format!("${}", row * columns + c))
                    .collect();
                format!("({})", cells.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Claims (key, requestId) pairs; returns those claimed. `$expired_at`
    /// is the instant before which an old answer may be replaced.
    pub fn claim_request_ids(rows: usize, expired_at: usize) -> String {
        format!(
            "INSERT INTO verify_requests (api_key_id, request_id, created_at, code, remaining_credits, cycle_end)
             VALUES {}
             ON CONFLICT (api_key_id, request_id) DO UPDATE
                SET created_at = excluded.created_at, code = excluded.code,
                    remaining_credits = excluded.remaining_credits, cycle_end = excluded.cycle_end
              WHERE verify_requests.created_at <= ${expired_at}
             RETURNING api_key_id, request_id",
            placeholders(rows, 6)
        )
    }

    /// Creates the (account, cycle) counters if missing and locks them: the
    /// no-op DO UPDATE takes the row lock, so the totals read here stay true
    /// until the transaction ends.
    pub fn lock_counters(rows: usize) -> String {
        let values: Vec<String> = (0..rows)
            .map(|r| format!("(${}, ${}, 0)", 2 * r + 1, 2 * r + 2))
            .collect();
        format!(
            "INSERT INTO billing_cycle_usage (billing_account_id, cycle_start, credits_used)
             VALUES {}
             ON CONFLICT (billing_account_id, cycle_start) DO UPDATE SET credits_used = billing_cycle_usage.credits_used
             RETURNING billing_account_id, cycle_start, credits_used",
            values.join(", ")
        )
    }

    pub const SET_COUNTER: &str =
        "UPDATE billing_cycle_usage SET credits_used = $3 WHERE billing_account_id = $1 AND cycle_start = $2";

    pub fn insert_events(rows: usize) -> String {
        format!(
            "INSERT INTO api_key_usage (api_key_id, credits, endpoint, created_at) VALUES {}",
            placeholders(rows, 4)
        )
    }

    pub fn add_to_rollups(rows: usize) -> String {
        format!(
            "INSERT INTO api_key_cycle_usage (api_key_id, cycle_start, credits, requests) VALUES {}
             ON CONFLICT (api_key_id, cycle_start) DO UPDATE
                SET credits = api_key_cycle_usage.credits + excluded.credits,
                    requests = api_key_cycle_usage.requests + excluded.requests",
            placeholders(rows, 4)
        )
    }

    /// `$1` is the time; `$2…` the keys.
    pub fn touch_keys(keys: usize) -> String {
        let list: Vec<String> = (0..keys).map(|k| format!("${}", k + 2)).collect();
        format!(
            "UPDATE api_keys SET last_used_at = $1
              WHERE id IN ({}) AND (last_used_at IS NULL OR last_used_at < $1)",
            list.join(", ")
        )
    }

    pub const ANSWER_REQUEST_ID: &str =
        "UPDATE verify_requests SET code = $3, remaining_credits = $4, cycle_end = $5
                WHERE api_key_id = $1 AND request_id = $2";
}
