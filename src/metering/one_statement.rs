//! The one-statement path (PostgreSQL): calls without a requestId whose
//! accounts, as read, have room for them are charged by one autocommit
//! statement, one round trip. The statement checks in the database, on the
//! locked counter row, that each key is still active, each account still
//! priced as the calls assumed, and the sum still fits; an account that
//! fails a check is left untouched, and its calls go the locked way.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, FromQueryResult, Statement};
use uuid::Uuid;

use super::call::Call;
use super::failures::{Charged, Failure};
use super::known_keys::KnownKeys;
use super::writes::ChargeWrites;
use crate::domain::admission::running_totals;
use crate::domain::{Verification, VerifyCode};
use crate::store::counters::ChargedTotal;

/// The path's one entry: charges `calls` (see `charge`) and answers each
/// charged call VALID, telling `known` what its account has used since;
/// `None` for the calls the statement refused, to be charged the locked way.
pub async fn run(
    db: &DatabaseConnection,
    known: &KnownKeys,
    calls: &[Call<'_>],
    now: DateTime<Utc>,
) -> Charged<Vec<Option<Verification>>> {
    let used = charge(db, calls, now).await?;
    Ok(calls
        .iter()
        .zip(used)
        .map(|(call, used)| {
            let used = used?;
            known.saw_usage(call.hash, call.cycle.start, used);
            Some(call.answer(VerifyCode::Valid, used))
        })
        .collect())
}

/// Charges `calls` account by account, all of an account's calls or none.
/// Gives each call charged its account's credits used up to and including
/// it; `None` for the calls the statement refused.
async fn charge(
    db: &DatabaseConnection,
    calls: &[Call<'_>],
    now: DateTime<Utc>,
) -> Charged<Vec<Option<i64>>> {
    if calls.is_empty() {
        return Ok(Vec::new());
    }
    let (sql, values) = ChargeWrites::of(calls).in_one_statement(now);
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
    let rows = db
        .query_all_raw(statement)
        .await
        .map_err(Failure::at_commit("the one charging statement"))?;
    let totals: HashMap<Uuid, i64> = rows
        .iter()
        .map(|row| ChargedTotal::from_query_result(row, ""))
        .map(|total| total.map(|t| (t.billing_account_id, t.credits_used)))
        .collect::<Result<_, _>>()
        .map_err(Failure::after_commit(
            "reading the one charging statement's totals",
        ))?;
    let asked: Vec<(Uuid, i64)> = calls
        .iter()
        .map(|c| (c.account_id(), c.credits()))
        .collect();
    Ok(running_totals(&asked, &totals))
}
