//! The one-statement path (PostgreSQL): calls without a requestId whose
//! accounts (and limited keys' windows), as read, have room for them are
//! charged by one autocommit statement, one round trip. The statement
//! checks in the database, on the locked counter row, that each key is
//! still active with the limit assumed, each account still priced as the
//! calls assumed, and the sum still fits; an account that fails a check is
//! left untouched, and its calls go the locked way. A window found full on
//! its locked row fails the whole statement, which then wrote nothing: all
//! its calls go the locked way, which admits exactly the slots left.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult};
use uuid::Uuid;

use super::call::Call;
use super::failures::{Charged, Failure};
use super::known_keys::KnownKeys;
use super::writes;
use crate::domain::admission::running_totals;
use crate::domain::{Verification, VerifyCode};
use crate::store::counters::{self, ChargedTotal};
use crate::store::db::Db;
use crate::store::rate_windows;

/// The path's one entry: charges `calls` (see `charge`) and answers each
/// charged call VALID, telling `known` what its account has used since (and
/// its key's window); `None` for the calls the statement refused, to be
/// charged the locked way.
pub async fn run(
    db: &Db,
    known: &KnownKeys,
    calls: &[Call<'_>],
    now: DateTime<Utc>,
) -> Charged<Vec<Option<Verification>>> {
    let Some(totals) = charge(db, calls, now).await? else {
        return Ok(vec![None; calls.len()]);
    };
    Ok(calls
        .iter()
        .zip(totals)
        .map(|(call, (used, window))| {
            let used = used?;
            known.saw_usage(call.hash, call.cycle.start, used);
            if let (Some(rate), Some(window)) = (call.rate, window) {
                known.saw_window(call.hash, rate.window.start, window);
            }
            Some(call.answer_in_window(VerifyCode::Valid, used, window))
        })
        .collect())
}

/// Each call's totals after the statement: its account's credits used up
/// to and including it (`None`: not charged), and its key's window count
/// up to and including it (for a limited key).
type Totals = Vec<(Option<i64>, Option<i64>)>;

/// Charges `calls` account by account, all of an account's calls or none.
/// `None` when a window filled under the statement, which then wrote nothing.
async fn charge(db: &Db, calls: &[Call<'_>], now: DateTime<Utc>) -> Charged<Option<Totals>> {
    if calls.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let statement = counters::charge_in_one_statement(&writes::rows_of(calls), now);
    let rows = match db.query_all_raw(statement).await {
        Ok(rows) => rows,
        Err(error) if rate_windows::window_filled(&error) => {
            tracing::debug!(
                calls = calls.len(),
                "a window filled under the one statement"
            );
            return Ok(None);
        }
        Err(error) => return Err(Failure::at_commit("the one charging statement")(error)),
    };
    let mut accounts: HashMap<Uuid, i64> = HashMap::new();
    let mut windows: HashMap<Uuid, i64> = HashMap::new();
    for row in &rows {
        let total = ChargedTotal::from_query_result(row, "").map_err(Failure::after_commit(
            "reading the one charging statement's totals",
        ))?;
        match (total.billing_account_id, total.api_key_id) {
            (Some(account), _) => accounts.insert(account, total.total),
            (None, Some(key)) => windows.insert(key, total.total),
            (None, None) => None,
        };
    }
    let credits: Vec<(Uuid, i64)> = calls
        .iter()
        .map(|c| (c.account_id(), c.credits()))
        .collect();
    let slots: Vec<(Uuid, i64)> = calls
        .iter()
        .map(|c| (c.key.id, i64::from(c.rate.is_some())))
        .collect();
    let windows = running_totals(&slots, &windows);
    Ok(Some(
        running_totals(&credits, &accounts)
            .into_iter()
            .zip(windows)
            .collect(),
    ))
}
