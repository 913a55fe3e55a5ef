//! What every request shares: the pool, the clock, the hashing pool, the
//! account policy and the batch queues. Built once in `app.rs`; holds no
//! per-account state it relies on (only guesses the database checks, see
//! `known_keys`), so any number of keymeter processes can serve one
//! database.

use std::sync::Arc;

use sea_orm::DatabaseConnection;

use crate::clock::Clock;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::oidc::Providers;
use crate::service::group_commit::Charger;
use crate::service::limits::{Limit, LoginLimits};
use crate::service::lookups::Lookups;
use crate::service::passwords::PasswordHasher;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub db: DatabaseConnection,
    pub clock: Arc<dyn Clock>,
    pub hasher: PasswordHasher,
    pub policy: AccountPolicy,
    pub charger: Charger,
    pub lookups: Lookups,
    /// The sign-in providers, discovered at start.
    pub providers: Providers,
}

/// What a new account gets, how many keys it may hold and how long a
/// sign-in lasts.
#[derive(Debug, Clone)]
pub struct AccountPolicy {
    pub plan: String,
    pub monthly_credits: i64,
    /// Active keys per user; 0: no cap.
    pub max_active_keys: u32,
    pub session_ttl: chrono::Duration,
    pub login_limits: LoginLimits,
    pub signup_limit: Limit,
}

impl AccountPolicy {
    pub fn from_config(config: &Config) -> Self {
        Self {
            plan: "free".to_owned(),
            monthly_credits: config.monthly_credits,
            max_active_keys: config.max_active_keys,
            session_ttl: config.session_ttl(),
            login_limits: config.login_limits(),
            signup_limit: config.signup_limit(),
        }
    }

    /// How long an auth attempt can still count against some limit.
    pub fn longest_limit_window(&self) -> chrono::Duration {
        self.login_limits
            .longest_window()
            .max(self.signup_limit.window)
    }
}

impl AppState {
    pub fn new(
        db: DatabaseConnection,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        config: &Config,
        providers: Providers,
    ) -> Self {
        let policy = AccountPolicy::from_config(config);
        let charger = if config.group_commit {
            let (workers, max_batch) = (config.group_commit_workers, config.group_commit_max_batch);
            Charger::grouped(
                db.clone(),
                clock.clone(),
                policy.clone(),
                metrics,
                workers,
                max_batch,
            )
        } else {
            Charger::per_request(metrics)
        };
        let lookups = if config.coalesce_reads {
            Lookups::coalesced(db.clone(), clock.clone())
        } else {
            Lookups::direct(db.clone(), clock.clone())
        };
        Self(Arc::new(Inner {
            db,
            clock,
            hasher: PasswordHasher::new(config.hashing_concurrency()),
            policy,
            charger,
            lookups,
            providers,
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
