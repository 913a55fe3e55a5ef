//! What every request shares, built once in `app.rs` and read only by the
//! GraphQL layer: the pool, the clock, the policy, and the services made
//! from them. No service imports this file: each is given the parts it
//! uses. It holds no per-account state it relies on (only guesses the
//! database checks), so any number of keymeter processes can serve one
//! database.

use std::sync::Arc;

use crate::store::db::Db;

use crate::clock::Clock;
use crate::config::{Config, PublicOrigin};
use crate::domain::{AccountPolicy, Retention};
use crate::metering::{Grouping, Metering};
use crate::metrics::Metrics;
use crate::oidc::Providers;
use crate::service::accounts::Accounts;
use crate::service::alerts::Alerts;
use crate::service::invitations::Invitations;
use crate::service::keys::Keys;
use crate::service::lookups::Lookups;
use crate::service::mail::Mailer;
use crate::service::passwords::PasswordHasher;
use crate::service::sessions::Sessions;
use crate::service::sign_in::SignIn;
use crate::service::teams::Teams;
use crate::service::webhooks::Webhooks;
use crate::shared_reads::SharedReads;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub db: Db,
    /// For the times statuses are computed at (a key's ACTIVE or EXPIRED).
    pub clock: Arc<dyn Clock>,
    pub policy: AccountPolicy,
    /// How long usage is kept, and how often it is swept.
    pub retention: Retention,
    /// Signing up, logging in and provisioning.
    pub accounts: Accounts,
    /// Signing in with a provider.
    pub sign_in: SignIn,
    /// Ending sessions.
    pub sessions: Sessions,
    /// Accounts and their members and audit log.
    pub teams: Teams,
    /// Invitations to an account: made, revoked, accepted.
    pub invitations: Invitations,
    /// Usage alert thresholds, and the fan-out of the alerts charges raise.
    pub alerts: Alerts,
    /// API keys: create, list, rename, rotate, revoke.
    pub keys: Keys,
    /// verifyKey, refunds, keysUsage and usageSeries.
    pub metering: Metering,
    pub lookups: Lookups,
    /// Outgoing email, through the outbox; disabled without SMTP settings.
    pub mail: Mailer,
    /// Webhook endpoints and deliveries, and the worker delivering them.
    pub webhooks: Webhooks,
}

impl AppState {
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        config: &Config,
        public: &PublicOrigin,
        providers: Providers,
        mail: Mailer,
    ) -> Self {
        let policy = config.account_policy();
        let lookups = if config.coalesce_reads {
            Lookups::coalesced(db.clone(), clock.clone())
        } else {
            Lookups::direct(db.clone(), clock.clone())
        };
        let grouping = match config.group_commit {
            true => Grouping::Grouped {
                workers: config.group_commit_workers,
                max_batch: config.group_commit_max_batch,
            },
            false => Grouping::PerRequest,
        };
        let metering = Metering::start(
            db.clone(),
            clock.clone(),
            policy.clone(),
            lookups.clone(),
            metrics,
            grouping,
            config.coalesce_reads,
        );
        let accounts = Accounts {
            db: db.clone(),
            clock: clock.clone(),
            hasher: PasswordHasher::new(config.hashing_concurrency()),
            policy: policy.clone(),
        };
        let keys = Keys {
            db: db.clone(),
            clock: clock.clone(),
            policy: policy.clone(),
            usable_reads: SharedReads::new(config.coalesce_reads),
        };
        let teams = Teams {
            db: db.clone(),
            clock: clock.clone(),
            policy: policy.clone(),
            account_reads: SharedReads::new(config.coalesce_reads),
            members_reads: SharedReads::new(config.coalesce_reads),
            audit_reads: SharedReads::new(config.coalesce_reads),
            user_reads: SharedReads::new(config.coalesce_reads),
        };
        let invitations = Invitations {
            db: db.clone(),
            clock: clock.clone(),
            public: public.clone(),
            mail: mail.clone(),
            teams: teams.clone(),
            pending_reads: SharedReads::new(config.coalesce_reads),
        };
        let alerts = Alerts {
            db: db.clone(),
            clock: clock.clone(),
            mail: mail.clone(),
            threshold_reads: SharedReads::new(config.coalesce_reads),
        };
        let webhook_settings = config
            .webhook_settings()
            .expect("checked by Config::validate before the application is built");
        let webhooks = Webhooks::new(
            db.clone(),
            clock.clone(),
            webhook_settings,
            config.coalesce_reads,
        );
        let sessions = Sessions {
            db: db.clone(),
            clock: clock.clone(),
        };
        Self(Arc::new(Inner {
            sign_in: SignIn::new(accounts.clone(), providers),
            db,
            clock,
            policy,
            retention: config.retention(),
            accounts,
            sessions,
            teams,
            invitations,
            alerts,
            keys,
            metering,
            lookups,
            mail,
            webhooks,
        }))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
