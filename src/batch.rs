//! Coalescing concurrent calls into batches: the machinery behind group
//! commit and coalesced reads.
//!
//! Calls queue here; a few workers each take whatever is queued (up to a
//! batch), handle it with one function call (one round trip or one
//! transaction), and answer every caller. While one batch is in the database
//! the next one gathers, so the batch size follows the load: one call when
//! idle, many under contention, and no timer ever holds a call back.
//! Nothing here is shared between processes or needed for correctness: a
//! batch function gives each call the answer it would get alone, and a batch
//! function that can fail call by call (`start_each`) fails only the calls
//! concerned.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};

use crate::error::{Error, Result};

struct Job<T, R> {
    item: T,
    reply: oneshot::Sender<Result<R>>,
}

/// A queue of `T`s answered with `R`s by batch workers.
pub struct Batcher<T, R> {
    queue: mpsc::Sender<Job<T, R>>,
}

impl<T, R> Clone for Batcher<T, R> {
    fn clone(&self) -> Self {
        Self {
            queue: self.queue.clone(),
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> Batcher<T, R> {
    /// Starts `workers` tasks on the current runtime, each answering batches
    /// of up to `max_batch` calls with `handle`, which returns one answer
    /// per item, in order, or fails the whole batch.
    pub fn start<F, Fut>(workers: usize, max_batch: usize, handle: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<R>>> + Send,
    {
        Self::start_each(workers, max_batch, move |items: Vec<T>| {
            let calls = items.len();
            let answers = handle(items);
            async move { each(answers.await, calls) }
        })
    }

    /// `start`, with a `handle` that answers or fails each item on its own:
    /// one item's failure is not its batch's.
    pub fn start_each<F, Fut>(workers: usize, max_batch: usize, handle: F) -> Self
    where
        F: Fn(Vec<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Result<R>>> + Send,
    {
        let (workers, max_batch) = (workers.max(1), max_batch.max(1));
        let (queue, receiver) = mpsc::channel::<Job<T, R>>(max_batch * workers * 4);
        let receiver = Arc::new(Mutex::new(receiver));
        let handle = Arc::new(handle);
        for _ in 0..workers {
            let (receiver, handle) = (receiver.clone(), handle.clone());
            tokio::spawn(async move {
                while let Some(jobs) = next_batch(&receiver, max_batch).await {
                    let (items, replies): (Vec<T>, Vec<_>) =
                        jobs.into_iter().map(|job| (job.item, job.reply)).unzip();
                    answer(replies, handle(items).await);
                }
            });
        }
        Self { queue }
    }

    /// Queues `item` and waits for its answer.
    pub async fn call(&self, item: T) -> Result<R> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { item, reply })
            .await
            .map_err(|_| Error::from(anyhow::anyhow!("batch queue closed")))?;
        answer
            .await
            .map_err(|_| Error::from(anyhow::anyhow!("batch worker stopped")))?
    }
}

fn answer<R>(replies: Vec<oneshot::Sender<Result<R>>>, answers: Vec<Result<R>>) {
    debug_assert_eq!(answers.len(), replies.len(), "one answer per call");
    for (reply, answer) in replies.into_iter().zip(answers) {
        let _ = reply.send(answer);
    }
}

/// One answer per call out of a whole batch's: a failed batch fails each of
/// its `calls`.
fn each<R>(answers: Result<Vec<R>>, calls: usize) -> Vec<Result<R>> {
    match answers {
        Ok(answers) => answers.into_iter().map(Ok).collect(),
        Err(err) => {
            // Every caller gets (and logs) its own copy; keep the cause, not just "internal".
            let message = match &err {
                Error::Internal(source) => format!("{source:#}"),
                other => other.to_string(),
            };
            (0..calls)
                .map(|_| Err(anyhow::anyhow!("a batch failed: {message}").into()))
                .collect()
        }
    }
}

/// Waits for one call, then takes every call already queued, up to `max`.
async fn next_batch<J>(receiver: &Mutex<mpsc::Receiver<J>>, max: usize) -> Option<Vec<J>> {
    let mut receiver = receiver.lock().await;
    let first = receiver.recv().await?;
    let mut batch = Vec::with_capacity(max);
    batch.push(first);
    while batch.len() < max {
        match receiver.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_caller_gets_its_own_answer_and_concurrent_calls_share_batches() {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let doubler = Batcher::start(1, 8, move |items: Vec<u32>| {
            seen.lock().unwrap().push(items.len());
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                Ok(items.into_iter().map(|i| i * 2).collect())
            }
        });
        let calls: Vec<_> = (0..40)
            .map(|i| {
                let doubler = doubler.clone();
                tokio::spawn(async move { (i, doubler.call(i).await.unwrap()) })
            })
            .collect();
        for call in calls {
            let (i, doubled) = call.await.unwrap();
            assert_eq!(doubled, i * 2);
        }
        let sizes = sizes.lock().unwrap();
        assert_eq!(sizes.iter().sum::<usize>(), 40);
        assert!(sizes.iter().all(|&n| n <= 8), "{sizes:?}");
        assert!(
            sizes.len() < 40,
            "calls queued together were batched: {sizes:?}"
        );
    }

    #[tokio::test]
    async fn a_batch_answered_call_by_call_fails_only_the_calls_that_failed() {
        let odd_fails = Batcher::start_each(1, 8, |items: Vec<u32>| async move {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            items
                .into_iter()
                .map(|i| match i % 2 {
                    0 => Ok(i * 2),
                    _ => Err(anyhow::anyhow!("{i} is odd").into()),
                })
                .collect()
        });
        let calls = (0..20).map(|i| {
            let odd_fails = odd_fails.clone();
            tokio::spawn(async move { (i, odd_fails.call(i).await) })
        });
        for call in calls.collect::<Vec<_>>() {
            match call.await.unwrap() {
                (i, Ok(doubled)) => assert_eq!((i % 2, doubled), (0, i * 2)),
                (i, Err(Error::Internal(source))) => {
                    assert_eq!(i % 2, 1);
                    assert_eq!(source.to_string(), format!("{i} is odd"));
                }
                (i, Err(other)) => panic!("{i}: unexpected {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_calls_with_the_cause() {
        let failing = Batcher::start(1, 4, |_: Vec<u32>| async {
            Err::<Vec<u32>, _>(anyhow::anyhow!("database gone").into())
        });
        let err = failing.call(1).await.unwrap_err();
        match err {
            Error::Internal(source) => assert!(format!("{source:#}").contains("database gone")),
            other => panic!("unexpected {other:?}"),
        }
    }
}
