//! Argon2id password hashing on a small pool of dedicated threads.
//!
//! Each hash needs 19 MiB and tens of milliseconds of a core. A fixed number
//! of threads (by default half the CPUs) do all hashing, each reusing one
//! preallocated 19 MiB buffer: a flood of signups or logins queues here,
//! memory stays at threads × 19 MiB instead of growing with the flood (or
//! with the allocator's caches), and the async runtime serving `verifyKey`
//! keeps at least one core of its own.

use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context as _;
use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use tokio::sync::{mpsc, oneshot};

use crate::domain::Password;
use crate::error::{Error, Result};

/// OWASP's recommendation for Argon2id: 19 MiB, 2 passes, 1 lane.
fn params() -> Params {
    Params::new(19 * 1024, 2, 1, Some(32)).expect("valid Argon2 parameters")
}

enum Job {
    Hash(String, oneshot::Sender<anyhow::Result<String>>),
    Verify(
        String,
        Option<String>,
        oneshot::Sender<anyhow::Result<bool>>,
    ),
}

#[derive(Clone)]
pub struct PasswordHasher {
    jobs: mpsc::Sender<Job>,
}

impl PasswordHasher {
    /// Starts `threads` hashing threads.
    pub fn new(threads: usize) -> Self {
        let (jobs, queue) = mpsc::channel::<Job>(1024);
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{n}"))
                .spawn(move || hashing_thread(&queue))
                .expect("starting a hashing thread");
        }
        Self { jobs }
    }

    pub async fn hash(&self, password: &Password) -> Result<String> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Hash(password.expose().to_owned(), reply))
            .await?;
        Ok(answer.await.context("hashing thread stopped")??)
    }

    /// Checks `password` against `stored`. With no stored hash (unknown
    /// email) it checks against a throwaway hash instead, so that a wrong
    /// email costs the same time as a wrong password.
    pub async fn verify(&self, password: &Password, stored: Option<String>) -> Result<bool> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Verify(password.expose().to_owned(), stored, reply))
            .await?;
        Ok(answer.await.context("hashing thread stopped")??)
    }

    async fn submit(&self, job: Job) -> Result<()> {
        self.jobs
            .send(job)
            .await
            .map_err(|_| Error::from(anyhow::anyhow!("hashing threads stopped")))
    }
}

fn hashing_thread(queue: &Mutex<mpsc::Receiver<Job>>) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = match queue.lock() {
            Ok(mut queue) => queue.blocking_recv(),
            Err(_) => return,
        };
        match job {
            None => return,
            Some(Job::Hash(password, reply)) => {
                let _ = reply.send(hash_with(&mut memory, password.as_bytes()));
            }
            Some(Job::Verify(password, stored, reply)) => {
                let known = stored.is_some();
                let stored = stored.unwrap_or_else(|| decoy_hash().to_owned());
                let matches = verify_with(&mut memory, password.as_bytes(), &stored);
                let _ = reply.send(matches.map(|m| m && known));
            }
        }
    }
}

/// Argon2id of `password` with a fresh salt, as a PHC string, in `memory`.
fn hash_with(memory: &mut Vec<Block>, password: &[u8]) -> anyhow::Result<String> {
    let params = params();
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).context("OS random source")?;
    let mut out = [0u8; 32];
    memory.resize(params.block_count().max(memory.len()), Block::default());
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone())
        .hash_password_into_with_memory(password, &salt, &mut out, &mut memory[..])
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let hash = Output::new(&out).map_err(|e| anyhow::anyhow!("output: {e}"))?;
    Ok(format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        salt.as_str(),
        hash
    ))
}

/// Whether `password` hashes to `stored` (a PHC string, with its own
/// parameters), compared in constant time.
fn verify_with(memory: &mut Vec<Block>, password: &[u8], stored: &str) -> anyhow::Result<bool> {
    let parsed = PasswordHash::new(stored).map_err(|e| anyhow::anyhow!("stored hash: {e}"))?;
    let params = Params::try_from(&parsed).map_err(|e| anyhow::anyhow!("stored params: {e}"))?;
    let expected = parsed.hash.context("stored hash has no output")?;
    let salt = parsed.salt.context("stored hash has no salt")?;
    let mut salt_buf = [0u8; 64];
    let salt = salt
        .decode_b64(&mut salt_buf)
        .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let mut out = vec![0u8; expected.len()];
    memory.resize(params.block_count().max(memory.len()), Block::default());
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..])
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
    let out = Output::new(&out).map_err(|e| anyhow::anyhow!("output: {e}"))?;
    Ok(out == expected)
}

/// A hash of a random password nobody knows, with the same parameters as real ones.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut password = [0u8; 32];
        getrandom::fill(&mut password).expect("the OS random source is unavailable");
        hash_with(&mut Vec::new(), &password).expect("hashing a decoy cannot fail")
    })
}

#[cfg(test)]
mod tests {
    use argon2::PasswordVerifier;

    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_reject() {
        let hasher = PasswordHasher::new(1);
        let right = Password::parse("correct horse").unwrap();
        let wrong = Password::parse("wrong horse").unwrap();
        let hash = hasher.hash(&right).await.unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(hasher.verify(&right, Some(hash.clone())).await.unwrap());
        assert!(!hasher.verify(&wrong, Some(hash)).await.unwrap());
        assert!(!hasher.verify(&right, None).await.unwrap());
    }

    /// The hashes are standard PHC strings that any Argon2 implementation reads.
    #[tokio::test]
    async fn hashes_are_standard_phc_strings() {
        let hasher = PasswordHasher::new(1);
        let password = Password::parse("correct horse").unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"wrong horse", &parsed)
            .is_err());
    }
}
