//! The free check (credits 0): one coalesced lookup of the key, its
//! account and the account's newest counter, and an answer. It records
//! nothing, its requestId included: idempotency protects charges, and a
//! retried check simply checks again (contract v2).

use chrono::{DateTime, Utc};

use super::account::priced_account;
use crate::domain::{Cycle, Verification, VerifyCode};
use crate::error::Result;
use crate::service::lookups::Lookups;

pub async fn check(lookups: &Lookups, hash: Vec<u8>, now: DateTime<Utc>) -> Result<Verification> {
    let Some(key) = lookups.key(hash).await? else {
        return Ok(Verification::not_found());
    };
    let account = priced_account(&key)?;
    let cycle = Cycle::current(account.anchor, now);
    let used = account.used_in(&cycle);
    let code = if let Some(refusal) = key.refusal_at(now) {
        refusal
    } else if used <= account.monthly_credits {
        VerifyCode::Valid
    } else {
        VerifyCode::UsageExceeded
    };
    Ok(Verification::for_key(
        code,
        key.key_ref(),
        &account,
        used,
        &cycle,
    ))
}
