//! sea-orm entities of the tables read and written through the ORM; the
//! metering tables (counters, rollups, events, requestIds) are reached
//! through `store`'s SQL.

pub mod account_member;
pub mod api_key;
pub mod audit_event;
pub mod billing_account;
pub mod invitation;
pub mod session;
pub mod sign_in_flow;
pub mod usage_alert;
pub mod usage_alert_threshold;
pub mod user;
pub mod user_identity;
pub mod webhook_delivery;
pub mod webhook_endpoint;
