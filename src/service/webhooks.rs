//! Webhooks (contract v3): an account's endpoints (OWNER only), the
//! deliveries listed and redelivered, and the worker that delivers them as
//! Standard Webhooks.
//!
//! `webhook_deliveries` is the queue: `webhook_queue::enqueue` (re-exported
//! here) writes one row per subscribed endpoint on the caller's transaction (so a delivery exists iff
//! the change that raised the event commits), and `Webhooks::deliver_forever`,
//! a background worker in every process, claims due rows under a lease and
//! attempts them, several at once so that one slow receiver delays nobody
//! else's. Requests never wait on a receiver; a restart loses nothing.
//!
//! Every attempt resolves the endpoint's host again, refuses non-public
//! addresses (unless KEYMETER_WEBHOOK_ALLOW_PRIVATE) and pins the request
//! to the address it checked, so a DNS answer that changes between the
//! check and the connection (rebinding) cannot aim keymeter elsewhere.
//! Secrets are never logged, nor are bodies (they may carry account data).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use serde_json::json;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use uuid::Uuid;

use super::audit;
use super::webhook_queue::insert_delivery;
pub use super::webhook_queue::status;
pub use super::webhook_queue::{enqueue, WebhookEvent};
use crate::clock::Clock;
use crate::config::WebhookSettings;
use crate::domain::audit::{Action, Actor, Change, TargetType};
use crate::domain::webhook::{self, WebhookUrl, MAX_ENDPOINTS, TEST_EVENT};
use crate::domain::Membership;
use crate::entity::{webhook_delivery, webhook_endpoint};
use crate::error::{Error, Result};
use crate::shared_reads::SharedReads;
use crate::store::db::Db;
use crate::store::statement;

/// How long an ended (SUCCEEDED or FAILED) delivery stays listed and
/// redeliverable: long enough to notice and replay a receiver's outage,
/// short enough that the table stays the size of recent traffic.
pub const KEEP_ENDED: chrono::Duration = chrono::Duration::days(30);

/// An endpoint just made, with the only copy of its secret returned.
pub struct Created {
    pub endpoint: webhook_endpoint::Model,
    pub secret: String,
}

/// Most deliveries one webhookDeliveries page may ask for.
pub const MAX_DELIVERIES_PAGE: i32 = 200;

/// How many attempts one process makes at once: enough that a few slow
/// receivers (each cut off at the timeout) leave room for the others.
const CONCURRENCY: usize = 8;

/// How often an idle worker looks for due rows: rows written by other
/// processes or by `enqueue` (which cannot wake it), and retries coming due.
const POLL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Webhooks {
    pub db: Db,
    pub clock: Arc<dyn Clock>,
    pub settings: WebhookSettings,
    /// Wakes this process's worker after a test or a redelivery: a
    /// shortcut only, the poll finds every row anyway.
    pub wake: Arc<Notify>,
    /// An account's endpoints, and pages of its deliveries (by endpoint and
    /// size), each read once for the requests asking together.
    pub endpoint_reads: SharedReads<Uuid, Vec<webhook_endpoint::Model>>,
    pub delivery_reads: SharedReads<(Uuid, Option<Uuid>, u64), Vec<webhook_delivery::Model>>,
}

impl Webhooks {
    /// `share_reads`: identical reads asked together share one statement.
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        settings: WebhookSettings,
        share_reads: bool,
    ) -> Self {
        Self {
            db,
            clock,
            settings,
            wake: Arc::new(Notify::new()),
            endpoint_reads: SharedReads::new(share_reads),
            delivery_reads: SharedReads::new(share_reads),
        }
    }

    /// The account an endpoint belongs to, for the caller to check the
    /// user's membership of; no such endpoint: NOT_FOUND.
    pub async fn account_of_endpoint(&self, id: Uuid) -> Result<Uuid> {
        let endpoint = webhook_endpoint::Entity::find_by_id(id)
            .one(&self.db)
            .await?;
        endpoint.map(|e| e.account_id).ok_or(Error::NotFound)
    }

    /// The account a delivery belongs to; no such delivery: NOT_FOUND.
    pub async fn account_of_delivery(&self, id: Uuid) -> Result<Uuid> {
        let delivery = webhook_delivery::Entity::find_by_id(id)
            .one(&self.db)
            .await?;
        delivery.map(|d| d.account_id).ok_or(Error::NotFound)
    }

    /// createWebhookEndpoint: OWNER. The URL must be callable now (its host
    /// resolving to public addresses only, unless private ones are
    /// allowed); at most `MAX_ENDPOINTS` per account, counted in the
    /// account's turn so racing creations cannot pass it.
    pub async fn create(
        &self,
        member: &Membership,
        actor: &Actor,
        url: &str,
        events: &[String],
    ) -> Result<Created> {
        member.require_owner()?;
        let url = WebhookUrl::parse(url, self.settings.allow_private)?;
        let events = webhook::parse_events(events)?;
        // A host whose DNS never answers must not hold the request.
        let resolved = tokio::time::timeout(
            self.settings.timeout,
            resolve(&url, self.settings.allow_private),
        )
        .await
        .unwrap_or_else(|_| Err(format!("resolving its host {} timed out", url.host())));
        resolved.map_err(|why| Error::bad_input(format!("url: {why}")))?;
        let secret = webhook::new_secret();
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        super::keys::serialize_key_creation(&txn, member.account_id).await?;
        let count = webhook_endpoint::Entity::find()
            .filter(webhook_endpoint::Column::AccountId.eq(member.account_id))
            .count(&txn)
            .await?;
        if count >= MAX_ENDPOINTS {
            return Err(Error::bad_input(format!(
                "at most {MAX_ENDPOINTS} webhook endpoints per account"
            )));
        }
        let endpoint = webhook_endpoint::ActiveModel {
            id: Set(Uuid::new_v4()),
            account_id: Set(member.account_id),
            url: Set(url.as_str().to_owned()),
            events: Set(serde_json::to_string(&events).expect("strings serialize")),
            secret: Set(secret.clone()),
            created_at: Set(now),
            disabled_at: Set(None),
        }
        .insert(&txn)
        .await?;
        let change = Change::new(
            Action::WebhookEndpointCreated,
            TargetType::WebhookEndpoint,
            endpoint.id,
        )
        .named(&endpoint.url);
        audit::record(&txn, member.account_id, actor, change, now).await?;
        txn.commit().await?;
        Ok(Created { endpoint, secret })
    }

    /// deleteWebhookEndpoint: OWNER. Its deliveries go with it, pending
    /// ones included, so nothing more is sent to it.
    pub async fn delete(&self, member: &Membership, actor: &Actor, id: Uuid) -> Result<()> {
        member.require_owner()?;
        let endpoint = self.endpoint(member, id).await?;
        let now = self.clock.now();
        let txn = self.db.begin().await?;
        webhook_delivery::Entity::delete_many()
            .filter(webhook_delivery::Column::EndpointId.eq(id))
            .exec(&txn)
            .await?;
        let deleted = webhook_endpoint::Entity::delete_by_id(id)
            .exec(&txn)
            .await?;
        if deleted.rows_affected == 0 {
            // Deleted by a racing call, which logged it.
            return Err(Error::NotFound);
        }
        let change = Change::new(
            Action::WebhookEndpointDeleted,
            TargetType::WebhookEndpoint,
            id,
        )
        .named(&endpoint.url);
        audit::record(&txn, member.account_id, actor, change, now).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Account.webhookEndpoints: OWNER; oldest first.
    pub async fn endpoints(&self, member: &Membership) -> Result<Vec<webhook_endpoint::Model>> {
        member.require_owner()?;
        let (db, account_id) = (self.db.clone(), member.account_id);
        let read = move || {
            let db = db.clone();
            async move {
                Ok(webhook_endpoint::Entity::find()
                    .filter(webhook_endpoint::Column::AccountId.eq(account_id))
                    .order_by_asc(webhook_endpoint::Column::CreatedAt)
                    .order_by_asc(webhook_endpoint::Column::Id)
                    .all(&db)
                    .await?)
            }
        };
        self.endpoint_reads.read(account_id, read).await
    }

    /// Account.webhookDeliveries: OWNER; newest first, `first` 1 to 200,
    /// of one endpoint of the account when `endpoint_id` is given.
    pub async fn deliveries(
        &self,
        member: &Membership,
        endpoint_id: Option<Uuid>,
        first: i32,
    ) -> Result<Vec<webhook_delivery::Model>> {
        member.require_owner()?;
        if !(1..=MAX_DELIVERIES_PAGE).contains(&first) {
            return Err(Error::bad_input(format!(
                "first: 1 to {MAX_DELIVERIES_PAGE}"
            )));
        }
        if let Some(endpoint_id) = endpoint_id {
            self.endpoint(member, endpoint_id).await?;
        }
        let (db, account_id, first) = (self.db.clone(), member.account_id, first as u64);
        let read = move || {
            let db = db.clone();
            async move {
                let mut query = webhook_delivery::Entity::find()
                    .filter(webhook_delivery::Column::AccountId.eq(account_id));
                if let Some(endpoint_id) = endpoint_id {
                    query = query.filter(webhook_delivery::Column::EndpointId.eq(endpoint_id));
                }
                Ok(query
                    .order_by_desc(webhook_delivery::Column::CreatedAt)
                    .order_by_desc(webhook_delivery::Column::Id)
                    .limit(first)
                    .all(&db)
                    .await?)
            }
        };
        let key = (account_id, endpoint_id, first);
        self.delivery_reads.read(key, read).await
    }

    /// sendTestWebhook: OWNER. A webhook.test event for this endpoint
    /// alone, whatever its filter. A disabled endpoint receives nothing.
    pub async fn send_test(
        &self,
        member: &Membership,
        endpoint_id: Uuid,
    ) -> Result<webhook_delivery::Model> {
        member.require_owner()?;
        let endpoint = self.endpoint(member, endpoint_id).await?;
        refuse_disabled(&endpoint)?;
        let now = self.clock.now();
        let event = WebhookEvent::new(TEST_EVENT, now, json!({ "endpointId": endpoint.id }));
        let delivery = insert_delivery(&self.db, &endpoint, &event, &event.body(), now).await?;
        self.wake.notify_one();
        Ok(delivery)
    }

    /// redeliverWebhook: OWNER. A SUCCEEDED or FAILED delivery is PENDING
    /// again, due now: a further attempt with the same webhook-id and body,
    /// counted after the earlier ones (so it gets no retries of its own
    /// once its attempts have used the delays up).
    pub async fn redeliver(
        &self,
        member: &Membership,
        delivery_id: Uuid,
    ) -> Result<webhook_delivery::Model> {
        member.require_owner()?;
        let delivery = webhook_delivery::Entity::find_by_id(delivery_id)
            .filter(webhook_delivery::Column::AccountId.eq(member.account_id))
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound)?;
        let endpoint = self.endpoint(member, delivery.endpoint_id).await?;
        refuse_disabled(&endpoint)?;
        let now = self.clock.now();
        const REDELIVER: &str = "UPDATE webhook_deliveries
 SET status = 'pending', next_attempt_at = $2, claimed_until = NULL
 WHERE id = $1 AND status IN ('succeeded', 'failed')";
        let backend = self.db.get_database_backend();
        let values = vec![delivery_id.into(), now.into()];
        let changed = self
            .db
            .execute_raw(statement(backend, REDELIVER, values))
            .await?;
        if changed.rows_affected() == 0 {
            return Err(Error::bad_input(
                "deliveryId: the delivery is still pending; it can be redelivered once it ended",
            ));
        }
        self.wake.notify_one();
        webhook_delivery::Entity::find_by_id(delivery_id)
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound)
    }

    /// One of the member's account's endpoints; another account's, or
    /// none: NOT_FOUND.
    async fn endpoint(&self, member: &Membership, id: Uuid) -> Result<webhook_endpoint::Model> {
        webhook_endpoint::Entity::find_by_id(id)
            .filter(webhook_endpoint::Column::AccountId.eq(member.account_id))
            .one(&self.db)
            .await?
            .ok_or(Error::NotFound)
    }
}

fn refuse_disabled(endpoint: &webhook_endpoint::Model) -> Result<()> {
    match endpoint.disabled_at {
        Some(_) => Err(Error::bad_input(
            "the endpoint is disabled (it answered 410 Gone); make it again to receive events",
        )),
        None => Ok(()),
    }
}

/// The address to call for `url`: its host resolved now, every address it
/// resolves to public (unless `allow_private`); the reason otherwise. All
/// of them, not just the one picked: a name with one public and one private
/// address would otherwise be a coin toss between them.
pub async fn resolve(
    url: &WebhookUrl,
    allow_private: bool,
) -> std::result::Result<SocketAddr, String> {
    let port = url.port();
    let addrs: Vec<SocketAddr> = match url.literal_ip() {
        Some(ip) => vec![SocketAddr::new(ip, port)],
        None => tokio::net::lookup_host((url.host(), port))
            .await
            .map_err(|_| format!("its host {} could not be resolved", url.host()))?
            .collect(),
    };
    let Some(first) = addrs.first().copied() else {
        return Err(format!("its host {} has no address", url.host()));
    };
    if !allow_private {
        for addr in &addrs {
            if let Some(why) = webhook::refusal(addr.ip()) {
                return Err(format!(
                    "its host {} is {why} ({}); only public addresses are allowed",
                    url.host(),
                    addr.ip()
                ));
            }
        }
    }
    Ok(first)
}

/// A claimed delivery and what is needed to attempt it: this process's to
/// attempt until `claimed_until`.
#[derive(FromQueryResult)]
struct Claimed {
    id: Uuid,
    endpoint_id: Uuid,
    event_id: String,
    payload: String,
    attempts: i32,
    claimed_until: DateTime<Utc>,
}

/// What became of one attempt.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// A 2xx.
    Delivered(u16),
    /// 410 Gone: the receiver wants nothing more.
    Gone,
    /// Anything else; the status when there was an answer.
    Failed(Option<u16>, String),
}

impl Webhooks {
    /// Delivers due webhooks until the task is aborted (at shutdown): claims
    /// due rows while fewer than `CONCURRENCY` attempts are under way, each
    /// in a task of its own; when none is due, waits for a wake-up, an
    /// attempt to end, or the next poll. Aborting it drops the attempts
    /// under way: their rows stay leased and come due again later.
    pub async fn deliver_forever(self) {
        let slots = Arc::new(Semaphore::new(CONCURRENCY));
        let mut attempts = JoinSet::new();
        loop {
            while attempts.try_join_next().is_some() {}
            let slot = slots
                .clone()
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            match self.claim_one().await {
                Ok(Some(claimed)) => {
                    let this = self.clone();
                    attempts.spawn(async move {
                        if let Err(err) = this.attempt(claimed).await {
                            tracing::warn!(error = %err, "could not record a webhook attempt");
                        }
                        drop(slot);
                    });
                    continue;
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(error = %err, "could not read the webhook queue"),
            }
            drop(slot);
            tokio::select! {
                _ = tokio::time::sleep(POLL) => {}
                _ = self.wake.notified() => {}
                Some(_) = attempts.join_next() => {}
            }
        }
    }

    /// How long a claimed row belongs to the process that claimed it: longer
    /// than an attempt can take (a lookup and a request, each cut off at the
    /// timeout), so that a live process's row is never taken from it, while
    /// a dead one's comes due again soon after.
    fn lease(&self) -> chrono::Duration {
        let lease = 2 * self.settings.timeout + Duration::from_secs(60);
        chrono::Duration::from_std(lease).expect("the lease fits")
    }

    /// Leases the oldest due pending row whose lease is absent or past. On
    /// PostgreSQL, `SKIP LOCKED` lets processes claiming together take
    /// different rows, and a row another claimed since this statement began
    /// is re-checked and left out; SQLite has one writer at a time.
    async fn claim_one(&self) -> Result<Option<Claimed>> {
        let backend = self.db.get_database_backend();
        let lock = match backend {
            DbBackend::Postgres => " FOR UPDATE SKIP LOCKED",
            _ => "",
        };
        let claim = format!(
            "UPDATE webhook_deliveries SET claimed_until = $1
 WHERE id = (SELECT id FROM webhook_deliveries
              WHERE next_attempt_at <= $2 AND status = 'pending'
                AND (claimed_until IS NULL OR claimed_until <= $2)
              ORDER BY next_attempt_at LIMIT 1{lock})
 RETURNING id, endpoint_id, event_id, payload, attempts, claimed_until"
        );
        let now = self.clock.now();
        let values = vec![(now + self.lease()).into(), now.into()];
        Ok(
            Claimed::find_by_statement(statement(backend, &claim, values))
                .one(&self.db)
                .await?,
        )
    }

    /// Makes one attempt of `claimed` and records its outcome.
    async fn attempt(&self, claimed: Claimed) -> Result<()> {
        let endpoint = webhook_endpoint::Entity::find_by_id(claimed.endpoint_id)
            .one(&self.db)
            .await?;
        let Some(endpoint) = endpoint else {
            // Deleted since the claim: its deliveries went with it.
            return Ok(());
        };
        if endpoint.disabled_at.is_some() {
            return self.record(&claimed, &endpoint, Outcome::Gone, false).await;
        }
        let outcome = self.send(&claimed, &endpoint).await;
        self.record(&claimed, &endpoint, outcome, true).await
    }

    async fn send(&self, claimed: &Claimed, endpoint: &webhook_endpoint::Model) -> Outcome {
        let failed = |why: String| Outcome::Failed(None, why);
        let url = match WebhookUrl::parse(&endpoint.url, self.settings.allow_private) {
            Ok(url) => url,
            Err(err) => return failed(err.to_string()),
        };
        let timeout = self.settings.timeout;
        let addr =
            match tokio::time::timeout(timeout, resolve(&url, self.settings.allow_private)).await {
                Ok(Ok(addr)) => addr,
                Ok(Err(why)) => return failed(why),
                Err(_) => return failed("resolving its host timed out".into()),
            };
        let mut client = reqwest::Client::builder()
            // A proxy would resolve the host itself, past the check.
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout);
        if url.literal_ip().is_none() {
            // Pinned: the connection goes to the address just checked,
            // whatever the host resolves to by the time it is made.
            client = client.resolve(&url.host(), addr);
        }
        let client = match client.build() {
            Ok(client) => client,
            Err(err) => return failed(format!("no HTTP client: {err}")),
        };
        let timestamp = self.clock.now().timestamp();
        let Some(signature) = webhook::signature(
            &endpoint.secret,
            &claimed.event_id,
            timestamp,
            &claimed.payload,
        ) else {
            return failed("the endpoint's secret cannot sign".into());
        };
        let sent = client
            .post(url.url().clone())
            .header("webhook-id", &claimed.event_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(claimed.payload.clone())
            .send()
            .await;
        match sent {
            Ok(response) => {
                let code = response.status().as_u16();
                match code {
                    200..=299 => Outcome::Delivered(code),
                    410 => Outcome::Gone,
                    300..=399 => Outcome::Failed(Some(code), format!("redirected ({code})")),
                    _ => Outcome::Failed(Some(code), format!("answered {code}")),
                }
            }
            // reqwest's error names the URL, which is the owner's and not a
            // secret; never the body or the signature.
            Err(err) if err.is_timeout() => failed("no answer within the timeout".into()),
            Err(err) => failed(format!("{}", err.without_url())),
        }
    }

    /// Records an attempt's outcome, while this process's lease holds and
    /// the row is still pending (a 410 seen by another attempt may have
    /// failed it meanwhile). `attempted`: false when nothing was sent (the
    /// endpoint was already disabled), which counts no attempt.
    async fn record(
        &self,
        claimed: &Claimed,
        endpoint: &webhook_endpoint::Model,
        outcome: Outcome,
        attempted: bool,
    ) -> Result<()> {
        let backend = self.db.get_database_backend();
        let now = self.clock.now();
        let attempts = claimed.attempts + i32::from(attempted);
        const END: &str = "UPDATE webhook_deliveries
 SET status = $2, attempts = $3, last_response_status = COALESCE($4, last_response_status),
     next_attempt_at = NULL, claimed_until = NULL
 WHERE id = $1 AND claimed_until = $5 AND status = 'pending'";
        const RETRY: &str = "UPDATE webhook_deliveries
 SET attempts = $2, last_response_status = $3, next_attempt_at = $4, claimed_until = NULL
 WHERE id = $1 AND claimed_until = $5 AND status = 'pending'";
        let end = |status: &str, code: Option<u16>| {
            let code: Option<i32> = code.map(i32::from);
            statement(
                backend,
                END,
                vec![
                    claimed.id.into(),
                    status.into(),
                    attempts.into(),
                    code.into(),
                    claimed.claimed_until.into(),
                ],
            )
        };
        match outcome {
            Outcome::Delivered(code) => {
                self.db
                    .execute_raw(end(status::SUCCEEDED, Some(code)))
                    .await?;
                tracing::info!(delivery = %claimed.id, attempts, code, "webhook delivered");
            }
            Outcome::Gone => {
                // The receiver asked for nothing more: the endpoint is
                // disabled and nothing pending will go to it, in one
                // transaction so no attempt sees half of it.
                let txn = self.db.begin().await?;
                let code = attempted.then_some(410);
                txn.execute_raw(end(status::FAILED, code)).await?;
                const DISABLE: &str = "UPDATE webhook_endpoints SET disabled_at = $2
 WHERE id = $1 AND disabled_at IS NULL";
                txn.execute_raw(statement(
                    backend,
                    DISABLE,
                    vec![endpoint.id.into(), now.into()],
                ))
                .await?;
                const FAIL_PENDING: &str = "UPDATE webhook_deliveries
 SET status = 'failed', next_attempt_at = NULL, claimed_until = NULL
 WHERE endpoint_id = $1 AND status = 'pending'";
                txn.execute_raw(statement(backend, FAIL_PENDING, vec![endpoint.id.into()]))
                    .await?;
                txn.commit().await?;
                if attempted {
                    tracing::warn!(endpoint = %endpoint.id, "webhook endpoint answered 410 Gone; disabled");
                }
            }
            Outcome::Failed(code, why) => {
                match self.settings.retry_delays.get(claimed.attempts as usize) {
                    Some(delay) => {
                        let delay =
                            chrono::Duration::from_std(*delay).expect("validated delays fit");
                        let code: Option<i32> = code.map(i32::from);
                        let values = vec![
                            claimed.id.into(),
                            attempts.into(),
                            code.into(),
                            (now + delay).into(),
                            claimed.claimed_until.into(),
                        ];
                        self.db
                            .execute_raw(statement(backend, RETRY, values))
                            .await?;
                        tracing::info!(delivery = %claimed.id, attempts, error = %why, "webhook not delivered; will retry");
                    }
                    None => {
                        // The last response's status, or none if it got no answer.
                        const GIVE_UP: &str = "UPDATE webhook_deliveries
 SET status = 'failed', attempts = $2, last_response_status = $3,
     next_attempt_at = NULL, claimed_until = NULL
 WHERE id = $1 AND claimed_until = $4 AND status = 'pending'";
                        let code: Option<i32> = code.map(i32::from);
                        let values = vec![
                            claimed.id.into(),
                            attempts.into(),
                            code.into(),
                            claimed.claimed_until.into(),
                        ];
                        self.db
                            .execute_raw(statement(backend, GIVE_UP, values))
                            .await?;
                        tracing::warn!(delivery = %claimed.id, attempts, error = %why, "webhook failed after its last attempt");
                    }
                }
            }
        }
        Ok(())
    }
}
