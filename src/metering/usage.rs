//! keysUsage: the account's current cycle, its total, and each key that is
//! active (neither revoked nor expired) or has usage in the cycle, most
//! credits first, then newest first; and the account's keys as `keys`
//! lists them, with their makers. Both come from one read (`AccountKeys`,
//! `store::usage`), one query whatever the number of events, which a
//! request asking both makes once.

use crate::store::db::Db;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{Counter, Cycle, KeyStatus};
use crate::entity::api_key;
use crate::error::{Error, Result};
use crate::store::usage::{read_keys_usage, AccountUsage, KeyRollup, Maker};

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
    /// Read with the key, so that createdBy needs no read of its own.
    pub maker: Option<Maker>,
}

/// An account's keys (revoked ones too), each with its maker and its
/// rollup in the account's newest cycle, and that cycle's counter.
pub struct AccountKeys {
    account: AccountUsage,
    keys: Vec<KeyRollup>,
}

/// The read `AccountKeys::usage` (keysUsage) and `AccountKeys::listed`
/// (keys) answer from.
pub async fn account_keys(db: &Db, account_id: Uuid) -> Result<AccountKeys> {
    let (account, keys) = read_keys_usage(db, account_id)
        .await?
        .ok_or(Error::NotFound)?;
    Ok(AccountKeys { account, keys })
}

impl AccountKeys {
    /// keysUsage, as of `now`.
    pub fn usage(&self, now: DateTime<Utc>) -> KeysUsage {
        in_current_cycle(&self.account, self.keys.clone(), now)
    }

    /// The keys as `keys` lists them: newest first, revoked ones only when
    /// asked, each with its maker.
    pub fn listed(&self, include_revoked: bool) -> Vec<(api_key::Model, Option<Maker>)> {
        let mut keys: Vec<_> = self
            .keys
            .iter()
            .filter(|rollup| include_revoked || rollup.key.revoked_at.is_none())
            .map(|rollup| (rollup.key.clone(), rollup.maker.clone()))
            .collect();
        keys.sort_by_key(|(key, _)| std::cmp::Reverse((key.created_at, key.id)));
        keys
    }
}

/// The usage read, as of `now`: the account's newest counter counts only if
/// it is the current cycle's.
fn in_current_cycle(
    account: &AccountUsage,
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
        maker: rollup.maker,
    })
}
