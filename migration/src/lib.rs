//! keymeter's schema, one reversible migration per change, for SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20261125_000001_create_users;
mod m20261125_000002_create_sessions;
mod m20261125_000003_create_billing_accounts;
mod m20261125_000004_create_api_keys;
mod m20261125_000005_create_api_key_usage;
mod m20261125_000006_create_metering_counters;
mod m20261125_000007_create_auth_attempts;
mod m20261126_000008_count_attempts_by_address;
mod m20261127_000009_create_sign_in;
mod m20261130_000010_key_lifecycle;
mod m20261130_000011_hourly_key_usage;
mod m20261130_000012_daily_key_usage;
mod m20261204_000013_count_sign_in_starts;
mod m20261204_000014_refunds;
mod m20261204_000015_hourly_usage_by_hour;
mod m20261205_000016_accounts_and_members;
mod m20261205_000017_create_email_outbox;
mod m20261205_000018_usage_alerts;
mod m20261205_000019_webhooks;
mod m20261206_000020_key_rate_limits;
mod m20261207_000021_event_calls;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_create_users::Migration),
            Box::new(m20261125_000002_create_sessions::Migration),
            Box::new(m20261125_000003_create_billing_accounts::Migration),
            Box::new(m20261125_000004_create_api_keys::Migration),
            Box::new(m20261125_000005_create_api_key_usage::Migration),
            Box::new(m20261125_000006_create_metering_counters::Migration),
            Box::new(m20261125_000007_create_auth_attempts::Migration),
            Box::new(m20261126_000008_count_attempts_by_address::Migration),
            Box::new(m20261127_000009_create_sign_in::Migration),
            Box::new(m20261130_000010_key_lifecycle::Migration),
            Box::new(m20261130_000011_hourly_key_usage::Migration),
            Box::new(m20261130_000012_daily_key_usage::Migration),
            Box::new(m20261204_000013_count_sign_in_starts::Migration),
            Box::new(m20261204_000014_refunds::Migration),
            Box::new(m20261204_000015_hourly_usage_by_hour::Migration),
            Box::new(m20261205_000016_accounts_and_members::Migration),
            Box::new(m20261205_000017_create_email_outbox::Migration),
            Box::new(m20261205_000018_usage_alerts::Migration),
            Box::new(m20261205_000019_webhooks::Migration),
            Box::new(m20261206_000020_key_rate_limits::Migration),
            Box::new(m20261207_000021_event_calls::Migration),
        ]
    }
}
