//! Outgoing email. Placeholder until the SMTP outbox lands: nothing is
//! configured, so nothing is sent.

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use crate::error::Result;

pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
}

#[derive(Clone, Default)]
pub struct Mailer;

impl Mailer {
    pub async fn enqueue(
        &self,
        _conn: &impl ConnectionTrait,
        _email: Email,
        _now: DateTime<Utc>,
    ) -> Result<()> {
        Ok(())
    }
}
