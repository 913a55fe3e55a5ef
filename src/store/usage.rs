//! keysUsage's and keys' read: the account, its newest counter and each key
//! with its maker and its rollup for that counter's cycle, in one indexed
//! query whatever the number of events; and the newest counter alone, for
//! operators.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult, QueryResult};
use uuid::Uuid;

use super::statement;
use crate::domain::Counter;
use crate::entity::api_key;

/// Everything keysUsage and keys need in one indexed read: the account, its
/// newest cycle counter, and each key (revoked ones too) with its maker's
/// id and email and its rollup for that newest cycle (which is the current
/// one exactly when the account has usage in it).
pub const KEYS_USAGE: &str = "
WITH account AS (
    SELECT b.id AS account_id, b.monthly_credits, b.billing_cycle_start,
           u.cycle_start AS latest_cycle_start, u.credits_used AS latest_credits_used
      FROM billing_accounts b
      LEFT JOIN billing_cycle_usage u ON u.billing_account_id = b.id
           AND u.cycle_start = (SELECT MAX(n.cycle_start) FROM billing_cycle_usage n
                                 WHERE n.billing_account_id = b.id)
     WHERE b.id = $1
)
SELECT a.account_id, a.monthly_credits, a.billing_cycle_start, a.latest_cycle_start, a.latest_credits_used,
       k.id, k.account_id, k.created_by, k.name, k.key_type, k.prefix, k.secret_hash, k.created_at, k.last_used_at, k.revoked_at,
       k.expires_at, k.rotated_from_id, k.rate_limit, k.rate_window_secs,
       r.cycle_start AS usage_cycle_start, r.credits AS cycle_credits, r.requests AS cycle_requests,
       m.id AS maker_id, m.email AS maker_email
  FROM account a
  LEFT JOIN api_keys k ON k.account_id = a.account_id
  LEFT JOIN api_key_cycle_usage r ON r.api_key_id = k.id AND r.cycle_start = a.latest_cycle_start
  LEFT JOIN users m ON m.id = k.created_by";

/// The account's part of a `KEYS_USAGE` row (the same on every row).
#[derive(FromQueryResult, Debug)]
pub struct AccountUsage {
    pub monthly_credits: i64,
    pub billing_cycle_start: DateTime<Utc>,
    pub latest_cycle_start: Option<DateTime<Utc>>,
    pub latest_credits_used: Option<i64>,
}

impl AccountUsage {
    pub fn newest_counter(&self) -> Option<Counter> {
        let (cycle_start, used) = self.latest_cycle_start.zip(self.latest_credits_used)?;
        Some(Counter { cycle_start, used })
    }
}

/// A key's part of a `KEYS_USAGE` row: its rollup for the account's newest cycle.
#[derive(FromQueryResult, Debug)]
struct RollupRow {
    id: Option<Uuid>,
    usage_cycle_start: Option<DateTime<Utc>>,
    cycle_credits: Option<i64>,
    cycle_requests: Option<i64>,
    maker_id: Option<Uuid>,
    maker_email: Option<String>,
}

/// A key with its rollup for the cycle starting at `cycle_start`, if any,
/// and its maker (none once the maker's user is gone).
#[derive(Clone)]
pub struct KeyRollup {
    pub key: api_key::Model,
    pub cycle_start: Option<DateTime<Utc>>,
    pub credits: i64,
    pub requests: i64,
    pub maker: Option<Maker>,
}

/// Who made a key: the user's id and email, nothing else of the user.
#[derive(Clone, Debug)]
pub struct Maker {
    pub id: Uuid,
    pub email: String,
}

/// The account and its keys as `KEYS_USAGE` reads them; `None` when there
/// is no such account.
pub async fn read_keys_usage(
    conn: &impl ConnectionTrait,
    account_id: Uuid,
) -> Result<Option<(AccountUsage, Vec<KeyRollup>)>, DbErr> {
    let sql = statement(
        conn.get_database_backend(),
        KEYS_USAGE,
        vec![account_id.into()],
    );
    let rows = conn.query_all_raw(sql).await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let account = AccountUsage::from_query_result(first, "")?;
    let mut keys = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(key) = key_rollup(row)? {
            keys.push(key);
        }
    }
    Ok(Some((account, keys)))
}

/// The row's key and rollup; `None` on the one row of an account without keys.
fn key_rollup(row: &QueryResult) -> Result<Option<KeyRollup>, DbErr> {
    let rollup = RollupRow::from_query_result(row, "")?;
    if rollup.id.is_none() {
        return Ok(None);
    }
    let maker = match (rollup.maker_id, rollup.maker_email) {
        (Some(id), Some(email)) => Some(Maker { id, email }),
        _ => None,
    };
    Ok(Some(KeyRollup {
        key: api_key::Model::from_query_result(row, "")?,
        cycle_start: rollup.usage_cycle_start,
        credits: rollup.cycle_credits.unwrap_or(0),
        requests: rollup.cycle_requests.unwrap_or(0),
        maker,
    }))
}

/// An account's newest counter, whatever its cycle (`Counter::used_in`
/// tells whether it is the current one).
pub async fn newest_counter(
    conn: &impl ConnectionTrait,
    account_id: Uuid,
) -> Result<Option<Counter>, DbErr> {
    const NEWEST: &str = "SELECT cycle_start, credits_used FROM billing_cycle_usage
                           WHERE billing_account_id = $1 ORDER BY cycle_start DESC LIMIT 1";
    let sql = statement(conn.get_database_backend(), NEWEST, vec![account_id.into()]);
    let Some(row) = conn.query_one_raw(sql).await? else {
        return Ok(None);
    };
    Ok(Some(Counter {
        cycle_start: row.try_get("", "cycle_start")?,
        used: row.try_get("", "credits_used")?,
    }))
}
