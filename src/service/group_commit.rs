//! Group commit: verifyKey charges that arrive together are charged together,
//! several per transaction and per WAL flush (see `batch` for the queue and
//! `charges` for the rules), each caller answered after the commit.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use super::batch::Batcher;
use super::charges::{self, ChargeRequest};
use super::known_keys::KnownKeys;
use super::metering::Verification;
use crate::clock::Clock;
use crate::error::Result;
use crate::metrics::Metrics;
use crate::state::{AccountPolicy, AppState};

/// How verifyKey charges reach the database.
#[derive(Clone)]
pub enum Charger {
    /// Each call in its own transaction.
    PerRequest(Arc<KnownKeys>, Arc<Metrics>),
    /// Calls queued and charged in batches.
    Grouped(Batcher<ChargeRequest, Verification>),
}

impl Charger {
    /// Each call charged alone; keys charged are remembered as when grouped.
    pub fn per_request(metrics: Arc<Metrics>) -> Self {
        Self::PerRequest(Arc::default(), metrics)
    }

    /// Starts `workers` batch workers on the current runtime.
    pub fn grouped(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        policy: AccountPolicy,
        metrics: Arc<Metrics>,
        workers: usize,
        max_batch: usize,
    ) -> Self {
        let known = Arc::new(KnownKeys::default());
        Self::Grouped(Batcher::start_each(workers, max_batch, move |requests| {
            metrics.charge_batch(requests.len());
            let (db, clock, policy, known) =
                (db.clone(), clock.clone(), policy.clone(), known.clone());
            async move { charges::charge(&db, &policy, &known, &requests, clock.now()).await }
        }))
    }

    pub async fn charge(&self, state: &AppState, request: ChargeRequest) -> Result<Verification> {
        match self {
            Self::PerRequest(known, metrics) => {
                metrics.charge_batch(1);
                let requests = std::slice::from_ref(&request);
                let now = state.clock.now();
                let mut answers =
                    charges::charge(&state.db, &state.policy, known, requests, now).await;
                answers.remove(0)
            }
            Self::Grouped(batcher) => batcher.call(request).await,
        }
    }
}
