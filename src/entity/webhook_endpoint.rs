//! Where an account's events are delivered. `secret` signs every attempt,
//! so it is kept as it is: never returned after creation, never logged
//! (the Debug below leaves it out).

use sea_orm::entity::prelude::*;

#[derive(Clone, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub account_id: Uuid,
    pub url: String,
    /// A JSON array of event types; empty: every event.
    pub events: String,
    pub secret: String,
    pub created_at: DateTimeUtc,
    /// Set when it answered 410 Gone: it receives nothing from then on.
    pub disabled_at: Option<DateTimeUtc>,
}

impl Model {
    /// The event types it receives; empty: all of them.
    pub fn event_types(&self) -> Vec<String> {
        serde_json::from_str(&self.events).unwrap_or_default()
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("disabled_at", &self.disabled_at)
            .finish_non_exhaustive()
    }
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
