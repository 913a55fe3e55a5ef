//! requestId idempotency, in one place: how long an answer is remembered,
//! the claim that decides which call of several with one id is charged,
//! the answer it records, reading a remembered answer, taking a charge back
//! (refunds), and forgetting old ones. The locked charging path
//! (`metering::locked`) writes claims and answers; `metering::refund` marks
//! refunds.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, FromQueryResult};
use uuid::Uuid;

use super::{placeholders, statement};
use crate::domain::{KeyRef, KeyType, RateLimitState, Verification, VerifyCode};

/// How long a requestId's answer is remembered.
pub const REQUEST_ID_TTL: Duration = Duration::hours(24);

/// Claims (key, requestId) pairs, returning those claimed; the last
/// parameter is the instant before which an old answer may be replaced.
pub fn claim_request_ids(rows: usize) -> String {
    format!(
        "INSERT INTO verify_requests (api_key_id, request_id, created_at, code, remaining_credits, cycle_end)
         VALUES {}
         ON CONFLICT (api_key_id, request_id) DO UPDATE
            SET created_at = excluded.created_at, code = excluded.code,
                remaining_credits = excluded.remaining_credits, cycle_end = excluded.cycle_end,
                credits = 0, refunded_at = NULL,
                rate_limit = NULL, rate_remaining = NULL, rate_reset = NULL
          WHERE verify_requests.created_at <= ${}
         RETURNING api_key_id, request_id",
        placeholders(rows, 6, 1),
        rows * 6 + 1
    )
}

/// A claimed (key, requestId), as `claim_request_ids` returns it.
#[derive(FromQueryResult, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Claimed {
    pub api_key_id: Uuid,
    pub request_id: String,
}

/// Records the answer of a claimed (key, requestId): $1 key, $2 id, $3
/// code, $4 remaining credits, $5 cycle end, $6 the credits charged (0
/// unless VALID), which a refund gives back, then the key's rate limit
/// state: $7 limit, $8 remaining, $9 reset (NULL without a limit).
pub const ANSWER_REQUEST_ID: &str =
    "UPDATE verify_requests SET code = $3, remaining_credits = $4, cycle_end = $5, credits = $6,
            rate_limit = $7, rate_remaining = $8, rate_reset = $9
            WHERE api_key_id = $1 AND request_id = $2";

/// Gives up a claim: a RATE_LIMITED call is not remembered, so a retry of
/// its requestId is decided afresh. $1 key, $2 id.
pub const FORGET_CLAIM: &str =
    "DELETE FROM verify_requests WHERE api_key_id = $1 AND request_id = $2";

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
pub async fn forget_expired(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<u64, DbErr> {
    const FORGET: &str = "DELETE FROM verify_requests WHERE created_at <= $1";
    let values = vec![(now - REQUEST_ID_TTL).into()];
    let done = db
        .execute_raw(statement(db.get_database_backend(), FORGET, values))
        .await?;
    Ok(done.rows_affected())
}
