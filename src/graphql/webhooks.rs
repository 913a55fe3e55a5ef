//! The contract's webhook types (v3): endpoints, the payload that shows a
//! new endpoint's secret once, and deliveries. The resolvers live on
//! `Account` (teams.rs) and `Mutation`; the rules in `service::webhooks`.

use async_graphql::{Enum, InputObject, SimpleObject};
use uuid::Uuid;

use super::scalars::DateTime;
use crate::entity::{webhook_delivery, webhook_endpoint};
use crate::service::webhooks::{status, Created};

/// v3: where usage alerts and account events are delivered, signed as Standard Webhooks.
#[derive(SimpleObject)]
pub struct WebhookEndpoint {
    id: Uuid,
    url: String,
    /// The event types it receives (see AuditEvent.action); empty: all of them.
    events: Vec<String>,
    created_at: DateTime,
    /// Set when the endpoint answered 410 Gone; a disabled endpoint receives nothing (test
    /// events and redeliveries included) until it is made again.
    disabled_at: Option<DateTime>,
}

impl From<webhook_endpoint::Model> for WebhookEndpoint {
    fn from(endpoint: webhook_endpoint::Model) -> Self {
        Self {
            events: endpoint.event_types(),
            id: endpoint.id,
            url: endpoint.url,
            created_at: endpoint.created_at.into(),
            disabled_at: endpoint.disabled_at.map(Into::into),
        }
    }
}

/// v3
#[derive(SimpleObject)]
pub struct CreateWebhookEndpointPayload {
    endpoint: WebhookEndpoint,
    /// whsec_<base64 of 32 random bytes>: the signing secret, shown this once.
    secret: String,
}

impl From<Created> for CreateWebhookEndpointPayload {
    fn from(created: Created) -> Self {
        Self {
            endpoint: created.endpoint.into(),
            secret: created.secret,
        }
    }
}

/// v3
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its first or next attempt.
    Pending,
    /// An attempt got a 2xx.
    Succeeded,
    /// Every attempt failed, or the endpoint is disabled.
    Failed,
}

/// v3: one event on its way to one endpoint; its attempts share the webhook-id header.
#[derive(SimpleObject)]
pub struct WebhookDelivery {
    id: Uuid,
    endpoint_id: Uuid,
    /// The webhook-id header: the same on every attempt and on redelivery.
    event_id: String,
    event_type: String,
    status: DeliveryStatus,
    /// Attempts made so far.
    attempts: i32,
    /// The HTTP status of the last attempt; null if it got no answer.
    last_response_status: Option<i32>,
    created_at: DateTime,
    /// When the next attempt is due; null unless PENDING.
    next_attempt_at: Option<DateTime>,
}

impl From<webhook_delivery::Model> for WebhookDelivery {
    fn from(delivery: webhook_delivery::Model) -> Self {
        let status = match delivery.status.as_str() {
            status::PENDING => DeliveryStatus::Pending,
            status::SUCCEEDED => DeliveryStatus::Succeeded,
            _ => DeliveryStatus::Failed,
        };
        Self {
            id: delivery.id,
            endpoint_id: delivery.endpoint_id,
            event_id: delivery.event_id,
            event_type: delivery.event_type,
            status,
            attempts: delivery.attempts,
            last_response_status: delivery.last_response_status,
            created_at: delivery.created_at.into(),
            next_attempt_at: match status {
                DeliveryStatus::Pending => delivery.next_attempt_at.map(Into::into),
                _ => None,
            },
        }
    }
}

/// v3
#[derive(InputObject)]
pub struct CreateWebhookEndpointInput {
    /// Default: the user's own account.
    pub account_id: Option<Uuid>,
    /// https://; http:// too when the server allows private addresses
    /// (KEYMETER_WEBHOOK_ALLOW_PRIVATE=true); at most 2,048 characters; else BAD_USER_INPUT.
    pub url: String,
    /// Event types (see AuditEvent.action) plus "webhook.test"; empty or omitted: all.
    pub events: Option<Vec<String>>,
}
