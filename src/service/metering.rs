//! verifyKey and keysUsage: checking keys, charging credits against an
//! account's cycle, and reporting them per key.
//!
//! A free check (credits 0) is answered from one indexed read of the key,
//! its account and the account's newest counter, and records nothing, its
//! requestId included. Every charge goes to the `Charger` (`group_commit`),
//! which charges calls alone or in batches through `charges::charge`, where
//! the quota, idempotency and durability rules are kept. keysUsage reads
//! per-key rollups in one query, never the raw events.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, FromQueryResult, QueryResult, Statement, Value,
};
use uuid::Uuid;

use super::accounts;
use super::charges::ChargeRequest;
use crate::domain::{Charge, Cycle, KeyStatus, KeyType, SecretHash, VerifyCode};
use crate::entity::api_key;
use crate::error::Result;
use crate::state::{AccountPolicy, AppState};

/// How long a requestId's answer is remembered.
pub const REQUEST_ID_TTL: Duration = Duration::hours(24);

/// verifyKey's answer. Unknown keys carry nothing but the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub code: VerifyCode,
    pub key: Option<(Uuid, KeyType)>,
    pub remaining_credits: Option<i64>,
    pub cycle_end: Option<DateTime<Utc>>,
}

impl Verification {
    pub(crate) fn not_found() -> Self {
        Self {
            code: VerifyCode::NotFound,
            key: None,
            remaining_credits: None,
            cycle_end: None,
        }
    }
}

/// A key found by its secret, with what charging it needs.
#[derive(Clone)]
pub struct KeyAccount {
    pub key_id: Uuid,
    pub key_type: KeyType,
    pub revoked: bool,
    pub user_id: Uuid,
    pub account: Option<AccountCycle>,
}

#[derive(Clone)]
pub struct AccountCycle {
    pub account_id: Uuid,
    pub monthly_credits: i64,
    pub anchor: DateTime<Utc>,
    /// The account's newest counter row: (cycle start, credits used).
    pub latest_usage: Option<(DateTime<Utc>, i64)>,
}

impl AccountCycle {
    pub fn used_in(&self, cycle: &Cycle) -> i64 {
        match self.latest_usage {
            Some((start, used)) if start == cycle.start => used,
            _ => 0,
        }
    }
}

fn stmt(backend: DbBackend, sql: &str, values: Vec<Value>) -> Statement {
    Statement::from_sql_and_values(backend, sql, values)
}

/// One indexed lookup of `hashes` secrets: each key, its owner's account,
/// and the account's newest cycle counter.
pub fn find_keys_sql(hashes: usize) -> String {
    let list: Vec<String> = (1..=hashes).map(|i| format!("${i}")).collect();
    format!(
        "SELECT k.secret_hash, k.id, k.key_type, k.revoked_at IS NOT NULL AS revoked, k.user_id,
                b.id AS account_id, b.monthly_credits, b.billing_cycle_start,
                (SELECT u.cycle_start FROM billing_cycle_usage u
                  WHERE u.billing_account_id = b.id ORDER BY u.cycle_start DESC LIMIT 1) AS latest_cycle_start,
                (SELECT u.credits_used FROM billing_cycle_usage u
                  WHERE u.billing_account_id = b.id ORDER BY u.cycle_start DESC LIMIT 1) AS latest_credits_used
           FROM api_keys k
           LEFT JOIN billing_accounts b ON b.user_id = k.user_id
          WHERE k.secret_hash IN ({})",
        list.join(", ")
    )
}

/// Finds the keys of `hashes`, keyed by hash; unknown secrets are absent.
pub(crate) async fn find_keys(
    db: &impl ConnectionTrait,
    hashes: &[Vec<u8>],
) -> Result<std::collections::HashMap<Vec<u8>, KeyAccount>> {
    let values = hashes.iter().map(|h| h.clone().into()).collect();
    let rows = db
        .query_all_raw(stmt(
            db.get_database_backend(),
            &find_keys_sql(hashes.len()),
            values,
        ))
        .await?;
    let mut found = std::collections::HashMap::with_capacity(rows.len());
    for row in rows {
        let account_id: Option<Uuid> = row.try_get("", "account_id")?;
        let account = match account_id {
            None => None,
            Some(account_id) => {
                let latest_start: Option<DateTime<Utc>> = row.try_get("", "latest_cycle_start")?;
                let latest_used: Option<i64> = row.try_get("", "latest_credits_used")?;
                Some(AccountCycle {
                    account_id,
                    monthly_credits: row.try_get("", "monthly_credits")?,
                    anchor: row.try_get("", "billing_cycle_start")?,
                    latest_usage: latest_start.zip(latest_used),
                })
            }
        };
        let key = KeyAccount {
            key_id: row.try_get("", "id")?,
            key_type: row.try_get("", "key_type")?,
            revoked: row.try_get("", "revoked")?,
            user_id: row.try_get("", "user_id")?,
            account,
        };
        found.insert(row.try_get("", "secret_hash")?, key);
    }
    Ok(found)
}

/// The key's account, provisioning it now if signup could not.
pub(crate) async fn account_of(
    db: &impl ConnectionTrait,
    policy: &AccountPolicy,
    key: &mut KeyAccount,
    now: DateTime<Utc>,
) -> Result<()> {
    if key.account.is_none() {
        let account = accounts::billing_account(db, policy, key.user_id, now).await?;
        key.account = Some(AccountCycle {
            account_id: account.id,
            monthly_credits: account.monthly_credits,
            anchor: account.billing_cycle_start,
            latest_usage: None,
        });
    }
    Ok(())
}

/// Checks `secret` and, when it is valid and the credits fit in the
/// account's cycle, charges them. A free check is one read; charges go
/// through the `Charger` (see `charges`).
pub async fn verify(state: &AppState, secret: &str, charge: Charge) -> Result<Verification> {
    let hash = SecretHash::of(secret).to_vec();
    // Idempotency protects charges. A free check ignores its requestId (it
    // is validated, never stored nor looked up), so a retried check checks
    // again and sees a key revoked in between (contract v2).
    if charge.credits > 0 {
        let request = ChargeRequest { hash, charge };
        return state.charger.charge(state, request).await;
    }
    let Some(mut key) = state.lookups.key(hash).await? else {
        return Ok(Verification::not_found());
    };
    let now = state.clock.now();
    account_of(&state.db, &state.policy, &mut key, now).await?;
    let account = key.account.as_ref().expect("provisioned above");
    let cycle = Cycle::current(account.anchor, now);
    let used = account.used_in(&cycle);
    let code = if key.revoked {
        VerifyCode::Revoked
    } else if used <= account.monthly_credits {
        VerifyCode::Valid
    } else {
        VerifyCode::UsageExceeded
    };
    Ok(Verification {
        code,
        key: Some((key.key_id, key.key_type)),
        remaining_credits: Some((account.monthly_credits - used).max(0)),
        cycle_end: Some(cycle.end),
    })
}

/// The answer first given to `request_id` for this key, if within the last 24 hours.
pub(crate) async fn remembered_answer(
    conn: &impl ConnectionTrait,
    key_id: Uuid,
    request_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<Verification>> {
    const FIND: &str = "
SELECT r.code, r.remaining_credits, r.cycle_end, k.key_type
  FROM verify_requests r JOIN api_keys k ON k.id = r.api_key_id
 WHERE r.api_key_id = $1 AND r.request_id = $2 AND r.created_at > $3";
    let values = vec![
        key_id.into(),
        request_id.into(),
        (now - REQUEST_ID_TTL).into(),
    ];
    let Some(row) = conn
        .query_one_raw(stmt(conn.get_database_backend(), FIND, values))
        .await?
    else {
        return Ok(None);
    };
    let code: String = row.try_get("", "code")?;
    let code = VerifyCode::from_stored(&code)
        .ok_or_else(|| anyhow::anyhow!("unknown stored verify code {code:?}"))?;
    Ok(Some(Verification {
        code,
        key: Some((key_id, row.try_get("", "key_type")?)),
        remaining_credits: Some(row.try_get("", "remaining_credits")?),
        cycle_end: Some(row.try_get("", "cycle_end")?),
    }))
}

/// Deletes remembered answers older than 24 hours. Run by a background task,
/// never in a request's path; until it runs, stale rows are ignored by reads
/// and replaced by writes.
pub async fn forget_expired_requests(db: &DatabaseConnection, now: DateTime<Utc>) -> Result<u64> {
    const FORGET: &str = "DELETE FROM verify_requests WHERE created_at <= $1";
    let done = db
        .execute_raw(stmt(
            db.get_database_backend(),
            FORGET,
            vec![(now - REQUEST_ID_TTL).into()],
        ))
        .await?;
    Ok(done.rows_affected())
}

/// keysUsage: the account's current cycle, its total, and each key that is
/// active (neither revoked nor expired) or has usage in the cycle, most
/// credits first, then newest first.
pub struct KeysUsage {
    /// The instant it was read at, which the keys' statuses are computed for.
    pub now: DateTime<Utc>,
    pub cycle: Cycle,
    pub total_credits: i64,
    pub remaining_credits: i64,
    pub keys: Vec<KeyUsage>,
}

pub struct KeyUsage {
    pub key: api_key::Model,
    pub credits: i64,
    pub requests: i64,
}

/// Everything keysUsage needs in one indexed read: the user's account, its
/// newest cycle counter, and each key with its rollup for that newest cycle
/// (which is the current one exactly when the account has usage in it).
pub const KEYS_USAGE: &str = "
WITH account AS (
    SELECT b.id AS account_id, b.user_id, b.monthly_credits, b.billing_cycle_start,
           u.cycle_start AS latest_cycle_start, u.credits_used AS latest_credits_used
      FROM billing_accounts b
      LEFT JOIN billing_cycle_usage u ON u.billing_account_id = b.id
           AND u.cycle_start = (SELECT MAX(n.cycle_start) FROM billing_cycle_usage n
                                 WHERE n.billing_account_id = b.id)
     WHERE b.user_id = $1
)
SELECT a.account_id, a.monthly_credits, a.billing_cycle_start, a.latest_cycle_start, a.latest_credits_used,
       k.id, k.user_id, k.name, k.key_type, k.prefix, k.secret_hash, k.created_at, k.last_used_at, k.revoked_at,
       k.expires_at, k.rotated_from_id,
       r.cycle_start AS usage_cycle_start, r.credits AS cycle_credits, r.requests AS cycle_requests
  FROM account a
  LEFT JOIN api_keys k ON k.user_id = a.user_id
  LEFT JOIN api_key_cycle_usage r ON r.api_key_id = k.id AND r.cycle_start = a.latest_cycle_start";

/// The key of one `KEYS_USAGE` row with its usage in the current cycle
/// (`current`: its start, when the account has usage in it), if keysUsage
/// lists it: an active key always, a revoked or expired one only while it
/// has usage in the cycle.
fn listed_key(
    row: &QueryResult,
    current: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Option<KeyUsage>> {
    if row.try_get::<Option<Uuid>>("", "id")?.is_none() {
        return Ok(None); // an account without keys
    }
    let usage_cycle: Option<DateTime<Utc>> = row.try_get("", "usage_cycle_start")?;
    let (credits, requests) = if current.is_some() && usage_cycle == current {
        (
            row.try_get("", "cycle_credits")?,
            row.try_get("", "cycle_requests")?,
        )
    } else {
        (0, 0)
    };
    let key = api_key::Model::from_query_result(row, "")?;
    let active = KeyStatus::at(key.revoked_at, key.expires_at, now) == KeyStatus::Active;
    Ok((active || requests > 0).then_some(KeyUsage {
        key,
        credits,
        requests,
    }))
}

/// One query, whatever the number of events (see `KEYS_USAGE`); a second
/// only when the account has to be provisioned first.
pub async fn keys_usage(state: &AppState, user_id: Uuid) -> Result<KeysUsage> {
    let db = &state.db;
    let now = state.clock.now();
    let read = || {
        db.query_all_raw(stmt(
            db.get_database_backend(),
            KEYS_USAGE,
            vec![user_id.into()],
        ))
    };
    let mut rows = read().await?;
    if rows.is_empty() {
        accounts::billing_account(db, &state.policy, user_id, now).await?;
        rows = read().await?;
    }
    let first = rows
        .first()
        .ok_or_else(|| anyhow::anyhow!("billing account of {user_id} missing"))?;
    let monthly_credits: i64 = first.try_get("", "monthly_credits")?;
    let cycle = Cycle::current(first.try_get("", "billing_cycle_start")?, now);
    let latest: Option<DateTime<Utc>> = first.try_get("", "latest_cycle_start")?;
    let in_cycle = latest == Some(cycle.start);
    let total_credits = match in_cycle {
        true => first
            .try_get::<Option<i64>>("", "latest_credits_used")?
            .unwrap_or(0),
        false => 0,
    };

    let current = in_cycle.then_some(cycle.start);
    let mut keys = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(usage) = listed_key(row, current, now)? {
            keys.push(usage);
        }
    }
    // Most credits first, then newest first.
    keys.sort_by(|a, b| {
        (b.credits, b.key.created_at, b.key.id).cmp(&(a.credits, a.key.created_at, a.key.id))
    });
    Ok(KeysUsage {
        now,
        cycle,
        total_credits,
        remaining_credits: (monthly_credits - total_credits).max(0),
        keys,
    })
}
