//! The hot reads, coalesced: a key by its secret (verifyKey) and a user by a
//! session token (every signed-in request). Concurrent lookups of one kind
//! share one indexed query, `WHERE … IN (…)`, instead of a round trip each:
//! under load most of a lookup's cost is the round trip, not the index.
//! A lookup never waits for a batch to fill (see `batch`), and it reads
//! committed data after its request arrived, like a direct read.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::Arc;

use crate::store::db::Db;

use super::sessions::{self, SessionUser};
use crate::batch::Batcher;
use crate::clock::Clock;
use crate::domain::KeyAccount;
use crate::error::Result;
use crate::store::keys::find_keys;

/// Lookups of one kind in flight at once, and the most one query takes.
/// One at a time: every lookup asked while it runs goes in the next, so
/// under load each query answers many (a burst of 32 requests, one or two
/// queries), and alone a lookup still goes at once. With four in flight,
/// `me` and verifyKey credits=0 ran 20 to 25 % slower on the benchmark
/// (smaller batches, more statements and more wake-ups for the same work).
const WORKERS: usize = 1;
const MAX_BATCH: usize = 64;

#[derive(Clone)]
pub enum Lookups {
    /// Each lookup is its own query.
    Direct { db: Db, clock: Arc<dyn Clock> },
    /// Concurrent lookups share queries.
    Coalesced {
        keys: Batcher<Vec<u8>, Option<KeyAccount>>,
        users: Batcher<Vec<u8>, Option<SessionUser>>,
    },
}

impl Lookups {
    pub fn direct(db: Db, clock: Arc<dyn Clock>) -> Self {
        Self::Direct { db, clock }
    }

    /// Starts the lookup workers on the current runtime.
    pub fn coalesced(db: Db, clock: Arc<dyn Clock>) -> Self {
        let keys = {
            let db = db.clone();
            Batcher::start(WORKERS, MAX_BATCH, move |hashes: Vec<Vec<u8>>| {
                let db = db.clone();
                each_of(hashes, move |distinct| async move {
                    Ok(find_keys(&db, &distinct).await?)
                })
            })
        };
        let users = Batcher::start(WORKERS, MAX_BATCH, move |hashes: Vec<Vec<u8>>| {
            let (db, now) = (db.clone(), clock.now());
            each_of(hashes, move |distinct| async move {
                sessions::users_of(&db, &distinct, now).await
            })
        });
        Self::Coalesced { keys, users }
    }

    /// The key whose secret hashes to `hash`, with its account.
    pub async fn key(&self, hash: Vec<u8>) -> Result<Option<KeyAccount>> {
        match self {
            Self::Direct { db, .. } => Ok(find_keys(db, std::slice::from_ref(&hash))
                .await?
                .remove(&hash)),
            Self::Coalesced { keys, .. } => keys.call(hash).await,
        }
    }

    /// The user of the live session whose token hashes to `token_hash`.
    pub async fn user(&self, token_hash: Vec<u8>) -> Result<Option<SessionUser>> {
        match self {
            Self::Direct { db, clock } => {
                Ok(
                    sessions::users_of(db, std::slice::from_ref(&token_hash), clock.now())
                        .await?
                        .remove(&token_hash),
                )
            }
            Self::Coalesced { users, .. } => users.call(token_hash).await,
        }
    }
}

/// Answers each of `items` from one lookup of the distinct ones (a hot key
/// is often asked for many times in one batch).
async fn each_of<K, V, F, Fut>(items: Vec<K>, find: F) -> Result<Vec<Option<V>>>
where
    K: Clone + Ord + Hash,
    V: Clone,
    F: FnOnce(Vec<K>) -> Fut,
    Fut: Future<Output = Result<HashMap<K, V>>>,
{
    let mut distinct = items.clone();
    distinct.sort();
    distinct.dedup();
    let found = find(distinct).await?;
    Ok(items.iter().map(|item| found.get(item).cloned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_item_gets_the_answer_for_its_own_key_from_one_lookup_of_the_distinct_keys() {
        let items = vec!["b", "a", "b", "c", "b"];
        let answers = each_of(items, |distinct| async move {
            assert_eq!(distinct, ["a", "b", "c"]);
            Ok(HashMap::from([("a", 1), ("b", 2)]))
        })
        .await
        .unwrap();
        assert_eq!(answers, [Some(2), Some(1), Some(2), None, Some(2)]);
    }
}
