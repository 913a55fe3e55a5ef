//! The rules that touch the database. Each service is a value that owns its
//! parts (the pool, the clock, the policy), built once in `state.rs`:
//! `Accounts`, `SignIn`, `Sessions`, `Keys` (and `metering::Metering`
//! beside them), so every resolver calls one the same way, with the
//! request's data only. Provisioning a missing billing account happens in
//! one place, `billing::billing_account`, which the services that read an
//! account call.

pub mod accounts;
pub mod alerts;
pub mod audit;
pub mod backup;
pub mod billing;
pub mod invitations;
pub mod keys;
pub mod limits;
pub mod lookups;
pub mod mail;
pub mod passwords;
pub mod plans;
pub mod retention;
pub mod sessions;
pub mod sign_in;
pub mod teams;
pub mod webhook_queue;
pub mod webhooks;

use sea_orm::DbErr;

use crate::error::Error;

/// True when `err` is a unique-constraint violation: the database, not a
/// racy read-before-write, decides who was first.
pub(crate) fn is_unique_violation(err: &DbErr) -> bool {
    matches!(
        err.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

/// Maps a unique violation to `on_conflict`, anything else to an internal error.
pub(crate) fn on_unique_violation(err: DbErr, on_conflict: Error) -> Error {
    if is_unique_violation(&err) {
        on_conflict
    } else {
        err.into()
    }
}
