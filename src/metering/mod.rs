//! verifyKey and keysUsage, behind one front door: `Metering`. Read top to
//! bottom, never returning to a file already left:
//!
//! - a free check (credits 0): `check`, one lookup (a limited key's check
//!   takes a slot: it is charged 0 credits, the locked way);
//! - a charge: `charger` (alone, or queued with others: group commit) →
//!   `batch_charge` (one batch: remembered keys, one read, then the paths)
//!   → `isolate` (a failure stays with its call) → `one_statement`
//!   (PostgreSQL, calls that fit as read) or `locked` (claim, lock, admit,
//!   record) → `writes` (the write model) → `store` (the SQL);
//! - a refund: `refund`, one short transaction taking a charge back;
//! - keysUsage: `usage`, one query over rollups; usageSeries: `series`,
//!   one query over hourly or daily rollups.
//!
//! `call` is a call priced against its account, `account` provisions that
//! account when signup could not, `known_keys` is what a process remembers
//! (a guess the database checks), `failures` sorts what a failed step
//! means. The arithmetic of admission is pure, in `domain::admission`.

mod account;
mod batch_charge;
mod call;
mod charger;
mod check;
mod failures;
mod isolate;
mod known_keys;
mod locked;
mod one_statement;
mod refund;
mod series;
mod usage;
mod writes;

use std::sync::Arc;

use crate::store::db::Db;
use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::domain::{AccountPolicy, Charge, Membership, Refund, SecretHash, Verification};
use crate::error::Result;
use crate::metrics::Metrics;
use crate::service::lookups::Lookups;
use crate::shared_reads::SharedReads;
pub use crate::store::usage::Maker;
use batch_charge::BatchCharging;
use call::ChargeRequest;
use charger::Charger;
pub use charger::Grouping;
use check::Checked;
pub use series::{KeySeries, Point, SeriesAsk, UsageSeries};
pub use usage::{AccountKeys, KeyUsage, KeysUsage};
use uuid::Uuid;

#[derive(Clone)]
pub struct Metering {
    db: Db,
    clock: Arc<dyn Clock>,
    policy: AccountPolicy,
    lookups: Lookups,
    charger: Charger,
    reads: Reads,
}

/// The reads behind keys, keysUsage and usageSeries, each read once for
/// the requests asking together.
#[derive(Clone)]
struct Reads {
    account_keys: SharedReads<Uuid, Arc<AccountKeys>>,
    series: SharedReads<(Uuid, SeriesAsk), UsageSeries>,
}

impl Metering {
    /// Starts the charger (its batch workers, when grouped) on the current runtime.
    pub fn start(
        db: Db,
        clock: Arc<dyn Clock>,
        policy: AccountPolicy,
        lookups: Lookups,
        metrics: Arc<Metrics>,
        grouping: Grouping,
        share_reads: bool,
    ) -> Self {
        let charging = BatchCharging {
            db: db.clone(),
            known: Default::default(),
        };
        let charger = Charger::start(charging, clock.clone(), metrics, grouping);
        Self {
            db,
            clock,
            policy,
            lookups,
            charger,
            reads: Reads {
                account_keys: SharedReads::new(share_reads),
                series: SharedReads::new(share_reads),
            },
        }
    }

    /// Checks `secret` and, when it is valid and the credits fit in the
    /// account's cycle, charges them.
    #[tracing::instrument(name = "verify", level = "debug", skip_all, fields(credits = charge.credits, request_id = charge.request_id.is_some()))]
    pub async fn verify(&self, secret: &str, charge: Charge) -> Result<Verification> {
        let hash = SecretHash::of(secret).to_vec();
        let verification = if charge.credits == 0 {
            match check::check(&self.lookups, hash.clone(), self.now()).await? {
                Checked::Answered(answer) => answer,
                // Never remembered, so each check answered VALID takes a slot.
                Checked::TakesASlot => {
                    let charge = Charge {
                        request_id: None,
                        ..charge
                    };
                    self.charger.submit(ChargeRequest { hash, charge }).await?
                }
            }
        } else {
            self.charger.submit(ChargeRequest { hash, charge }).await?
        };
        Ok(verification.answered_at(self.now()))
    }

    /// Gives back the credits of the call `secret` was charged with
    /// `request_id`, once however many refunds race.
    #[tracing::instrument(name = "refund", skip_all)]
    pub async fn refund(&self, secret: &str, request_id: &str) -> Result<Refund> {
        let hash = SecretHash::of(secret).to_vec();
        refund::refund(&self.db, &self.lookups, hash, request_id, self.now()).await
    }

    /// The member's account's keys with their makers and their usage in
    /// the current cycle: what keysUsage and keys answer from.
    #[tracing::instrument(name = "account_keys", level = "debug", skip_all, fields(account_id = %member.account_id))]
    pub async fn account_keys(&self, member: &Membership) -> Result<Arc<AccountKeys>> {
        let (db, account_id) = (self.db.clone(), member.account_id);
        let read = move || {
            let db = db.clone();
            async move { Ok(Arc::new(usage::account_keys(&db, account_id).await?)) }
        };
        self.reads.account_keys.read(account_id, read).await
    }

    /// The member's account's usage over time.
    #[tracing::instrument(name = "usage_series", level = "debug", skip_all, fields(account_id = %member.account_id))]
    pub async fn usage_series(&self, member: &Membership, ask: SeriesAsk) -> Result<UsageSeries> {
        let (db, policy, clock) = (self.db.clone(), self.policy.clone(), self.clock.clone());
        let account_id = member.account_id;
        let key = (account_id, ask.clone());
        let read = move || {
            let (db, policy, ask, now) = (db.clone(), policy.clone(), ask.clone(), clock.now());
            async move { series::usage_series(&db, &policy, account_id, ask, now).await }
        };
        self.reads.series.read(key, read).await
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }
}
