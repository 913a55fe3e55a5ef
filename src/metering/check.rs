//! The free check (credits 0): one coalesced lookup of the key, its
//! account and the account's newest counter, and an answer. It records
//! nothing, its requestId included: idempotency protects charges, and a
//! retried check simply checks again (contract v2). A check of a key with
//! a rate limit that would be answered VALID takes a slot of its window,
//! which is a write: it goes on to be charged (0 credits) the locked way.

use chrono::{DateTime, Utc};

use super::account::priced_account;
use crate::domain::{Cycle, Verification, VerifyCode};
use crate::error::Result;
use crate::service::lookups::Lookups;

/// What a free check decided.
pub enum Checked {
    Answered(Verification),
    /// The key is limited and usable: a slot must be taken.
    TakesASlot,
}

pub async fn check(lookups: &Lookups, hash: Vec<u8>, now: DateTime<Utc>) -> Result<Checked> {
    let Some(key) = lookups.key(hash).await? else {
        return Ok(Checked::Answered(Verification::not_found()));
    };
    let rate = key.rate_at(now);
    if rate.is_some() && key.refusal_at(now).is_none() {
        return Ok(Checked::TakesASlot);
    }
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
    let answer = Verification::for_key(code, key.key_ref(), &account, used, &cycle)
        .with_rate_limit(rate.map(|rate| rate.state(rate.used_before)));
    Ok(Checked::Answered(answer))
}
