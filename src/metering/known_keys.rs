//! What this process has read about the keys it charged, kept so that the
//! next charge on the same key can skip reading it again: on PostgreSQL a
//! call without a requestId is then one statement, one round trip.
//!
//! Only ever a guess. The charge statement checks in the database, in the
//! same statement, that the key is neither revoked nor expired, still has
//! the rate limit remembered, and the account still has the anchor and
//! credits remembered, so a revoked or expired key, a changed limit or a
//! changed plan is never charged on a stale guess: the statement refuses
//! and the call is charged from a fresh read.
//! The credits used and a limited key's window count are hints only, to
//! skip the guess when the account or the window looks full. Nothing here
//! is needed for correctness or shared between processes.

use chrono::{DateTime, Utc};

use crate::bounded_map::BoundedMap;
use crate::domain::rate_limit::WindowCount;
use crate::domain::{Counter, KeyAccount};

/// Keys kept at most; past it the map starts over. An entry is a couple of
/// hundred bytes, so this bounds it to a few MiB.
const CAPACITY: usize = 10_000;

pub struct KnownKeys {
    keys: BoundedMap<Vec<u8>, KeyAccount>,
}

impl Default for KnownKeys {
    fn default() -> Self {
        Self {
            keys: BoundedMap::new(CAPACITY),
        }
    }
}

impl KnownKeys {
    /// The key last read for the secret hashing to `hash`.
    pub fn get(&self, hash: &[u8]) -> Option<KeyAccount> {
        self.keys.get(hash)
    }

    /// Keeps `key` as read now, if it can be charged without a read: active
    /// and with an account. Anything else is forgotten.
    pub fn remember(&self, hash: &[u8], key: &KeyAccount) {
        if key.revoked || key.account.is_none() {
            self.keys.remove(hash);
        } else {
            self.keys.insert(hash.to_vec(), key.clone());
        }
    }

    /// Notes the calls the key's window starting at `start` has admitted.
    pub fn saw_window(&self, hash: &[u8], start: DateTime<Utc>, used: i64) {
        self.keys.update(hash, |key| {
            key.window = Some(WindowCount { start, used });
        });
    }

    /// Notes the account's credits used in the cycle starting at `cycle_start`.
    pub fn saw_usage(&self, hash: &[u8], cycle_start: DateTime<Utc>, used: i64) {
        self.keys.update(hash, |key| {
            if let Some(account) = key.account.as_mut() {
                account.latest = Some(Counter { cycle_start, used });
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::{AccountPricing, KeyType};

    fn key(revoked: bool) -> KeyAccount {
        KeyAccount {
            key_id: Uuid::new_v4(),
            key_type: KeyType::Dev,
            revoked,
            expires_at: None,
            rate_limit: None,
            window: None,
            account: Some(AccountPricing {
                account_id: Uuid::new_v4(),
                monthly_credits: 100,
                anchor: Utc::now(),
                latest: None,
            }),
        }
    }

    #[test]
    fn a_revoked_key_is_forgotten_not_kept() {
        let known = KnownKeys::default();
        let active = key(false);
        known.remember(b"h", &active);
        assert_eq!(known.get(b"h").map(|k| k.key_id), Some(active.key_id));
        known.remember(b"h", &key(true));
        assert!(known.get(b"h").is_none());
    }

    #[test]
    fn usage_seen_is_kept_with_the_key() {
        let known = KnownKeys::default();
        known.remember(b"h", &key(false));
        let start = Utc::now();
        known.saw_usage(b"h", start, 42);
        let account = known.get(b"h").and_then(|k| k.account).unwrap();
        assert_eq!(
            account.latest,
            Some(Counter {
                cycle_start: start,
                used: 42
            })
        );
    }

    #[test]
    fn it_never_holds_more_than_its_capacity() {
        let known = KnownKeys::default();
        for i in 0..CAPACITY + 10 {
            known.remember(&i.to_be_bytes(), &key(false));
        }
        assert!(known.keys.len() <= CAPACITY);
        assert!(known.get(&(CAPACITY + 9).to_be_bytes()).is_some());
    }
}
