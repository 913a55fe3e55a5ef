//! Argon2id password hashing on a bounded pool of blocking threads.
//!
//! Each hash takes ~19 MiB and tens of milliseconds of a core. A semaphore
//! caps how many run at once, so a flood of signups or logins queues here
//! instead of exhausting memory, and the async runtime that serves
//! `verifyKey` never runs a hash itself.

use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use argon2::password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::domain::Password;
use crate::error::Result;

/// OWASP's recommendation for Argon2id: 19 MiB, 2 passes, 1 lane.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[derive(Clone)]
pub struct PasswordHasher {
    permits: Arc<Semaphore>,
}

impl PasswordHasher {
    pub fn new(concurrency: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
        }
    }

    pub async fn hash(&self, password: &Password) -> Result<String> {
        let password = password.expose().to_owned();
        self.run(move || {
            let mut salt = [0u8; 16];
            getrandom::fill(&mut salt).context("OS random source")?;
            let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
            let hash = argon2()
                .hash_password(password.as_bytes(), &salt)
                .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
            Ok(hash.to_string())
        })
        .await
    }

    /// Checks `password` against `stored`. With no stored hash (unknown
    /// email) it checks against a throwaway hash instead, so that a wrong
    /// email costs the same time as a wrong password.
    pub async fn verify(&self, password: &Password, stored: Option<String>) -> Result<bool> {
        let password = password.expose().to_owned();
        self.run(move || {
            let known = stored.is_some();
            let stored = stored.unwrap_or_else(|| decoy_hash().to_owned());
            let parsed =
                PasswordHash::new(&stored).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
            let matches = argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok();
            Ok(known && matches)
        })
        .await
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T> {
        let _permit = self
            .permits
            .acquire()
            .await
            .context("hashing pool closed")?;
        let outcome = tokio::task::spawn_blocking(work)
            .await
            .context("hashing task panicked")?;
        Ok(outcome?)
    }
}

/// A hash of a random password nobody knows, with the same parameters as real ones.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).expect("the OS random source is unavailable");
        let salt = SaltString::encode_b64(&bytes).expect("16 bytes make a valid salt");
        argon2()
            .hash_password(&bytes, &salt)
            .expect("hashing a decoy cannot fail")
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_reject() {
        let hasher = PasswordHasher::new(1);
        let hash = hasher
            .hash(&Password::parse("correct horse").unwrap())
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        let right = Password::parse("correct horse").unwrap();
        let wrong = Password::parse("wrong horse").unwrap();
        assert!(hasher.verify(&right, Some(hash.clone())).await.unwrap());
        assert!(!hasher.verify(&wrong, Some(hash)).await.unwrap());
        assert!(!hasher.verify(&right, None).await.unwrap());
    }
}
