//! How a charge reaches `BatchCharging`: alone, or queued with the calls
//! that arrive with it and charged together (group commit: several calls
//! per transaction and per WAL flush, each caller answered after the
//! commit). The queue is `crate::batch`; the rules are `batch_charge`.

use std::sync::Arc;

use super::batch_charge::BatchCharging;
use super::call::ChargeRequest;
use crate::batch::Batcher;
use crate::clock::Clock;
use crate::domain::Verification;
use crate::error::Result;
use crate::metrics::Metrics;

/// How concurrent charges are grouped.
#[derive(Debug, Clone, Copy)]
pub enum Grouping {
    /// Each call in its own transaction.
    PerRequest,
    /// Calls queued and charged in batches of up to `max_batch`, by
    /// `workers` batches in flight.
    Grouped { workers: usize, max_batch: usize },
}

#[derive(Clone)]
pub enum Charger {
    PerRequest {
        charging: Arc<BatchCharging>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
    },
    Grouped(Batcher<ChargeRequest, Verification>),
}

impl Charger {
    /// The charger for `grouping`; grouped, its workers start on the current runtime.
    pub fn start(
        charging: BatchCharging,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        grouping: Grouping,
    ) -> Self {
        let charging = Arc::new(charging);
        let Grouping::Grouped { workers, max_batch } = grouping else {
            return Self::PerRequest {
                charging,
                clock,
                metrics,
            };
        };
        Self::Grouped(Batcher::start_each(workers, max_batch, move |requests| {
            metrics.charge_batch(requests.len());
            let (charging, now) = (charging.clone(), clock.now());
            async move { charging.run(&requests, now).await }
        }))
    }

    /// Hands `request` to be charged, alone or with the calls that arrive
    /// with it, and waits for its answer.
    pub async fn submit(&self, request: ChargeRequest) -> Result<Verification> {
        match self {
            Self::PerRequest {
                charging,
                clock,
                metrics,
            } => {
                metrics.charge_batch(1);
                let requests = std::slice::from_ref(&request);
                let mut answers = charging.run(requests, clock.now()).await;
                answers.remove(0)
            }
            Self::Grouped(batcher) => batcher.call(request).await,
        }
    }
}
