//! Failure isolation: a call's answer is the truth about its own charge,
//! whatever else shares its batch. A path charges its calls together, and
//! records all or none of them; when it fails having recorded nothing, and
//! the cause may be one call's, its calls are charged again in halves until
//! the call that cannot be charged fails alone (`failures` says which
//! failures qualify).

use std::collections::BTreeSet;

use crate::store::db::Db;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::call::Call;
use super::failures::Charged;
use super::known_keys::KnownKeys;
use super::{locked, one_statement};
use crate::domain::Verification;
use crate::error::Result;

/// Each call's answer, by its place in the batch, as the paths give them.
pub struct Answers(Vec<Option<Result<Verification>>>);

impl Answers {
    /// None yet, for a batch of `calls`.
    pub fn for_batch(calls: usize) -> Self {
        Self((0..calls).map(|_| None).collect())
    }

    pub fn answer(&mut self, call: usize, answer: Result<Verification>) {
        self.0[call] = Some(answer);
    }

    pub fn is_answered(&self, call: usize) -> bool {
        self.0[call].is_some()
    }

    /// Every call's answer, in order: the locked path answers whatever the
    /// others left, so none is missing.
    pub fn finish(self) -> Vec<Result<Verification>> {
        self.0
            .into_iter()
            .map(|answer| answer.expect("the locked path answers every call it is given"))
            .collect()
    }
}

/// The two ways of charging calls.
#[derive(Clone, Copy)]
pub enum Path<'k> {
    /// PostgreSQL's one statement (`one_statement`); a call it does not
    /// charge is answered `None`, to be charged the locked way.
    OneStatement(&'k KnownKeys),
    /// The locked transaction (`locked`), which answers every call.
    Locked,
}

impl Path<'_> {
    /// The path's name, as logs and the README call it.
    pub fn name(self) -> &'static str {
        match self {
            Self::OneStatement(_) => "one statement",
            Self::Locked => "locked",
        }
    }

    async fn run(
        self,
        db: &Db,
        calls: &[Call<'_>],
        now: DateTime<Utc>,
    ) -> Charged<Vec<Option<Verification>>> {
        match self {
            Self::OneStatement(known) => one_statement::run(db, known, calls, now).await,
            Self::Locked => Ok(locked::run(db, calls, now)
                .await?
                .into_iter()
                .map(Some)
                .collect()),
        }
    }
}

/// Charges `calls` through `path`, in halves where a failure may be one
/// call's (see `results_in_halves`), and records their answers; returns
/// the calls it left unanswered, to be charged the locked way.
pub async fn run_in_halves<'a>(
    db: &Db,
    path: Path<'_>,
    calls: Vec<Call<'a>>,
    answers: &mut Answers,
    now: DateTime<Utc>,
) -> Vec<Call<'a>> {
    let results = results_in_halves(db, path, &calls, now).await;
    let mut left = Vec::new();
    for (call, result) in calls.into_iter().zip(results) {
        match result.transpose() {
            Some(answer) => answers.answer(call.index, answer),
            None => left.push(call),
        }
    }
    left
}

/// Charges `calls` through `path`, all together if it can, and gives each
/// its result, in order. A path either records all its calls or none (its
/// transaction, or its one statement, fails whole), so when one call cannot
/// be charged, the others would fail with it: when the path fails with
/// nothing recorded and the cause may be one call's (`Failure::isolable`),
/// its calls are charged again in two halves, each on its own, and so on
/// down to single calls. A call that cannot be charged then fails alone,
/// and every other is answered with its charge, at the cost of two more
/// transactions per halving for each failing call (12 in a batch of 64),
/// and nothing when nothing fails. The first half is charged before the
/// second, so calls are still admitted in arrival order. A failure that is
/// not isolable fails every call of its group.
async fn results_in_halves(
    db: &Db,
    path: Path<'_>,
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
        let failure = match path.run(db, group, now).await {
            Ok(answers) => {
                results.extend(answers.into_iter().map(Ok));
                continue;
            }
            Err(failure) => failure,
        };
        let keys: BTreeSet<Uuid> = group.iter().map(|call| call.key.id).collect();
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
                .map(|call| Err(failure.for_call(Some(call.key.id)))),
        );
    }
    results
}
