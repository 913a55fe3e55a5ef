//! Identical reads asked at once share one statement: the dashboard's reads
//! (an account's members, its keys, a usage series) when several requests
//! ask the same one together.
//!
//! A read asked while the same read (same kind, same arguments) is running
//! does not join that run: it started before this request asked, and could
//! miss a change committed in between. It waits for it to end, and the next
//! run answers every read that asked meanwhile. So each answer is read
//! after its request asked, as a read of its own would be, and a change
//! committed before a request arrived is always in its answer. Nothing is
//! kept once a run has answered: this is not a cache, and no process relies
//! on another's memory. A lone read runs at once, in its caller's task,
//! with no hop.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::error::Result;

/// Reads of one kind, by their arguments `K`, answered with `V`.
pub struct SharedReads<K, V> {
    /// None: every read runs on its own (`KEYMETER_COALESCE_READS=false`).
    running: Option<Arc<Running<K, V>>>,
}

impl<K, V> Clone for SharedReads<K, V> {
    fn clone(&self) -> Self {
        Self {
            running: self.running.clone(),
        }
    }
}

/// The reads running now, each with the callers waiting for its next run.
type Running<K, V> = Mutex<HashMap<K, Vec<oneshot::Sender<Result<V>>>>>;

impl<K, V> SharedReads<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// `share` false: each read runs on its own.
    pub fn new(share: bool) -> Self {
        Self {
            running: share.then(|| Arc::new(Mutex::new(HashMap::new()))),
        }
    }

    /// `read`'s answer for `key`, from a run started after this call. `read`
    /// must give the same answer for the same `key` whoever calls it: it
    /// may run for another caller's request.
    pub async fn read<F, Fut>(&self, key: K, read: F) -> Result<V>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<V>> + Send + 'static,
    {
        let Some(running) = &self.running else {
            return read().await;
        };
        let waiting = match lock(running).entry(key.clone()) {
            Entry::Occupied(mut run) => {
                let (answer, waiting) = oneshot::channel();
                run.get_mut().push(answer);
                Some(waiting)
            }
            Entry::Vacant(idle) => {
                idle.insert(Vec::new());
                None
            }
        };
        match waiting {
            Some(waiting) => match waiting.await {
                Ok(answer) => answer,
                // The run answering it never ended (its runtime shut down,
                // or the read panicked): read alone.
                Err(_) => read().await,
            },
            None => {
                let read: Arc<Read<V>> = Arc::new(move || Box::pin(read()));
                let run = Run {
                    running: Arc::clone(running),
                    key: Some(key),
                    read,
                };
                (run.read)().await
            }
        }
    }
}

type Read<V> = dyn Fn() -> Pin<Box<dyn Future<Output = Result<V>> + Send>> + Send + Sync;

/// One run of a read: when it ends, however it ends (answered, failed, its
/// request dropped), the callers that asked meanwhile get a run of their
/// own, in a task, or the read stops running.
struct Run<K: Eq + Hash + Clone + Send + 'static, V: Clone + Send + 'static> {
    running: Arc<Running<K, V>>,
    key: Option<K>,
    read: Arc<Read<V>>,
}

impl<K: Eq + Hash + Clone + Send + 'static, V: Clone + Send + 'static> Drop for Run<K, V> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else { return };
        let mut running = lock(&self.running);
        let Some(asked) = running.get_mut(&key) else {
            return;
        };
        if asked.is_empty() {
            running.remove(&key);
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to run it on: each caller reads on its own.
            running.remove(&key);
            return;
        };
        let waiting = std::mem::take(asked);
        drop(running);
        let next = Run {
            running: Arc::clone(&self.running),
            key: Some(key),
            read: Arc::clone(&self.read),
        };
        runtime.spawn(async move {
            let answer = (next.read)().await;
            let mut waiting = waiting.into_iter();
            let last = waiting.next_back();
            for caller in waiting {
                let _ = caller.send(answer_for_each(&answer));
            }
            if let Some(last) = last {
                let _ = last.send(answer);
            }
        });
    }
}

/// A copy of `answer` for one of the callers sharing it.
fn answer_for_each<V: Clone>(answer: &Result<V>) -> Result<V> {
    match answer {
        Ok(value) => Ok(value.clone()),
        Err(error) => Err(error.for_each_caller()),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Nothing panics while holding it; a poisoned map is still a map.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use super::*;
    use crate::error::Error;

    type Answer = std::pin::Pin<Box<dyn Future<Output = Result<u32>> + Send>>;

    /// A read that answers with the number of its run, 20 ms after it
    /// starts (so that reads asked meanwhile wait for it).
    fn counted(runs: &Arc<AtomicU32>) -> impl Fn() -> Answer + Send + Sync + 'static {
        let runs = Arc::clone(runs);
        move || {
            let run = runs.fetch_add(1, Ordering::SeqCst) + 1;
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(run)
            })
        }
    }

    #[tokio::test]
    async fn reads_asked_during_a_run_share_the_next_run_not_that_one() {
        let reads = SharedReads::<u8, u32>::new(true);
        let runs = Arc::new(AtomicU32::new(0));
        let first = tokio::spawn({
            let (reads, read) = (reads.clone(), counted(&runs));
            async move { reads.read(1, read).await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let during: Vec<_> = (0..10)
            .map(|_| {
                let (reads, read) = (reads.clone(), counted(&runs));
                tokio::spawn(async move { reads.read(1, read).await.unwrap() })
            })
            .collect();
        assert_eq!(first.await.unwrap(), 1);
        for read in during {
            assert_eq!(
                read.await.unwrap(),
                2,
                "answered by a run that started after it"
            );
        }
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(lock(reads.running.as_ref().unwrap()).is_empty());
    }

    #[tokio::test]
    async fn other_arguments_run_on_their_own_and_a_lone_read_runs_at_once() {
        let reads = SharedReads::<u8, u32>::new(true);
        let runs = Arc::new(AtomicU32::new(0));
        let (a, b) = tokio::join!(reads.read(1, counted(&runs)), reads.read(2, counted(&runs)));
        let mut answers = [a.unwrap(), b.unwrap()];
        answers.sort();
        assert_eq!(answers, [1, 2]);
        assert_eq!(reads.read(1, counted(&runs)).await.unwrap(), 3);
    }

    #[tokio::test]
    async fn a_run_whose_request_is_dropped_still_answers_those_that_waited() {
        let reads = SharedReads::<u8, u32>::new(true);
        let runs = Arc::new(AtomicU32::new(0));
        let first = tokio::spawn({
            let (reads, read) = (reads.clone(), counted(&runs));
            async move { reads.read(1, read).await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let waiting = tokio::spawn({
            let (reads, read) = (reads.clone(), counted(&runs));
            async move { reads.read(1, read).await.unwrap() }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        first.abort();
        assert_eq!(waiting.await.unwrap(), 2);
        assert!(lock(reads.running.as_ref().unwrap()).is_empty());
    }

    #[tokio::test]
    async fn a_failed_run_fails_each_caller_that_shared_it_with_its_cause() {
        let reads = SharedReads::<u8, u32>::new(true);
        let fail = || async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Err::<u32, _>(Error::from(anyhow::anyhow!("database gone")))
        };
        let first = tokio::spawn({
            let reads = reads.clone();
            async move { reads.read(1, fail).await }
        });
        tokio::time::sleep(Duration::from_millis(5)).await;
        let (a, b) = tokio::join!(reads.read(1, fail), reads.read(1, fail));
        for answer in [first.await.unwrap(), a, b] {
            match answer {
                Err(Error::Internal(source)) => {
                    assert!(format!("{source:#}").contains("database gone"))
                }
                other => panic!("{other:?}"),
            }
        }
        let not_found = reads
            .read(1, || async { Err::<u32, _>(Error::NotFound) })
            .await;
        assert!(matches!(not_found, Err(Error::NotFound)));
    }

    #[tokio::test]
    async fn unshared_every_read_runs() {
        let reads = SharedReads::<u8, u32>::new(false);
        let runs = Arc::new(AtomicU32::new(0));
        let (a, b) = tokio::join!(reads.read(1, counted(&runs)), reads.read(1, counted(&runs)));
        assert_eq!(
            (a.unwrap() + b.unwrap(), runs.load(Ordering::SeqCst)),
            (3, 2)
        );
    }
}
