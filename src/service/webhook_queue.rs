//! The webhook queue's write side: an event (`WebhookEvent`) put on its
//! way to every subscribed endpoint of an account as rows of
//! `webhook_deliveries`, on the caller's transaction. It stands apart from
//! `webhooks` (endpoints and the delivery worker) so that the audit log,
//! which enqueues every change it records, and `webhooks`, whose endpoint
//! changes are audited, do not import each other.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set};
use serde_json::json;
use uuid::Uuid;

use crate::entity::{webhook_delivery, webhook_endpoint};
use crate::error::Result;

/// One event: an audit event on its way out (see `audit::record`), or
/// sendTestWebhook's.
#[derive(Debug, Clone)]
pub struct WebhookEvent {
    /// The webhook-id header: unique per event, the same on every attempt.
    pub id: String,
    pub event_type: String,
    pub timestamp: DateTime<Utc>,
    pub data: serde_json::Value,
}

impl WebhookEvent {
    /// An event with a fresh id, `evt_` and 32 hex digits.
    pub fn new(event_type: &str, timestamp: DateTime<Utc>, data: serde_json::Value) -> Self {
        Self {
            id: format!("evt_{}", Uuid::new_v4().simple()),
            event_type: event_type.to_owned(),
            timestamp,
            data,
        }
    }

    /// The event of audit event `audit_event_id`: its webhook-id is made
    /// from the audit event's, so a receiver can find the one in the log.
    pub fn of_audit_event(
        audit_event_id: Uuid,
        event_type: &str,
        timestamp: DateTime<Utc>,
        data: serde_json::Value,
    ) -> Self {
        Self {
            id: format!("evt_{}", audit_event_id.simple()),
            ..Self::new(event_type, timestamp, data)
        }
    }

    /// The body every attempt sends and signs, byte for byte.
    pub(super) fn body(&self) -> String {
        json!({
            "type": self.event_type,
            "timestamp": self.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "data": self.data,
        })
        .to_string()
    }
}

/// A delivery's status as stored.
pub mod status {
    pub const PENDING: &str = "pending";
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
}

/// Puts `event` on its way to every enabled endpoint of `account_id` whose
/// filter is empty or names its type, on `conn`: the caller's transaction
/// (the charge's fan-out, say), so the deliveries exist iff it commits.
/// Nothing is sent here; the workers poll for due rows. Returns how many
/// deliveries were made.
pub async fn enqueue(
    conn: &impl ConnectionTrait,
    account_id: Uuid,
    event: &WebhookEvent,
    now: DateTime<Utc>,
) -> Result<u64> {
    let endpoints = webhook_endpoint::Entity::find()
        .filter(webhook_endpoint::Column::AccountId.eq(account_id))
        .filter(webhook_endpoint::Column::DisabledAt.is_null())
        .all(conn)
        .await?;
    let body = event.body();
    let mut made = 0;
    for endpoint in endpoints {
        let events = endpoint.event_types();
        if !events.is_empty() && !events.contains(&event.event_type) {
            continue;
        }
        insert_delivery(conn, &endpoint, event, &body, now).await?;
        made += 1;
    }
    Ok(made)
}

pub(super) async fn insert_delivery(
    conn: &impl ConnectionTrait,
    endpoint: &webhook_endpoint::Model,
    event: &WebhookEvent,
    body: &str,
    now: DateTime<Utc>,
) -> Result<webhook_delivery::Model> {
    Ok(webhook_delivery::ActiveModel {
        id: Set(Uuid::new_v4()),
        endpoint_id: Set(endpoint.id),
        account_id: Set(endpoint.account_id),
        event_id: Set(event.id.clone()),
        event_type: Set(event.event_type.clone()),
        payload: Set(body.to_owned()),
        status: Set(status::PENDING.to_owned()),
        attempts: Set(0),
        last_response_status: Set(None),
        created_at: Set(now),
        next_attempt_at: Set(Some(now)),
        claimed_until: Set(None),
    }
    .insert(conn)
    .await?)
}
