//! Charging verifyKey calls, several in one transaction.
//!
//! A batch costs a fixed number of round trips, whatever its size, and on
//! PostgreSQL the usual call costs one. Calls without a requestId on keys
//! this process has read before (`KnownKeys`), whose account's credits fit
//! all of them as last seen, are charged by one statement in its own
//! transaction (`sql::charge_at_once`): a check that each key is still
//! active and its account as read, a conditional add to each account's
//! counter, and the events, rollups and lastUsedAt of the accounts it added
//! to. Every other call, and any the statement refused, has its key read
//! (one read for the batch); then the calls without a requestId that fit as
//! read go to the same statement. Whatever it still does not charge (the
//! counter moved and they no longer all fit), every call with a requestId,
//! and every call on SQLite take the locked path: BEGIN, the claim of the
//! requestIds, the lock of the counters, the writes, COMMIT.
//! A batch of one is the per-request mode. Each guarantee of a single
//! charge holds for every call of a batch:
//! - **Exact quota.** The one statement adds to a counter only if the
//!   whole sum fits, checked against the row it locks. The locked path
//!   locks the counters in account order (so concurrent batches, in this
//!   process or another, queue rather than deadlock), then admits calls in
//!   arrival order while they fit: a batch that would cross the limit admits
//!   exactly the calls that fit and records nothing for the others.
//! - **Idempotent retries.** RequestIds are claimed first, in key order, by
//!   one insert whose primary key decides races with other batches; a call
//!   whose id is already answered gets that answer and is not charged, and a
//!   repeat of an id within the batch gets the first one's answer.
//! - **Durable before answered.** Answers are returned after the commit.
//! - **Memory is never trusted.** A key known to this process is charged
//!   only if the charging statement finds it still active and its account
//!   still priced as remembered; otherwise it is read again.
//! - **A failure is its call's alone.** Each call is answered the truth
//!   about its own charge, whatever else its batch holds: the calls of a
//!   phase that committed keep their answers when a later phase fails, and
//!   a phase that failed (recording nothing) is charged again in halves
//!   until the call that cannot be charged fails on its own (`isolating`;
//!   `failures` says which failures are retried and the one case, a
//!   connection lost during a commit, whose outcome nobody can know).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait, Value,
};
use uuid::Uuid;

use super::failures::Failure;
use super::known_keys::KnownKeys;
use super::metering::{self, KeyAccount, Verification, REQUEST_ID_TTL};
use crate::domain::{Charge, Cycle, KeyType, VerifyCode};
use crate::error::Result;
use crate::state::AccountPolicy;

/// A verifyKey call to charge: the secret's hash and what the call asked.
#[derive(Debug, Clone)]
pub struct ChargeRequest {
    pub hash: Vec<u8>,
    pub charge: Charge,
}

/// A call on a known, active key, ready to be admitted.
#[derive(Clone)]
struct Call<'a> {
    index: usize,
    key_id: Uuid,
    key_type: KeyType,
    account_id: Uuid,
    monthly_credits: i64,
    anchor: DateTime<Utc>,
    cycle: Cycle,
    /// Credits used in the cycle when the key was read.
    used_before: i64,
    hash: &'a [u8],
    charge: &'a Charge,
}

impl<'a> Call<'a> {
    /// The call `index` of a batch, on `key`; `None` if it has no account yet.
    fn of(
        index: usize,
        request: &'a ChargeRequest,
        key: &KeyAccount,
        now: DateTime<Utc>,
    ) -> Option<Self> {
        let account = key.account.as_ref()?;
        let cycle = Cycle::current(account.anchor, now);
        Some(Call {
            index,
            key_id: key.key_id,
            key_type: key.key_type,
            account_id: account.account_id,
            monthly_credits: account.monthly_credits,
            anchor: account.anchor,
            used_before: account.used_in(&cycle),
            cycle,
            hash: &request.hash,
            charge: &request.charge,
        })
    }

    fn answer(&self, code: VerifyCode, used: i64) -> Verification {
        Verification {
            code,
            key: Some((self.key_id, self.key_type)),
            remaining_credits: Some((self.monthly_credits - used).max(0)),
            cycle_end: Some(self.cycle.end),
        }
    }

    fn request_id(&self) -> Option<&str> {
        self.charge.request_id.as_deref()
    }
}

/// How stale lastUsedAt may be. A hot key is used thousands of times a
/// second: rewriting its row for each batch would make one new row version
/// per batch (and long chains for every reader to walk), for a timestamp a
/// dashboard shows to the minute.
pub const LAST_USED_PRECISION: chrono::Duration = chrono::Duration::seconds(1);

/// Charges `requests` together and answers each, in order. A failure is
/// answered only to the calls it concerns: see `isolating`.
pub async fn charge(
    db: &DatabaseConnection,
    policy: &AccountPolicy,
    known: &KnownKeys,
    requests: &[ChargeRequest],
    now: DateTime<Utc>,
) -> Vec<Result<Verification>> {
    let postgres = db.get_database_backend() == DbBackend::Postgres;
    let mut answers: Answers = requests.iter().map(|_| None).collect();

    // 1. PostgreSQL: calls without a requestId on keys this process has read
    //    before go straight to the one statement, which checks the guess.
    //    Those it does not charge are read and charged below.
    if postgres {
        let guesses = requests
            .iter()
            .enumerate()
            .filter(|(_, request)| request.charge.request_id.is_none())
            .filter_map(|(index, request)| {
                Call::of(index, request, &known.get(&request.hash)?, now)
            })
            .collect();
        let (at_once, _) = split_at_once(guesses);
        settle(db, Phase::AtOnce(known), at_once, &mut answers, now).await;
    }

    // 2. Every other key of the batch in one read.
    let mut locked = read_calls(db, policy, known, requests, &mut answers, now).await;

    // 3. The calls that fit as read in one statement (PostgreSQL), the rest locked.
    if postgres {
        let at_once;
        (at_once, locked) = split_at_once(locked);
        locked.extend(settle(db, Phase::AtOnce(known), at_once, &mut answers, now).await);
        locked.sort_by_key(|call| call.index);
    }
    settle(db, Phase::Locked, locked, &mut answers, now).await;
    answers
        .into_iter()
        .map(|a| a.expect("every call is answered"))
        .collect()
}

/// A charging step's result: a failure says what it means for the calls.
type Charged<T> = std::result::Result<T, Failure>;

/// Each call's answer so far, by its index in the batch.
type Answers = Vec<Option<Result<Verification>>>;

/// What reading a call's key decided.
enum Read<'a> {
    /// To be charged.
    Charge(Call<'a>),
    /// Answered without a charge: an unknown or revoked key.
    Answered(Verification),
}

/// Reads the keys of the calls not answered yet, in one read of committed
/// data (outside any transaction), and answers those that are not to be
/// charged. Returns the others, to charge. A call whose key cannot be read
/// is answered with the error; nothing was written for it.
async fn read_calls<'a>(
    db: &DatabaseConnection,
    policy: &AccountPolicy,
    known: &KnownKeys,
    requests: &'a [ChargeRequest],
    answers: &mut Answers,
    now: DateTime<Utc>,
) -> Vec<Call<'a>> {
    let unanswered: Vec<usize> = (0..requests.len())
        .filter(|&index| answers[index].is_none())
        .collect();
    let hashes: BTreeSet<Vec<u8>> = unanswered
        .iter()
        .map(|&index| requests[index].hash.clone())
        .collect();
    if hashes.is_empty() {
        return Vec::new();
    }
    let hashes: Vec<Vec<u8>> = hashes.into_iter().collect();
    let mut keys = match metering::find_keys(db, &hashes).await {
        Ok(keys) => keys,
        Err(error) => {
            let failure = Failure::before_commit("reading keys")(error);
            for index in unanswered {
                answers[index] = Some(Err(failure.for_call(None)));
            }
            return Vec::new();
        }
    };
    let mut calls = Vec::with_capacity(unanswered.len());
    for index in unanswered {
        let request = &requests[index];
        let Some(key) = keys.get_mut(&request.hash) else {
            answers[index] = Some(Ok(Verification::not_found()));
            continue;
        };
        match read_call(db, policy, known, index, request, key, now).await {
            Ok(Read::Charge(call)) => calls.push(call),
            Ok(Read::Answered(answer)) => answers[index] = Some(Ok(answer)),
            Err(failure) => answers[index] = Some(Err(failure.for_call(Some(key.key_id)))),
        }
    }
    calls
}

/// The call `index` on `key`, as read: provisions the key's account if
/// signup could not, and answers a call on a revoked key.
async fn read_call<'a>(
    db: &DatabaseConnection,
    policy: &AccountPolicy,
    known: &KnownKeys,
    index: usize,
    request: &'a ChargeRequest,
    key: &mut KeyAccount,
    now: DateTime<Utc>,
) -> Charged<Read<'a>> {
    metering::account_of(db, policy, key, now)
        .await
        .map_err(Failure::before_commit("provisioning the key's account"))?;
    if db.get_database_backend() == DbBackend::Postgres {
        // Only PostgreSQL's one statement ever charges on a remembered key.
        known.remember(&request.hash, key);
    }
    let call = Call::of(index, request, key, now).expect("provisioned above");
    if !key.revoked {
        return Ok(Read::Charge(call));
    }
    // A retry of a call answered before the key was revoked still gets that answer.
    let remembered = match call.request_id() {
        Some(id) => metering::remembered_answer(db, call.key_id, id, now)
            .await
            .map_err(Failure::before_commit(
                "reading a revoked key's answered requestId",
            ))?,
        None => None,
    };
    let revoked = call.answer(VerifyCode::Revoked, call.used_before);
    Ok(Read::Answered(remembered.unwrap_or(revoked)))
}

/// The two ways of charging calls.
#[derive(Clone, Copy)]
enum Phase<'k> {
    /// PostgreSQL's one statement (`charge_at_once`); a call it does not
    /// charge is answered `None`, to be charged the long way.
    AtOnce(&'k KnownKeys),
    /// The locked transaction (`charge_locked`), which answers every call.
    Locked,
}

impl Phase<'_> {
    async fn run(
        self,
        db: &DatabaseConnection,
        calls: &[Call<'_>],
        now: DateTime<Utc>,
    ) -> Charged<Vec<Option<Verification>>> {
        match self {
            Self::AtOnce(known) => {
                let used = charge_at_once(db, calls, now).await?;
                Ok(calls
                    .iter()
                    .zip(used)
                    .map(|(call, used)| {
                        let used = used?;
                        known.saw_usage(call.hash, call.cycle.start, used);
                        Some(call.answer(VerifyCode::Valid, used))
                    })
                    .collect())
            }
            Self::Locked => Ok(charge_locked(db, calls, now)
                .await?
                .into_iter()
                .map(Some)
                .collect()),
        }
    }
}

/// Charges `calls` through `phase` (see `isolating`) and records their
/// answers; returns the calls it left unanswered, to be charged the long way.
async fn settle<'a>(
    db: &DatabaseConnection,
    phase: Phase<'_>,
    calls: Vec<Call<'a>>,
    answers: &mut Answers,
    now: DateTime<Utc>,
) -> Vec<Call<'a>> {
    let results = isolating(db, phase, &calls, now).await;
    let mut left = Vec::new();
    for (call, result) in calls.into_iter().zip(results) {
        match result.transpose() {
            Some(answer) => answers[call.index] = Some(answer),
            None => left.push(call),
        }
    }
    left
}

/// Charges `calls` through `phase`, all together if it can, and gives each
/// its result, in order. A phase either records all its calls or none (its
/// transaction, or its one statement, fails whole), so when one call cannot
/// be charged, the others would fail with it: when the phase fails with
/// nothing recorded and the cause may be one call's (`Failure::isolable`),
/// its calls are charged again in two halves, each on its own, and so on
/// down to single calls. A call that cannot be charged then fails alone,
/// and every other is answered with its charge, at the cost of two more
/// transactions per halving for each failing call (12 in a batch of 64),
/// and nothing when nothing fails. The first half is charged before the
/// second, so calls are still admitted in arrival order. A failure that is
/// not isolable fails every call of its group.
async fn isolating(
    db: &DatabaseConnection,
    phase: Phase<'_>,
    calls: &[Call<'_>],
    now: DateTime<Utc>,
) -> Vec<Result<Option<Verification>>> {
    let mut results = Vec::with_capacity(calls.len());
    // Groups still to charge, the next one last.
    let mut pending = Vec::new();
    pending.push(0..calls.len());
    while let Some(range) = pending.pop() {
        let group = &calls[range.clone()];
        if group.is_empty() {
            continue;
        }
        let failure = match phase.run(db, group, now).await {
            Ok(answers) => {
                results.extend(answers.into_iter().map(Ok));
                continue;
            }
            Err(failure) => failure,
        };
        let keys: BTreeSet<Uuid> = group.iter().map(|call| call.key_id).collect();
        if failure.isolable() && group.len() > 1 {
            tracing::warn!(
                step = failure.step,
                calls = group.len(),
                ?keys,
                error = failure.cause(),
                "charging calls together failed and recorded nothing; charging them in halves"
            );
            let middle = range.start + group.len() / 2;
            pending.extend([middle..range.end, range.start..middle]);
            continue;
        }
        if failure.maybe_recorded {
            // The one case where an error may be answered for a charge: see `failures`.
            tracing::error!(
                step = failure.step,
                calls = group.len(),
                ?keys,
                error = failure.cause(),
                "the connection broke while charges were committing: they may have been recorded"
            );
        }
        results.extend(
            group
                .iter()
                .map(|call| Err(failure.for_call(Some(call.key_id)))),
        );
    }
    results
}

/// Splits off the calls that `charge_at_once` may take: those without a
/// requestId, on accounts whose credits (as read) fit all of them.
fn split_at_once(calls: Vec<Call>) -> (Vec<Call>, Vec<Call>) {
    let mut wanted: BTreeMap<(Uuid, DateTime<Utc>), i64> = BTreeMap::new();
    for call in calls.iter().filter(|c| c.request_id().is_none()) {
        *wanted
            .entry((call.account_id, call.cycle.start))
            .or_default() += i64::from(call.charge.credits);
    }
    calls.into_iter().partition(|call| {
        call.request_id().is_none()
            && call.used_before + wanted[&(call.account_id, call.cycle.start)]
                <= call.monthly_credits
    })
}

/// PostgreSQL: charges `calls` (no requestIds) in one statement, account by
/// account, all of an account's calls or none. Gives each call charged the
/// account's credits used up to and including it; `None` for the calls of an
/// account whose counter no longer fits them, or whose key or account is no
/// longer as read.
async fn charge_at_once(
    db: &DatabaseConnection,
    calls: &[Call<'_>],
    now: DateTime<Utc>,
) -> Charged<Vec<Option<i64>>> {
    if calls.is_empty() {
        return Ok(Vec::new());
    }
    /// What one account's counter is given: the sum, and the pricing it assumes.
    struct Addition {
        total: i64,
        anchor: DateTime<Utc>,
        monthly_credits: i64,
    }
    let mut totals: BTreeMap<(Uuid, DateTime<Utc>), Addition> = BTreeMap::new();
    let mut rollups: BTreeMap<(Uuid, Uuid, DateTime<Utc>), (i64, i64)> = BTreeMap::new();
    let mut events = Vec::with_capacity(calls.len() * 5);
    for call in calls {
        let credits = i64::from(call.charge.credits);
        totals
            .entry((call.account_id, call.cycle.start))
            .or_insert(Addition {
                total: 0,
                anchor: call.anchor,
                monthly_credits: call.monthly_credits,
            })
            .total += credits;
        let rollup = rollups
            .entry((call.account_id, call.key_id, call.cycle.start))
            .or_default();
        rollup.0 += credits;
        rollup.1 += 1;
        events.extend([
            call.account_id.into(),
            call.key_id.into(),
            call.charge.credits.into(),
            call.charge.endpoint.clone().into(),
            now.into(),
        ]);
    }
    let touched: BTreeSet<(Uuid, Uuid)> = rollups.keys().map(|(a, k, _)| (*a, *k)).collect();
    let mut values: Vec<Value> = Vec::new();
    values.extend(totals.iter().flat_map(|((account, start), addition)| {
        [
            (*account).into(),
            (*start).into(),
            addition.total.into(),
            addition.anchor.into(),
            addition.monthly_credits.into(),
        ]
    }));
    values.extend(events);
    values.extend(
        rollups
            .iter()
            .flat_map(|((account, key, start), (credits, requests))| {
                [
                    (*account).into(),
                    (*key).into(),
                    (*start).into(),
                    (*credits).into(),
                    (*requests).into(),
                ]
            }),
    );
    values.extend([now.into(), (now - LAST_USED_PRECISION).into()]);
    values.extend(
        touched
            .iter()
            .flat_map(|(account, key)| [(*account).into(), (*key).into()]),
    );
    let statement = sql::charge_at_once(totals.len(), calls.len(), rollups.len(), touched.len());
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            statement,
            values,
        ))
        .await
        .map_err(Failure::at_commit("the one charging statement"))?;
    let charged: HashMap<Uuid, i64> = rows
        .iter()
        .map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
        .collect::<std::result::Result<_, DbErr>>()
        .map_err(Failure::after_commit(
            "reading the one charging statement's totals",
        ))?;

    // The batch's calls on an account come last in its counter, in arrival
    // order: each gets the total up to and including itself.
    let mut after: HashMap<Uuid, i64> = HashMap::new();
    let mut used = vec![None; calls.len()];
    for (c, call) in calls.iter().enumerate().rev() {
        if let Some(total) = charged.get(&call.account_id) {
            let later = after.entry(call.account_id).or_default();
            used[c] = Some(total - *later);
            *later += i64::from(call.charge.credits);
        }
    }
    Ok(used)
}

/// Charges `calls` in one transaction holding their counters' locks:
/// requestIds claimed, credits admitted in arrival order while they fit.
/// Answers each call, in order.
async fn charge_locked(
    db: &DatabaseConnection,
    calls: &[Call<'_>],
    now: DateTime<Utc>,
) -> Charged<Vec<Verification>> {
    if calls.is_empty() {
        return Ok(Vec::new());
    }
    let backend = db.get_database_backend();
    let stmt =
        |sql: String, values: Vec<Value>| Statement::from_sql_and_values(backend, sql, values);
    // Any failure before the commit drops `txn`, which rolls it back.
    let txn = db
        .begin()
        .await
        .map_err(Failure::before_commit("beginning the transaction"))?;

    // 2. Claim each distinct (key, requestId), in key order; repeats within
    //    the batch take the first one's answer at the end.
    let mut first_of: HashMap<(Uuid, &str), usize> = HashMap::new();
    let mut repeats: Vec<(usize, usize)> = Vec::new();
    for (c, call) in calls.iter().enumerate() {
        if let Some(id) = call.request_id() {
            match first_of.get(&(call.key_id, id)) {
                Some(&first) => repeats.push((c, first)),
                None => {
                    first_of.insert((call.key_id, id), c);
                }
            }
        }
    }
    let mut claims: Vec<usize> = first_of.values().copied().collect();
    claims.sort_by_key(|&c| (calls[c].key_id, calls[c].request_id()));
    let mut fresh_claims: Vec<usize> = Vec::new();
    let mut settled: Vec<Option<Verification>> = vec![None; calls.len()];
    if !claims.is_empty() {
        let mut values = Vec::with_capacity(claims.len() * 6 + 1);
        for &c in &claims {
            let call = &calls[c];
            values.extend([
                call.key_id.into(),
                call.request_id().map(str::to_owned).into(),
                now.into(),
                "pending".into(),
                0i64.into(),
                call.cycle.end.into(),
            ]);
        }
        values.push((now - REQUEST_ID_TTL).into());
        let claimed: BTreeSet<(Uuid, String)> = txn
            .query_all_raw(stmt(sql::claim_request_ids(claims.len()), values))
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(|row| Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?)))
                    .collect()
            })
            .map_err(Failure::before_commit("claiming requestIds"))?;
        for &c in &claims {
            let call = &calls[c];
            let id = call.request_id().unwrap_or_default();
            if claimed.contains(&(call.key_id, id.to_owned())) {
                fresh_claims.push(c);
            } else {
                // Answered before, by this process or another: committed, so readable now.
                let remembered = metering::remembered_answer(&txn, call.key_id, id, now)
                    .await
                    .and_then(|answer| {
                        answer.ok_or_else(|| {
                            anyhow::anyhow!("request id taken but unreadable").into()
                        })
                    })
                    .map_err(Failure::before_commit("reading an answered requestId"))?;
                settled[c] = Some(remembered);
            }
        }
    }
    let is_repeat: BTreeSet<usize> = repeats.iter().map(|&(c, _)| c).collect();

    // 3. Lock and read the counters being charged, in account order.
    let mut totals: BTreeMap<(Uuid, DateTime<Utc>), (i64, i64)> = BTreeMap::new(); // (before, after)
    for (c, call) in calls.iter().enumerate() {
        if settled[c].is_none() && !is_repeat.contains(&c) {
            totals.insert((call.account_id, call.cycle.start), (0, 0));
        }
    }
    if !totals.is_empty() {
        let values = totals
            .keys()
            .flat_map(|(a, s)| [(*a).into(), (*s).into()])
            .collect();
        let counters = txn
            .query_all_raw(stmt(sql::lock_counters(totals.len()), values))
            .await
            .and_then(|rows| {
                rows.iter()
                    .map(|row| {
                        let counter = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
                        Ok((counter, row.try_get_by_index::<i64>(2)?))
                    })
                    .collect::<std::result::Result<Vec<_>, DbErr>>()
            })
            .map_err(Failure::before_commit("locking counters"))?;
        for (counter, used) in counters {
            totals.insert(counter, (used, used));
        }
    }

    // 4. Admit in arrival order while the credits fit.
    let mut admitted: Vec<usize> = Vec::new();
    for (c, call) in calls.iter().enumerate() {
        if settled[c].is_some() || is_repeat.contains(&c) {
            continue;
        }
        let (_, used) = totals
            .get_mut(&(call.account_id, call.cycle.start))
            .expect("locked above");
        let credits = i64::from(call.charge.credits);
        if *used + credits <= call.monthly_credits {
            *used += credits;
            if credits > 0 {
                admitted.push(c);
            }
            settled[c] = Some(call.answer(VerifyCode::Valid, *used));
        } else {
            settled[c] = Some(call.answer(VerifyCode::UsageExceeded, *used));
        }
    }

    // 5. Record: counters, events, rollups, lastUsedAt and the claimed answers.
    let writes = Writes::of(calls, &admitted, &totals, &fresh_claims, &settled, now);
    for (sql, values) in writes.statements(backend) {
        txn.execute_raw(stmt(sql, values))
            .await
            .map_err(Failure::before_commit("recording charges"))?;
    }
    txn.commit()
        .await
        .map_err(Failure::at_commit("committing"))?;

    for &(repeat, first) in &repeats {
        settled[repeat] = settled[first].clone();
    }
    Ok(settled
        .into_iter()
        .map(|a| a.expect("every call is answered"))
        .collect())
}

/// What a batch writes, as bound values per table.
struct Writes {
    counters: Vec<Value>,
    events: Vec<Value>,
    rollups: Vec<Value>,
    touch: Vec<Value>,
    answers: Vec<Vec<Value>>,
}

impl Writes {
    fn of(
        calls: &[Call],
        admitted: &[usize],
        totals: &BTreeMap<(Uuid, DateTime<Utc>), (i64, i64)>,
        fresh_claims: &[usize],
        settled: &[Option<Verification>],
        now: DateTime<Utc>,
    ) -> Self {
        let counters = totals
            .iter()
            .filter(|(_, (before, after))| before != after)
            .flat_map(|((account, start), (_, after))| {
                [(*account).into(), (*start).into(), (*after).into()]
            })
            .collect();
        let mut events = Vec::with_capacity(admitted.len() * 4);
        let mut rollups: BTreeMap<(Uuid, DateTime<Utc>), (i64, i64)> = BTreeMap::new();
        for &c in admitted {
            let call = &calls[c];
            events.extend([
                call.key_id.into(),
                call.charge.credits.into(),
                call.charge.endpoint.clone().into(),
                now.into(),
            ]);
            let rollup = rollups.entry((call.key_id, call.cycle.start)).or_default();
            rollup.0 += i64::from(call.charge.credits);
            rollup.1 += 1;
        }
        let keys: BTreeSet<Uuid> = rollups.keys().map(|(key, _)| *key).collect();
        let mut touch = Vec::new();
        if !keys.is_empty() {
            touch.extend([now.into(), (now - LAST_USED_PRECISION).into()]);
            touch.extend(keys.into_iter().map(Value::from));
        }
        let answers = fresh_claims
            .iter()
            .filter_map(|&c| {
                let answer = settled[c].as_ref()?;
                Some(vec![
                    calls[c].key_id.into(),
                    calls[c].request_id().map(str::to_owned).into(),
                    answer.code.as_str().into(),
                    answer.remaining_credits.unwrap_or(0).into(),
                    answer.cycle_end.unwrap_or(now).into(),
                ])
            })
            .collect();
        let rollups = rollups
            .into_iter()
            .flat_map(|((key, start), (credits, requests))| {
                [key.into(), start.into(), credits.into(), requests.into()]
            })
            .collect();
        Self {
            counters,
            events,
            rollups,
            touch,
            answers,
        }
    }

    /// The statements that make these writes. PostgreSQL takes the counters,
    /// events, rollups and lastUsedAt in one statement, to hold the counter
    /// locks for as few round trips as possible; SQLite, in-process, takes
    /// them one by one.
    fn statements(self, backend: DbBackend) -> Vec<(String, Vec<Value>)> {
        let (counters, events, rollups, touch) = (
            self.counters.len() / 3,
            self.events.len() / 4,
            self.rollups.len() / 4,
            self.touch.len().saturating_sub(2), // the two times, then the keys
        );
        let mut statements = Vec::new();
        if backend == DbBackend::Postgres && counters + events + rollups + touch > 0 {
            let values = [self.counters, self.events, self.rollups, self.touch].concat();
            statements.push((
                sql::record_charges(counters, events, rollups, touch),
                values,
            ));
        } else {
            for values in self.counters.chunks(3) {
                statements.push((sql::SET_COUNTER.to_owned(), values.to_vec()));
            }
            if events > 0 {
                statements.push((sql::insert_events(events, 1), self.events));
                statements.push((sql::add_to_rollups(rollups, 1), self.rollups));
                statements.push((sql::touch_keys(touch, 1), self.touch));
            }
        }
        for values in self.answers {
            statements.push((sql::ANSWER_REQUEST_ID.to_owned(), values));
        }
        statements
    }
}

/// The statements of a charging batch, for a number of rows. Public so that
/// the benchmark's pgbench ceiling runs exactly these.
pub mod sql {
    /// The highest `$n` in `statement`: how many values it must be given.
    pub fn parameters(statement: &str) -> usize {
        statement
            .split('$')
            .skip(1)
            .filter_map(|rest| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().ok()
            })
            .max()
            .unwrap_or(0)
    }

    /// `(…), (…)`: `rows` groups of `columns` placeholders numbered from `first`.
    fn placeholders(rows: usize, columns: usize, first: usize) -> String {
        (0..rows)
            .map(|row| {
                let cells: Vec<String> = (0..columns)
                    .map(|c| format!("${}", first + row * columns + c))
                    .collect();
                format!("({})", cells.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Claims (key, requestId) pairs, returning those claimed; the last
    /// parameter is the instant before which an old answer may be replaced.
    pub fn claim_request_ids(rows: usize) -> String {
        format!(
            "INSERT INTO verify_requests (api_key_id, request_id, created_at, code, remaining_credits, cycle_end)
             VALUES {}
             ON CONFLICT (api_key_id, request_id) DO UPDATE
                SET created_at = excluded.created_at, code = excluded.code,
                    remaining_credits = excluded.remaining_credits, cycle_end = excluded.cycle_end
              WHERE verify_requests.created_at <= ${}
             RETURNING api_key_id, request_id",
            placeholders(rows, 6, 1),
            rows * 6 + 1
        )
    }

    /// Creates the (account, cycle) counters if missing and locks them: the
    /// no-op DO UPDATE takes the row lock, so the totals read here stay true
    /// until the transaction ends.
    pub fn lock_counters(rows: usize) -> String {
        let values: Vec<String> = (0..rows)
            .map(|r| format!("(${}, ${}, 0)", 2 * r + 1, 2 * r + 2))
            .collect();
        format!(
            "INSERT INTO billing_cycle_usage (billing_account_id, cycle_start, credits_used)
             VALUES {}
             ON CONFLICT (billing_account_id, cycle_start) DO UPDATE SET credits_used = billing_cycle_usage.credits_used
             RETURNING billing_account_id, cycle_start, credits_used",
            values.join(", ")
        )
    }

    pub const SET_COUNTER: &str =
        "UPDATE billing_cycle_usage SET credits_used = $3 WHERE billing_account_id = $1 AND cycle_start = $2";

    pub fn insert_events(rows: usize, first: usize) -> String {
        format!(
            "INSERT INTO api_key_usage (api_key_id, credits, endpoint, created_at) VALUES {}",
            placeholders(rows, 4, first)
        )
    }

    pub fn add_to_rollups(rows: usize, first: usize) -> String {
        format!(
            "INSERT INTO api_key_cycle_usage (api_key_id, cycle_start, credits, requests) VALUES {}
             ON CONFLICT (api_key_id, cycle_start) DO UPDATE
                SET credits = api_key_cycle_usage.credits + excluded.credits,
                    requests = api_key_cycle_usage.requests + excluded.requests",
            placeholders(rows, 4, first)
        )
    }

    /// `$first` is the time, then the time before which lastUsedAt is
    /// stale; the keys follow.
    pub fn touch_keys(keys: usize, first: usize) -> String {
        let list: Vec<String> = (2..keys + 2).map(|k| format!("${}", first + k)).collect();
        format!(
            "UPDATE api_keys SET last_used_at = ${first}
              WHERE id IN ({}) AND (last_used_at IS NULL OR last_used_at <= ${})",
            list.join(", "),
            first + 1
        )
    }

    /// PostgreSQL: every write of a batch in one statement. Parameters: the
    /// counters (account, cycle, total), then the events, the rollups, and
    /// the two times of `touch_keys` followed by the keys.
    pub fn record_charges(counters: usize, events: usize, rollups: usize, keys: usize) -> String {
        let mut parts = Vec::new();
        let mut next = 1;
        if counters > 0 {
            parts.push(format!(
                "counters AS (UPDATE billing_cycle_usage AS u SET credits_used = v.total
                   FROM (VALUES {}) AS v(account, cycle_start, total)
                  WHERE u.billing_account_id = v.account AND u.cycle_start = v.cycle_start)",
                placeholders(counters, 3, next)
            ));
            next += counters * 3;
        }
        if events > 0 {
            parts.push(format!("events AS ({})", insert_events(events, next)));
            next += events * 4;
            parts.push(format!("rollups AS ({})", add_to_rollups(rollups, next)));
            next += rollups * 4;
            parts.push(format!("touched AS ({})", touch_keys(keys, next)));
        }
        format!("WITH {} SELECT 1", parts.join(",\n"))
    }

    /// PostgreSQL: a batch's calls without requestIds in one statement (its
    /// own transaction). An account is charged only if its keys in the batch
    /// are all still active and the account still has the cycle anchor and
    /// monthly credits the calls were priced with (they may come from
    /// `KnownKeys`, not a read), and only if the sum fits its monthly
    /// credits (checked on the locked row). The events, rollups and
    /// lastUsedAt of an account are written only if its counter was, and
    /// only after its row is locked, so two such statements lock in account
    /// order, like the locked path. Parameters: the counters (account,
    /// cycle, sum, anchor, monthly credits) in account order, the events
    /// (account, key, credits, endpoint, time), the rollups (account, key,
    /// cycle, credits, requests), the two times of `touch_keys`, the keys
    /// (account, key).
    pub fn charge_at_once(counters: usize, events: usize, rollups: usize, keys: usize) -> String {
        let events_from = counters * 5 + 1;
        let rollups_from = events_from + events * 5;
        let now = rollups_from + rollups * 5;
        format!(
            "WITH batch_keys AS (
               SELECT * FROM (VALUES {keys}) AS t(account, key)),
             fits AS (
               SELECT v.account, v.cycle_start, v.total
                 FROM (VALUES {counters}) AS v(account, cycle_start, total, anchor, monthly_credits)
                 JOIN billing_accounts b ON b.id = v.account
                WHERE b.billing_cycle_start = v.anchor AND b.monthly_credits = v.monthly_credits
                  AND v.total <= b.monthly_credits
                  AND NOT EXISTS (SELECT 1 FROM batch_keys t JOIN api_keys k ON k.id = t.key
                                   WHERE t.account = v.account AND k.revoked_at IS NOT NULL)),
             charged AS (
               INSERT INTO billing_cycle_usage (billing_account_id, cycle_start, credits_used)
               SELECT account, cycle_start, total FROM fits
               ON CONFLICT (billing_account_id, cycle_start) DO UPDATE
                  SET credits_used = billing_cycle_usage.credits_used + excluded.credits_used
                WHERE billing_cycle_usage.credits_used + excluded.credits_used
                      <= (SELECT b.monthly_credits FROM billing_accounts b WHERE b.id = excluded.billing_account_id)
               RETURNING billing_account_id, credits_used),
             events AS (
               INSERT INTO api_key_usage (api_key_id, credits, endpoint, created_at)
               SELECT e.key, e.credits, e.endpoint, e.at
                 FROM (VALUES {events}) AS e(account, key, credits, endpoint, at)
                 JOIN charged c ON c.billing_account_id = e.account),
             rollups AS (
               INSERT INTO api_key_cycle_usage (api_key_id, cycle_start, credits, requests)
               SELECT r.key, r.cycle_start, r.credits, r.requests
                 FROM (VALUES {rollups}) AS r(account, key, cycle_start, credits, requests)
                 JOIN charged c ON c.billing_account_id = r.account
               ON CONFLICT (api_key_id, cycle_start) DO UPDATE
                  SET credits = api_key_cycle_usage.credits + excluded.credits,
                      requests = api_key_cycle_usage.requests + excluded.requests),
             touched AS (
               UPDATE api_keys k SET last_used_at = ${now}
                 FROM batch_keys t
                 JOIN charged c ON c.billing_account_id = t.account
                WHERE k.id = t.key AND (k.last_used_at IS NULL OR k.last_used_at <= ${stale}))
             SELECT billing_account_id, credits_used FROM charged",
            counters = placeholders(counters, 5, 1),
            events = placeholders(events, 5, events_from),
            rollups = placeholders(rollups, 5, rollups_from),
            keys = placeholders(keys, 2, now + 2),
            stale = now + 1,
        )
    }

    pub const ANSWER_REQUEST_ID: &str =
        "UPDATE verify_requests SET code = $3, remaining_credits = $4, cycle_end = $5
                WHERE api_key_id = $1 AND request_id = $2";
}

#[cfg(test)]
mod tests {
    use super::sql::{self, parameters};

    #[test]
    fn statements_take_as_many_values_as_the_batch_supplies() {
        for rows in [1, 2, 16, 64] {
            assert_eq!(parameters(&sql::claim_request_ids(rows)), rows * 6 + 1);
            assert_eq!(parameters(&sql::lock_counters(rows)), rows * 2);
            assert_eq!(parameters(&sql::insert_events(rows, 1)), rows * 4);
            assert_eq!(parameters(&sql::add_to_rollups(rows, 1)), rows * 4);
            assert_eq!(parameters(&sql::touch_keys(rows, 1)), rows + 2);
            let (accounts, events) = (rows.div_ceil(2), rows * 3);
            assert_eq!(
                parameters(&sql::charge_at_once(accounts, events, rows, rows)),
                accounts * 5 + events * 5 + rows * 5 + 2 + rows * 2
            );
            for counters in [0, 1, 3] {
                let all = counters * 3 + rows * 4 + rows * 4 + rows + 2;
                assert_eq!(
                    parameters(&sql::record_charges(counters, rows, rows, rows)),
                    all
                );
            }
        }
    }
}
