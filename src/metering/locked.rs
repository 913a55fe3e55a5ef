//! The locked path: every call with a requestId, every call on SQLite, every
//! free check of a limited key, and whatever the one statement refused. One
//! transaction, four steps: `claim` the requestIds (their primary key
//! decides races, in key order), `lock` the counters being charged (in
//! account order, so concurrent batches queue rather than deadlock) and
//! then the windows of their limited keys, `admit` calls in arrival order
//! while they fit, `record` the writes, the windows' slots and the claimed
//! answers; then COMMIT and answer.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, FromQueryResult, TransactionTrait};
use uuid::Uuid;

use super::call::Call;
use super::failures::{Charged, Failure};
use super::writes;
use crate::domain::admission::{admit_in_order, CounterKey, Outcome};
use crate::domain::{Verification, VerifyCode};
use crate::store::counters::{lock_counters, record_charges, ChargeRows, LockedCounter};
use crate::store::db::Db;
use crate::store::rate_windows::{self, LockedWindow};
use crate::store::requests::{self, Claim, Claimed};

/// Each call's answer so far, by its place in the batch.
type Settled = Vec<Option<Verification>>;

/// Charges `calls` in one transaction holding their counters' locks, and
/// answers each, in order.
pub async fn run(db: &Db, calls: &[Call<'_>], now: DateTime<Utc>) -> Charged<Vec<Verification>> {
    if calls.is_empty() {
        return Ok(Vec::new());
    }
    // Any failure before the commit drops `txn`, which rolls it back.
    let txn = db
        .begin()
        .await
        .map_err(Failure::before_commit("beginning the transaction"))?;
    let mut settled: Settled = vec![None; calls.len()];
    let claims = claim(&txn, calls, &mut settled, now).await?;
    // Neither answered by a claim nor answered as an earlier call with its
    // requestId: what the locks and admission are for.
    let waiting: Vec<usize> = (0..calls.len())
        .filter(|&c| settled[c].is_none() && !claims.is_repeat(c))
        .collect();
    let counters = lock(&txn, calls, &waiting).await?;
    let windows = lock_windows(&txn, calls, &waiting).await?;
    let admitted = admit(calls, &waiting, &mut settled, &counters, &windows);
    let writes = writes::rows_of(admitted.charged.iter().map(|&c| &calls[c]));
    let slots = Slots {
        windows: &windows,
        taken: &admitted.windows,
    };
    record(
        &txn, writes, &counters, slots, calls, &claims, &settled, now,
    )
    .await?;
    txn.commit()
        .await
        .map_err(Failure::at_commit("committing"))?;
    for &(repeat, first) in &claims.repeats {
        settled[repeat] = settled[first].clone();
    }
    Ok(settled
        .into_iter()
        .map(|answer| answer.expect("claim, admit and repeats answer every call"))
        .collect())
}

/// What claiming the batch's requestIds decided.
#[derive(Default)]
struct Claims {
    /// Calls whose (key, requestId) this transaction claimed: their answer
    /// is recorded with the charge.
    fresh: Vec<usize>,
    /// (call, first call with the same key and requestId in the batch):
    /// answered as the first one at the end.
    repeats: Vec<(usize, usize)>,
}

impl Claims {
    fn is_repeat(&self, call: usize) -> bool {
        self.repeats.iter().any(|&(repeat, _)| repeat == call)
    }
}

/// Claims each distinct (key, requestId), in key order. A call whose id was
/// answered before, by this process or another, gets that answer now.
async fn claim(
    txn: &DatabaseTransaction,
    calls: &[Call<'_>],
    settled: &mut Settled,
    now: DateTime<Utc>,
) -> Charged<Claims> {
    let mut claims = Claims::default();
    let mut first_of: HashMap<(Uuid, &str), usize> = HashMap::new();
    for (c, call) in calls.iter().enumerate() {
        let Some(id) = call.request_id() else {
            continue;
        };
        match first_of.get(&(call.key.id, id)) {
            Some(&first) => claims.repeats.push((c, first)),
            None => _ = first_of.insert((call.key.id, id), c),
        }
    }
    let mut wanted: Vec<usize> = first_of.into_values().collect();
    if wanted.is_empty() {
        return Ok(claims);
    }
    wanted.sort_by_key(|&c| (calls[c].key.id, calls[c].request_id()));
    let claimed = insert_claims(txn, calls, &wanted, now).await?;
    for c in wanted {
        let call = &calls[c];
        let id = call.request_id().unwrap_or_default();
        if claimed.contains(&(call.key.id, id.to_owned())) {
            claims.fresh.push(c);
            continue;
        }
        // Answered before: committed, so readable now.
        let remembered = requests::remembered_answer(txn, call.key.id, id, now)
            .await
            .map_err(Failure::before_commit("reading an answered requestId"))?
            .ok_or_else(|| anyhow::anyhow!("a requestId taken but unreadable"))
            .map_err(Failure::before_commit("reading an answered requestId"))?;
        settled[c] = Some(remembered);
    }
    Ok(claims)
}

/// Inserts the claims of `wanted`; returns those this transaction claimed.
async fn insert_claims(
    txn: &DatabaseTransaction,
    calls: &[Call<'_>],
    wanted: &[usize],
    now: DateTime<Utc>,
) -> Charged<BTreeSet<(Uuid, String)>> {
    let claims: Vec<Claim> = wanted
        .iter()
        .map(|&c| Claim {
            key_id: calls[c].key.id,
            request_id: calls[c].request_id().unwrap_or_default(),
            cycle_end: calls[c].cycle.end,
        })
        .collect();
    let statement = requests::claim(txn.get_database_backend(), &claims, now);
    let rows = Claimed::find_by_statement(statement)
        .all(txn)
        .await
        .map_err(Failure::before_commit("claiming requestIds"))?;
    Ok(rows
        .into_iter()
        .map(|row| (row.api_key_id, row.request_id))
        .collect())
}

/// Locks and reads the counters of the `waiting` calls, in account order.
async fn lock(
    txn: &DatabaseTransaction,
    calls: &[Call<'_>],
    waiting: &[usize],
) -> Charged<BTreeMap<CounterKey, i64>> {
    let counters: BTreeSet<CounterKey> = waiting.iter().map(|&c| calls[c].counter()).collect();
    if counters.is_empty() {
        return Ok(BTreeMap::new());
    }
    let statement = lock_counters(txn.get_database_backend(), &counters);
    let locked = LockedCounter::find_by_statement(statement)
        .all(txn)
        .await
        .map_err(Failure::before_commit("locking counters"))?;
    Ok(locked
        .into_iter()
        .map(|row| {
            let counter = CounterKey {
                account_id: row.billing_account_id,
                cycle_start: row.cycle_start,
            };
            (counter, row.credits_used)
        })
        .collect())
}

/// Locks and reads the windows of the limited keys of the `waiting` calls,
/// in key order, after their counters: every charge of a key takes
/// its account's counter first, so two batches never wait on each other's
/// windows. Each key's window, as locked, with the calls the current
/// window (the batch's) has admitted.
async fn lock_windows(
    txn: &DatabaseTransaction,
    calls: &[Call<'_>],
    waiting: &[usize],
) -> Charged<HashMap<Uuid, LockedKeyWindow>> {
    let keys: BTreeMap<Uuid, DateTime<Utc>> = waiting
        .iter()
        .filter_map(|&c| Some((calls[c].key.id, calls[c].rate?.window.start)))
        .collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let statement = rate_windows::lock_windows(txn.get_database_backend(), &keys);
    let locked = LockedWindow::find_by_statement(statement)
        .all(txn)
        .await
        .map_err(Failure::before_commit("locking rate limit windows"))?;
    Ok(locked
        .into_iter()
        .filter_map(|row| {
            let start = *keys.get(&row.api_key_id)?;
            // A row of an earlier window counts nothing in the batch's.
            let used = if row.window_start == start {
                row.used
            } else {
                0
            };
            Some((row.api_key_id, LockedKeyWindow { start, used }))
        })
        .collect())
}

/// A limited key's window under its lock: the batch's window and the calls
/// it had admitted.
#[derive(Clone, Copy)]
struct LockedKeyWindow {
    start: DateTime<Utc>,
    used: i64,
}

/// What admission decided beyond the answers.
struct Admitted {
    /// The calls charged (credits above 0).
    charged: Vec<usize>,
    /// Each limited key's window after the batch: the calls it admitted.
    windows: HashMap<Uuid, i64>,
}

/// Admits the `waiting` calls in arrival order while they fit, and answers
/// each. `counters` and `windows` keep the values as locked, for `record`.
fn admit(
    calls: &[Call<'_>],
    waiting: &[usize],
    settled: &mut Settled,
    counters: &BTreeMap<CounterKey, i64>,
    windows: &HashMap<Uuid, LockedKeyWindow>,
) -> Admitted {
    let asks: Vec<_> = waiting.iter().map(|&c| calls[c].ask()).collect();
    let mut used = counters.clone();
    let mut taken: HashMap<Uuid, i64> = windows
        .iter()
        .map(|(key, window)| (*key, window.used))
        .collect();
    let admissions = admit_in_order(&mut used, &mut taken, &asks);
    let mut charged = Vec::new();
    for (&c, admission) in waiting.iter().zip(admissions) {
        let code = match admission.outcome {
            Outcome::Admitted => {
                if calls[c].credits() > 0 {
                    charged.push(c);
                }
                VerifyCode::Valid
            }
            Outcome::RateLimited => VerifyCode::RateLimited,
            Outcome::Exceeded => VerifyCode::UsageExceeded,
        };
        settled[c] = Some(calls[c].answer_in_window(code, admission.used, admission.window));
    }
    Admitted {
        charged,
        windows: taken,
    }
}

/// The windows' slots a batch took: each key's window as locked, and the
/// calls it admitted after the batch.
struct Slots<'a> {
    windows: &'a HashMap<Uuid, LockedKeyWindow>,
    taken: &'a HashMap<Uuid, i64>,
}

impl Slots<'_> {
    /// The windows that moved, as (key, window start, calls admitted).
    fn moved(&self) -> Vec<(Uuid, DateTime<Utc>, i64)> {
        let mut moved: Vec<_> = self
            .taken
            .iter()
            .filter_map(|(key, &used)| {
                let locked = self.windows.get(key)?;
                (used != locked.used).then_some((*key, locked.start, used))
            })
            .collect();
        moved.sort();
        moved
    }
}

/// Writes the charges, the windows' slots and the answers of the fresh
/// claims; a RATE_LIMITED call's claim is given up, so its requestId is
/// decided afresh when retried.
#[allow(clippy::too_many_arguments)]
async fn record(
    txn: &DatabaseTransaction,
    writes: ChargeRows,
    locked: &BTreeMap<CounterKey, i64>,
    slots: Slots<'_>,
    calls: &[Call<'_>],
    claims: &Claims,
    settled: &Settled,
    now: DateTime<Utc>,
) -> Charged<()> {
    let backend = txn.get_database_backend();
    let mut statements = record_charges(&writes, locked, backend, now);
    let moved = slots.moved();
    if !moved.is_empty() {
        statements.push(rate_windows::set_windows(backend, &moved));
    }
    for &c in &claims.fresh {
        let Some(answer) = &settled[c] else { continue };
        let (key, id) = (calls[c].key.id, calls[c].request_id().unwrap_or_default());
        statements.push(match answer.code {
            VerifyCode::RateLimited => requests::forget_claim(backend, key, id),
            VerifyCode::Valid => {
                requests::record_answer(backend, key, id, answer, calls[c].credits(), now)
            }
            _ => requests::record_answer(backend, key, id, answer, 0, now),
        });
    }
    for statement in statements {
        txn.execute_raw(statement)
            .await
            .map_err(Failure::before_commit("recording charges"))?;
    }
    Ok(())
}
