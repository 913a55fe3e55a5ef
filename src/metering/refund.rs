//! refundUsage: gives back one charged call's credits, found by its key and
//! requestId, so that a gateway bills only the calls its upstream served.
//!
//! One short transaction: mark the call's requestId row refunded (a
//! conditional UPDATE: of racing refunds, in one process or several,
//! exactly one gets the row), then subtract its credits and its request
//! from the counter and the rollups it was added to, in the buckets it was
//! charged in. The row stays, so a retry of the call's requestId still
//! answers its first answer and charges nothing. Locks are taken in the
//! charging paths' order (requestId row, then counter and rollups), so a
//! refund and a charge queue rather than deadlock.

use chrono::{DateTime, Utc};
use sea_orm::{FromQueryResult, TransactionTrait};

use crate::domain::{Charge, Cycle, Refund, RefundCode};
use crate::error::Result;
use crate::service::lookups::Lookups;
use crate::store::db::Db;
use crate::store::refunds::{self, ChargedCall, CounterAfter, RefundedCharge, TakeBack};

pub async fn refund(
    db: &Db,
    lookups: &Lookups,
    hash: Vec<u8>,
    request_id: &str,
    now: DateTime<Utc>,
) -> Result<Refund> {
    Charge::check_request_id(request_id)?;
    let Some(key) = lookups.key(hash).await? else {
        return Ok(unchanged(RefundCode::NotFound, None));
    };
    // A key whose account was never provisioned was never charged.
    let Some(account) = key.account.clone() else {
        return Ok(unchanged(RefundCode::NotFound, None));
    };
    // What the key's lookup read, for the answers that change nothing.
    let used_now = account.used_in(&Cycle::current(account.anchor, now));
    let remaining_now = Some((account.monthly_credits - used_now).max(0));
    let backend = db.get_database_backend();
    let txn = db.begin().await?;
    let marked = RefundedCharge::find_by_statement(refunds::mark_refunded(
        backend, key.key_id, request_id, now,
    ))
    .one(&txn)
    .await?;
    let Some(charge) = marked else {
        drop(txn);
        let found = ChargedCall::find_by_statement(refunds::charged_call(
            backend, key.key_id, request_id, now,
        ))
        .one(db)
        .await?;
        let code = match found {
            Some(call) if call.refunded => RefundCode::AlreadyRefunded,
            _ => RefundCode::NotFound,
        };
        return Ok(unchanged(code, remaining_now));
    };
    if charge.cycle_end <= now {
        // Rolled back: the mark goes with it.
        return Ok(unchanged(RefundCode::CycleEnded, remaining_now));
    }
    let take_back = TakeBack {
        account_id: account.account_id,
        key_id: key.key_id,
        cycle_start: Cycle::current(account.anchor, charge.created_at).start,
        charged_at: charge.created_at,
        credits: charge.credits,
    };
    let mut used = None;
    for statement in take_back.statements(backend) {
        if let Some(counter) = CounterAfter::find_by_statement(statement).one(&txn).await? {
            used = Some(counter.credits_used);
        }
    }
    let used = used.ok_or_else(|| anyhow::anyhow!("a refunded charge's counter is missing"))?;
    txn.commit().await?;
    Ok(Refund {
        code: RefundCode::Refunded,
        credits: charge.credits,
        remaining_credits: Some((account.monthly_credits - used).max(0)),
    })
}

fn unchanged(code: RefundCode, remaining_credits: Option<i64>) -> Refund {
    Refund {
        code,
        credits: 0,
        remaining_credits,
    }
}
