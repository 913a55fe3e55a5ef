//! Charging one batch of verifyKey calls (a batch of one without group
//! commit), in three steps that never return to a file already left:
//! 1. PostgreSQL: calls without a requestId on keys this process knows
//!    (`known_keys`) go straight to the one statement, which checks the guess;
//! 2. every other key of the batch is read in one query (`store::keys`),
//!    its account provisioned if missing (`account`);
//! 3. the calls that fit as read go to the one statement (PostgreSQL), and
//!    the rest, with any it refused, to the locked path.
//!
//! Each guarantee of a single charge holds for every call of a batch:
//! exact quota (checked on the locked counter row by both paths), idempotent
//! retries (requestIds claimed by their primary key), durable before
//! answered (answers after the commit), memory never trusted (the one
//! statement re-checks what `known_keys` remembers), and a failure is its
//! call's alone (`isolate`).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use sea_orm::DbBackend;

use super::account::priced_account;
use super::call::{Call, ChargeRequest};
use super::failures::{Charged, Failure};
use super::isolate::{run_in_halves, Answers, Path};
use super::known_keys::KnownKeys;
use crate::domain::admission::fit_as_read;
use crate::domain::{KeyAccount, Verification};
use crate::error::Result;
use crate::store::db::Db;
use crate::store::keys::find_keys;
use crate::store::requests::remembered_answer;

/// What charging a batch needs, owned by the charger.
pub struct BatchCharging {
    pub db: Db,
    pub known: KnownKeys,
}

impl BatchCharging {
    /// Charges `requests` together and answers each, in order.
    #[tracing::instrument(name = "charge_batch", level = "debug", skip_all, fields(calls = requests.len()))]
    pub async fn run(
        &self,
        requests: &[ChargeRequest],
        now: DateTime<Utc>,
    ) -> Vec<Result<Verification>> {
        let postgres = self.db.get_database_backend() == DbBackend::Postgres;
        let mut answers = Answers::for_batch(requests.len());
        let one_statement = Path::OneStatement(&self.known);
        if postgres {
            let remembered = self.remembered_calls(requests, now);
            let (fitting, _) = fitting_as_read(remembered);
            self.through(one_statement, fitting, &mut answers, now)
                .await;
        }
        let mut locked = self.read_calls(requests, &mut answers, now).await;
        if postgres {
            let fitting;
            (fitting, locked) = fitting_as_read(locked);
            let refused = self
                .through(one_statement, fitting, &mut answers, now)
                .await;
            locked.extend(refused);
            locked.sort_by_key(|call| call.index);
        }
        self.through(Path::Locked, locked, &mut answers, now).await;
        answers.finish()
    }

    /// Charges `calls` through `path`; returns those it left unanswered.
    async fn through<'a>(
        &self,
        path: Path<'_>,
        calls: Vec<Call<'a>>,
        answers: &mut Answers,
        now: DateTime<Utc>,
    ) -> Vec<Call<'a>> {
        // Counting accounts costs an allocation per batch: only when logged.
        if !calls.is_empty() && tracing::enabled!(tracing::Level::DEBUG) {
            let accounts: BTreeSet<_> = calls.iter().map(Call::account_id).collect();
            tracing::debug!(
                path = path.name(),
                calls = calls.len(),
                accounts = accounts.len(),
                "charging"
            );
        }
        run_in_halves(&self.db, path, calls, answers, now).await
    }

    /// Calls without a requestId on keys this process remembers, priced as remembered.
    fn remembered_calls<'a>(
        &self,
        requests: &'a [ChargeRequest],
        now: DateTime<Utc>,
    ) -> Vec<Call<'a>> {
        requests
            .iter()
            .enumerate()
            .filter(|(_, request)| request.charge.request_id.is_none())
            .filter_map(|(index, request)| {
                let key = self.known.get(&request.hash)?;
                let account = key
                    .account
                    .clone()
                    .filter(|_| key.refusal_at(now).is_none())?;
                Some(Call::new(index, request, &key, account, now))
            })
            .collect()
    }

    /// Reads the keys of the calls not answered yet, in one read of
    /// committed data, answers those not to be charged, and returns the
    /// others. A call whose key cannot be read gets the error; nothing was
    /// written for it.
    async fn read_calls<'a>(
        &self,
        requests: &'a [ChargeRequest],
        answers: &mut Answers,
        now: DateTime<Utc>,
    ) -> Vec<Call<'a>> {
        let unanswered: Vec<usize> = (0..requests.len())
            .filter(|&i| !answers.is_answered(i))
            .collect();
        let hashes: BTreeSet<Vec<u8>> = unanswered
            .iter()
            .map(|&i| requests[i].hash.clone())
            .collect();
        if hashes.is_empty() {
            return Vec::new();
        }
        let hashes: Vec<Vec<u8>> = hashes.into_iter().collect();
        let mut keys = match find_keys(&self.db, &hashes).await {
            Ok(keys) => keys,
            Err(error) => {
                let failure = Failure::before_commit("reading keys")(error);
                for index in unanswered {
                    answers.answer(index, Err(failure.for_call(None)));
                }
                return Vec::new();
            }
        };
        let mut calls = Vec::with_capacity(unanswered.len());
        for index in unanswered {
            let request = &requests[index];
            let Some(key) = keys.get_mut(&request.hash) else {
                answers.answer(index, Ok(Verification::not_found()));
                continue;
            };
            match self.read_call(index, request, key, now).await {
                Ok(Read::Charge(call)) => calls.push(call),
                Ok(Read::Answered(answer)) => answers.answer(index, Ok(answer)),
                Err(failure) => answers.answer(index, Err(failure.for_call(Some(key.key_id)))),
            }
        }
        calls
    }

    /// The call `index` on `key`, as read: priced against its account
    /// or answered if its key is revoked.
    async fn read_call<'a>(
        &self,
        index: usize,
        request: &'a ChargeRequest,
        key: &mut KeyAccount,
        now: DateTime<Utc>,
    ) -> Charged<Read<'a>> {
        let account =
            priced_account(key).map_err(Failure::before_commit("reading the key's account"))?;
        if self.db.get_database_backend() == DbBackend::Postgres {
            // Only PostgreSQL's one statement ever charges on a remembered key.
            self.known.remember(&request.hash, key);
        }
        let call = Call::new(index, request, key, account, now);
        let Some(refusal) = key.refusal_at(now) else {
            return Ok(Read::Charge(call));
        };
        // A retry of a call answered before the key was revoked or expired
        // still gets that answer.
        let remembered = match call.request_id() {
            Some(id) => remembered_answer(&self.db, call.key.id, id, now)
                .await
                .map_err(Failure::before_commit(
                    "reading a refused key's answered requestId",
                ))?,
            None => None,
        };
        let refused = call.answer(refusal, call.used_before);
        Ok(Read::Answered(remembered.unwrap_or(refused)))
    }
}

/// What reading a call's key decided.
enum Read<'a> {
    /// To be charged.
    Charge(Call<'a>),
    /// Answered without a charge: a revoked or expired key.
    Answered(Verification),
}

/// Splits off the calls the one statement may take, in order: those whose
/// accounts, as read, have room for them (`admission::fit_as_read`).
fn fitting_as_read(calls: Vec<Call<'_>>) -> (Vec<Call<'_>>, Vec<Call<'_>>) {
    let asks: Vec<_> = calls.iter().map(Call::ask).collect();
    let mut fits = fit_as_read(&asks).into_iter();
    calls
        .into_iter()
        .partition(|_| fits.next().unwrap_or(false))
}
