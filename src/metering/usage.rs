//! keysUsage: the account's current cycle, its total, and each key that is
//! active (neither revoked nor expired) or has usage in the cycle, most
//! credits first, then newest first. One query whatever the number of
//! events (`store::usage`); a second only when the account has to be
//! provisioned first.

use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::domain::{Counter, Cycle, KeyStatus};
use crate::entity::api_key;
use crate::error::{Error, Result};
use crate::store::usage::{read_keys_usage, AccountUsage, KeyRollup};

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

pub async fn keys_usage(
    db: &DatabaseConnection,
    account_id: Uuid,
    now: DateTime<Utc>,
) -> Result<KeysUsage> {
    let (account, rollups) = read_keys_usage(db, account_id)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(in_current_cycle(account, rollups, now))
}

/// The usage read, as of `now`: the account's newest counter counts only if
/// it is the current cycle's.
fn in_current_cycle(
    account: AccountUsage,
    rollups: Vec<KeyRollup>,
    now: DateTime<Utc>,
) -> KeysUsage {
    let cycle = Cycle::current(account.billing_cycle_start, now);
    let current = (account.latest_cycle_start == Some(cycle.start)).then_some(cycle.start);
    let total_credits = Counter::used_in(account.newest_counter(), &cycle);
    let mut keys: Vec<KeyUsage> = rollups
        .into_iter()
        .filter_map(|rollup| listed(rollup, current, now))
        .collect();
    keys.sort_by(|a, b| {
        (b.credits, b.key.created_at, b.key.id).cmp(&(a.credits, a.key.created_at, a.key.id))
    });
    KeysUsage {
        now,
        cycle,
        total_credits,
        remaining_credits: (account.monthly_credits - total_credits).max(0),
        keys,
    }
}

/// A key as keysUsage lists it: an active key always, a revoked or expired
/// one only while it has usage in the current cycle.
fn listed(
    rollup: KeyRollup,
    current: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<KeyUsage> {
    let (credits, requests) = match current {
        Some(start) if rollup.cycle_start == Some(start) => (rollup.credits, rollup.requests),
        _ => (0, 0),
    };
    let key = rollup.key;
    let active = KeyStatus::at(key.revoked_at, key.expires_at, now) == KeyStatus::Active;
    (active || requests > 0).then_some(KeyUsage {
        key,
        credits,
        requests,
    })
}
