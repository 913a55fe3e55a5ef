//! requestId idempotency, in one place: how long an answer is remembered,
//! the claim that decides which call of several with one id is charged,
//! the answer it records, reading a remembered answer, taking a charge back
//! (refunds), and forgetting old ones. The locked charging path
//! (`metering::locked`) writes claims and answers; `metering::refund` marks
//! refunds.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement};
use uuid::Uuid;

use super::db::Db;
use super::{statement, Binds};
use crate::domain::{KeyRef, KeyType, RateLimitState, Verification, VerifyCode};

/// How long a requestId's answer is remembered.
pub const REQUEST_ID_TTL: Duration = Duration::hours(24);

/// A requestId to claim: its key, the id, and the end of the cycle its
/// call is priced in.
pub struct Claim<'a> {
    pub key_id: Uuid,
    pub request_id: &'a str,
    pub cycle_end: DateTime<Utc>,
}

/// Claims `claims` at `now`, returning those claimed (`Claimed`). An answer
/// older than the TTL may be replaced.
pub fn claim(backend: DbBackend, claims: &[Claim], now: DateTime<Utc>) -> Statement {
    let mut binds = Binds::default();
    let at = binds.value(now);
    let rows: Vec<String> = claims
        .iter()
        .map(|claim| {
            let key = binds.value(claim.key_id);
            let id = binds.value(claim.request_id);
            let end = binds.value(claim.cycle_end);
            format!("({key}, {id}, {at}, 'pending', 0, {end})")
        })
        .collect();
    let stale = binds.value(now - REQUEST_ID_TTL);
    let sql = format!(
        "INSERT INTO verify_requests (api_key_id, request_id, created_at, code, remaining_credits, cycle_end)
         VALUES {}
         ON CONFLICT (api_key_id, request_id) DO UPDATE
            SET created_at = excluded.created_at, code = excluded.code,
                remaining_credits = excluded.remaining_credits, cycle_end = excluded.cycle_end,
                credits = 0, refunded_at = NULL,
                rate_limit = NULL, rate_remaining = NULL, rate_reset = NULL
          WHERE verify_requests.created_at <= {stale}
         RETURNING api_key_id, request_id",
        rows.join(", ")
    );
    binds.statement(backend, &sql)
}

/// A claimed (key, requestId), as `claim` returns it.
#[derive(FromQueryResult, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Claimed {
    pub api_key_id: Uuid,
    pub request_id: String,
}

/// Records `answer` for a claimed (key, requestId), with the credits it
/// charged (`charged`: 0 unless VALID), which a refund gives back, and the
/// key's rate limit state, if limited. An answer without a cycle end (none
/// is remembered that way) is stored as ending `now`.
pub fn record_answer(
    backend: DbBackend,
    key_id: Uuid,
    request_id: &str,
    answer: &Verification,
    charged: i64,
    now: DateTime<Utc>,
) -> Statement {
    let mut binds = Binds::default();
    let rate = answer.rate_limit;
    let sql = format!(
        "UPDATE verify_requests SET code = {}, remaining_credits = {}, cycle_end = {}, credits = {},
                rate_limit = {}, rate_remaining = {}, rate_reset = {}
          WHERE api_key_id = {} AND request_id = {}",
        binds.value(answer.code.as_str()),
        binds.value(answer.remaining_credits.unwrap_or(0)),
        binds.value(answer.cycle_end.unwrap_or(now)),
        binds.value(charged),
        binds.value(rate.map(|state| state.limit)),
        binds.value(rate.map(|state| state.remaining)),
        binds.value(rate.map(|state| state.reset)),
        binds.value(key_id),
        binds.value(request_id),
    );
    binds.statement(backend, &sql)
}

/// Gives up a claim: a RATE_LIMITED call is not remembered, so a retry of
/// its requestId is decided afresh.
pub fn forget_claim(backend: DbBackend, key_id: Uuid, request_id: &str) -> Statement {
    let mut binds = Binds::default();
    let sql = format!(
        "DELETE FROM verify_requests WHERE api_key_id = {} AND request_id = {}",
        binds.value(key_id),
        binds.value(request_id)
    );
    binds.statement(backend, &sql)
}

#[derive(FromQueryResult)]
struct AnswerRow {
    code: String,
    remaining_credits: i64,
    cycle_end: DateTime<Utc>,
    key_type: KeyType,
    account_id: Option<Uuid>,
    rate_limit: Option<i32>,
    rate_remaining: Option<i64>,
    rate_reset: Option<DateTime<Utc>>,
}

/// The answer first given to `request_id` for this key, if within the TTL.
pub async fn remembered_answer(
    conn: &impl ConnectionTrait,
    key_id: Uuid,
    request_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Verification>, DbErr> {
    const FIND: &str = "
SELECT r.code, r.remaining_credits, r.cycle_end, k.key_type, b.id AS account_id,
       r.rate_limit, r.rate_remaining, r.rate_reset
  FROM verify_requests r JOIN api_keys k ON k.id = r.api_key_id
  LEFT JOIN billing_accounts b ON b.id = k.account_id
 WHERE r.api_key_id = $1 AND r.request_id = $2 AND r.created_at > $3";
    let values = vec![
        key_id.into(),
        request_id.into(),
        (now - REQUEST_ID_TTL).into(),
    ];
    let found = AnswerRow::find_by_statement(statement(conn.get_database_backend(), FIND, values))
        .one(conn)
        .await?;
    let Some(row) = found else {
        return Ok(None);
    };
    let code = VerifyCode::from_stored(&row.code)
        .ok_or_else(|| DbErr::Custom(format!("unknown stored verify code {:?}", row.code)))?;
    Ok(Some(Verification {
        code,
        key: Some(KeyRef {
            id: key_id,
            key_type: row.key_type,
        }),
        account_id: row.account_id,
        remaining_credits: Some(row.remaining_credits),
        cycle_end: Some(row.cycle_end),
        rate_limit: match (row.rate_limit, row.rate_remaining, row.rate_reset) {
            (Some(limit), Some(remaining), Some(reset)) => Some(RateLimitState {
                limit,
                remaining,
                reset,
            }),
            _ => None,
        },
        retry_after_secs: None,
        window_resets_in_secs: None,
    }))
}

/// Deletes remembered answers past the TTL. Run by a background task, never
/// in a request's path; until it runs, stale rows are ignored by reads and
/// replaced by claims.
pub async fn forget_expired(db: &Db, now: DateTime<Utc>) -> Result<u64, DbErr> {
    const FORGET: &str = "DELETE FROM verify_requests WHERE created_at <= $1";
    let values = vec![(now - REQUEST_ID_TTL).into()];
    let done = db
        .execute_raw(statement(db.get_database_backend(), FORGET, values))
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::binds_match;

    #[test]
    fn statements_bind_each_value_their_text_names() {
        let now = Utc::now();
        let ids = ["a", "b", "c"];
        let claims: Vec<Claim> = ids
            .iter()
            .map(|id| Claim {
                key_id: Uuid::new_v4(),
                request_id: id,
                cycle_end: now,
            })
            .collect();
        for rows in 1..=claims.len() {
            binds_match(&claim(DbBackend::Postgres, &claims[..rows], now));
        }
        let answer = Verification::not_found();
        binds_match(&record_answer(
            DbBackend::Sqlite,
            Uuid::new_v4(),
            "a",
            &answer,
            0,
            now,
        ));
        binds_match(&forget_claim(DbBackend::Postgres, Uuid::new_v4(), "a"));
    }
}
