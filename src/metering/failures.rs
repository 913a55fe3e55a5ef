//! What a failed charging step says about the calls it was charging: was
//! anything recorded, and may the cause be one call's rather than the
//! database's?
//!
//! A call's answer must be the truth about its charge, so a failure has to
//! be sorted before anyone is answered:
//! - **Before the commit** (any statement of the locked path, up to the
//!   COMMIT): the transaction is rolled back, nothing was recorded, and
//!   the calls may be charged again.
//! - **At the commit** (the COMMIT, or the one autocommit statement): if the
//!   database answered with an error, it refused and rolled back; if the
//!   connection broke, the commit may or may not have happened, and nobody
//!   can tell from here. Such calls are never charged again (that could
//!   charge them twice); they are answered with an error, logged as
//!   possibly recorded. A caller that must know sends a requestId: its
//!   retry is answered what was recorded, if anything was.
//! - **After the commit** (reading what the statement answered): recorded,
//!   but with totals unknown; the same as a broken connection at the commit.
//!
//! Charging again in smaller groups only helps when a statement failed
//! (refused by the database, or with values or an answer the code could not
//! handle), which may be one call's doing. A database out of reach or a
//! broken connection is nobody's call in particular: every call of the group
//! gets the error at once, rather than waiting for the pool once per call.

use sea_orm::{sqlx, DbErr, RuntimeErr};
use uuid::Uuid;

use crate::error::Error;

/// A charging step's result: a failure says what it means for the calls.
pub type Charged<T> = std::result::Result<T, Failure>;

/// Why a failure happened, as far as isolating it goes.
#[derive(Debug, PartialEq, Eq)]
enum Cause {
    /// No connection could be had: nothing was sent.
    Unreachable,
    /// The connection broke, or stopped making sense, on the way.
    Broken,
    /// A statement failed, possibly because of one call's values.
    Statement,
}

fn cause(error: &Error) -> Cause {
    let Error::Internal(source) = error else {
        return Cause::Statement;
    };
    let sqlx_error = match source.downcast_ref::<DbErr>() {
        Some(DbErr::ConnectionAcquire(_)) => return Cause::Unreachable,
        Some(
            DbErr::Exec(RuntimeErr::SqlxError(e))
            | DbErr::Query(RuntimeErr::SqlxError(e))
            | DbErr::Conn(RuntimeErr::SqlxError(e)),
        ) => e,
        Some(DbErr::Conn(_)) => return Cause::Broken,
        _ => return Cause::Statement,
    };
    match **sqlx_error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => Cause::Unreachable,
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => Cause::Broken,
        _ => Cause::Statement,
    }
}

/// A charging step that failed, for a group of calls.
#[derive(Debug)]
pub struct Failure {
    /// What was being done: which statement, or the commit.
    pub step: &'static str,
    error: Error,
    /// Whether the group's charges may have been recorded all the same.
    pub maybe_recorded: bool,
}

impl Failure {
    /// A failure at `step`, before anything could be committed.
    pub fn before_commit<E: Into<Error>>(step: &'static str) -> impl FnOnce(E) -> Self {
        move |error| Self {
            step,
            error: error.into(),
            maybe_recorded: false,
        }
    }

    /// A failure of `step`, which commits: recorded only if the connection
    /// broke after sending it (a refusal rolls back).
    pub fn at_commit<E: Into<Error>>(step: &'static str) -> impl FnOnce(E) -> Self {
        move |error| {
            let error = error.into();
            let maybe_recorded = cause(&error) == Cause::Broken;
            Self {
                step,
                error,
                maybe_recorded,
            }
        }
    }

    /// A failure at `step`, after the commit.
    pub fn after_commit<E: Into<Error>>(step: &'static str) -> impl FnOnce(E) -> Self {
        move |error| Self {
            step,
            error: error.into(),
            maybe_recorded: true,
        }
    }

    /// Whether the group's calls may be charged again in smaller groups:
    /// nothing was recorded, and a statement failed, not the connection.
    pub fn isolable(&self) -> bool {
        !self.maybe_recorded && cause(&self.error) == Cause::Statement
    }

    /// The cause, with its whole chain, for the log.
    pub fn cause(&self) -> String {
        match &self.error {
            Error::Internal(source) => format!("{source:#}"),
            other => other.to_string(),
        }
    }

    /// The error one call of the group is answered with: internal, whatever
    /// the cause, and saying (to the log only) on which key and at which step.
    pub fn for_call(&self, key_id: Option<Uuid>) -> Error {
        let key = key_id.map(|id| format!(" on key {id}")).unwrap_or_default();
        let recorded = match self.maybe_recorded {
            true => " (may have been recorded)",
            false => "",
        };
        Error::Internal(anyhow::anyhow!(
            "charging a call{key}{recorded}: {}: {}",
            self.step,
            self.cause()
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sea_orm::ConnAcquireErr;

    use super::*;

    fn sqlx_error(error: sqlx::Error) -> DbErr {
        DbErr::Query(RuntimeErr::SqlxError(Arc::new(error)))
    }

    fn broken() -> DbErr {
        sqlx_error(sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into()))
    }

    #[test]
    fn a_failed_statement_before_the_commit_is_retried_in_smaller_groups() {
        let decode = Failure::before_commit("locking counters")(sqlx_error(
            sqlx::Error::ColumnNotFound("x".into()),
        ));
        assert!(decode.isolable());
        let logic = Failure::before_commit("reading an answered requestId")(anyhow::anyhow!("odd"));
        assert!(logic.isolable());
    }

    #[test]
    fn an_unreachable_or_broken_database_fails_the_group_at_once() {
        let unreachable = DbErr::ConnectionAcquire(ConnAcquireErr::Timeout);
        assert!(!Failure::before_commit("beginning")(unreachable.clone()).isolable());
        assert!(!Failure::before_commit("locking counters")(broken()).isolable());
        let garbled = sqlx_error(sqlx::Error::Protocol("unexpected message".into()));
        assert!(!Failure::before_commit("claiming requestIds")(garbled).isolable());
        let pool = sqlx_error(sqlx::Error::PoolTimedOut);
        assert!(!Failure::at_commit("the one statement")(pool).maybe_recorded);
        assert!(!Failure::at_commit("the one statement")(unreachable).maybe_recorded);
    }

    #[test]
    fn a_connection_broken_at_the_commit_may_have_recorded_it() {
        let lost = Failure::at_commit("committing")(broken());
        assert!(lost.maybe_recorded && !lost.isolable());
        let error = lost.for_call(Some(Uuid::nil())).to_string();
        assert_eq!(
            error, "internal server error",
            "nothing of the cause is shown"
        );
        let Error::Internal(source) = lost.for_call(Some(Uuid::nil())) else {
            unreachable!()
        };
        let logged = format!("{source:#}");
        assert!(logged.contains("may have been recorded") && logged.contains("committing"));
        assert!(logged.contains(&Uuid::nil().to_string()), "{logged}");
        assert!(Failure::after_commit("reading totals")(anyhow::anyhow!("x")).maybe_recorded);
    }
}
