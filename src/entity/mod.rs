//! sea-orm entities, one per table of `migration/`.

pub mod api_key;
pub mod api_key_usage;
pub mod billing_account;
pub mod session;
pub mod sign_in_flow;
pub mod user;
pub mod user_identity;
