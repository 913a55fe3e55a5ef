//! Finding keys by their secret's hash: the key, its account and that
//! account's newest counter, and a limited key's window count, in one
//! indexed read.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use uuid::Uuid;

use crate::domain::rate_limit::WindowCount;
use crate::domain::{AccountPricing, Counter, KeyAccount, KeyType, RateLimit};

/// One indexed lookup of `hashes` secrets: each key (with its rate limit),
/// its account, the account's newest cycle counter and the key's window.
pub fn find_keys_sql(hashes: usize) -> String {
    let list: Vec<String> = (1..=hashes).map(|i| format!("${i}")).collect();
    format!(
        "SELECT k.secret_hash, k.id, k.key_type, k.revoked_at IS NOT NULL AS revoked, k.expires_at,
                k.rate_limit, k.rate_window_secs, w.window_start, w.used AS window_used,
                b.id AS account_id, b.monthly_credits, b.billing_cycle_start,
                (SELECT u.cycle_start FROM billing_cycle_usage u
                  WHERE u.billing_account_id = b.id ORDER BY u.cycle_start DESC LIMIT 1) AS latest_cycle_start,
                (SELECT u.credits_used FROM billing_cycle_usage u
                  WHERE u.billing_account_id = b.id ORDER BY u.cycle_start DESC LIMIT 1) AS latest_credits_used
           FROM api_keys k
           LEFT JOIN billing_accounts b ON b.id = k.account_id
           LEFT JOIN key_rate_windows w ON w.api_key_id = k.id
          WHERE k.secret_hash IN ({})",
        list.join(", ")
    )
}

#[derive(FromQueryResult)]
struct KeyRow {
    secret_hash: Vec<u8>,
    id: Uuid,
    key_type: KeyType,
    revoked: bool,
    expires_at: Option<DateTime<Utc>>,
    rate_limit: Option<i32>,
    rate_window_secs: Option<i32>,
    window_start: Option<DateTime<Utc>>,
    window_used: Option<i64>,
    account_id: Option<Uuid>,
    monthly_credits: Option<i64>,
    billing_cycle_start: Option<DateTime<Utc>>,
    latest_cycle_start: Option<DateTime<Utc>>,
    latest_credits_used: Option<i64>,
}

impl KeyRow {
    fn into_key(self) -> (Vec<u8>, KeyAccount) {
        let account = match (
            self.account_id,
            self.monthly_credits,
            self.billing_cycle_start,
        ) {
            (Some(account_id), Some(monthly_credits), Some(anchor)) => Some(AccountPricing {
                account_id,
                monthly_credits,
                anchor,
                latest: self
                    .latest_cycle_start
                    .zip(self.latest_credits_used)
                    .map(|(cycle_start, used)| Counter { cycle_start, used }),
            }),
            _ => None,
        };
        let key = KeyAccount {
            key_id: self.id,
            key_type: self.key_type,
            revoked: self.revoked,
            expires_at: self.expires_at,
            rate_limit: RateLimit::from_stored(self.rate_limit, self.rate_window_secs),
            window: self
                .window_start
                .zip(self.window_used)
                .map(|(start, used)| WindowCount { start, used }),
            account,
        };
        (self.secret_hash, key)
    }
}

/// The keys of `hashes`, by hash; unknown secrets are absent.
pub async fn find_keys(
    conn: &impl ConnectionTrait,
    hashes: &[Vec<u8>],
) -> Result<HashMap<Vec<u8>, KeyAccount>, DbErr> {
    let values = hashes.iter().map(|h| h.clone().into()).collect();
    let sql = find_keys_sql(hashes.len());
    let statement = super::statement(conn.get_database_backend(), &sql, values);
    let rows = KeyRow::find_by_statement(statement).all(conn).await?;
    Ok(rows.into_iter().map(KeyRow::into_key).collect())
}
