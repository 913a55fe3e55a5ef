//! Group commit: verifyKey charges that arrive together are charged together,
//! several per transaction and per WAL flush.
//!
//! Calls queue here; a few workers each take whatever is queued (up to a
//! batch) and charge it in one transaction (see `charges`), answering every
//! caller after the commit. While one batch is in the database the next one
//! gathers, so the batch size follows the load: one call when idle, many
//! under contention. Nothing here is shared between processes or needed for
//! correctness: the database's locks and keys keep every guarantee.

use std::sync::Arc;

use sea_orm::DatabaseConnection;
use tokio::sync::{mpsc, oneshot, Mutex};

use super::charges::{self, ChargeRequest};
use super::metering::Verification;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::state::{AccountPolicy, AppState};

pub struct Pending {
    request: ChargeRequest,
    reply: oneshot::Sender<Result<Verification>>,
}

/// How verifyKey charges reach the database.
#[derive(Clone)]
pub enum Charger {
    /// Each call in its own transaction.
    PerRequest,
    /// Calls queued and charged in batches.
    Grouped(mpsc::Sender<Pending>),
}

impl Charger {
    /// Starts `workers` batch workers on the current runtime.
    pub fn grouped(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        policy: AccountPolicy,
        workers: usize,
        max_batch: usize,
    ) -> Self {
        let max_batch = max_batch.max(1);
        let (sender, receiver) = mpsc::channel::<Pending>(max_batch * workers.max(1) * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        for _ in 0..workers.max(1) {
            let (db, clock, policy, receiver) =
                (db.clone(), clock.clone(), policy.clone(), receiver.clone());
            tokio::spawn(async move {
                while let Some(batch) = next_batch(&receiver, max_batch).await {
                    let requests: Vec<ChargeRequest> =
                        batch.iter().map(|p| p.request.clone()).collect();
                    match charges::charge(&db, &policy, &requests, clock.now()).await {
                        Ok(answers) => {
                            for (pending, answer) in batch.into_iter().zip(answers) {
                                let _ = pending.reply.send(Ok(answer));
                            }
                        }
                        Err(err) => {
                            // Each caller logs its copy; keep the cause, not just "internal".
                            let message = match &err {
                                Error::Internal(source) => format!("{source:#}"),
                                other => other.to_string(),
                            };
                            for pending in batch {
                                let err = anyhow::anyhow!("charging a batch failed: {message}");
                                let _ = pending.reply.send(Err(err.into()));
                            }
                        }
                    }
                }
            });
        }
        Self::Grouped(sender)
    }

    pub async fn charge(&self, state: &AppState, request: ChargeRequest) -> Result<Verification> {
        match self {
            Self::PerRequest => {
                let requests = std::slice::from_ref(&request);
                let mut answers =
                    charges::charge(&state.db, &state.policy, requests, state.clock.now()).await?;
                Ok(answers.remove(0))
            }
            Self::Grouped(queue) => {
                let (reply, answer) = oneshot::channel();
                queue
                    .send(Pending { request, reply })
                    .await
                    .map_err(|_| Error::from(anyhow::anyhow!("charging queue closed")))?;
                answer
                    .await
                    .map_err(|_| Error::from(anyhow::anyhow!("charging worker stopped")))?
            }
        }
    }
}

/// Waits for one call, then takes every call already queued, up to `max`.
async fn next_batch(receiver: &Mutex<mpsc::Receiver<Pending>>, max: usize) -> Option<Vec<Pending>> {
    let mut receiver = receiver.lock().await;
    let first = receiver.recv().await?;
    let mut batch = Vec::with_capacity(max);
    batch.push(first);
    while batch.len() < max {
        match receiver.try_recv() {
            Ok(pending) => batch.push(pending),
            Err(_) => break,
        }
    }
    Some(batch)
}
