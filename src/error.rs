//! The one error type. Each variant is something a client can act on and maps
//! to one `extensions.code` of the contract; everything else is `Internal`,
//! logged in full here and shown to the client as a bare message.

use std::sync::Arc;

use async_graphql::ErrorExtensions;
use sea_orm::DbErr;

pub type Result<T, E = Error> = std::result::Result<T, E>;

tokio::task_local! {
    /// The GraphQL operation the current request runs, as its log lines
    /// name it. A tracing span would say it too, but entering one on every
    /// poll of every request cost verifyKey about 5 % of its throughput, for
    /// a name only an internal error's log line needs.
    pub static OPERATION: Arc<str>;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("authentication required: sign in and send `Authorization: Bearer <token>`")]
    Unauthenticated,
    #[error("{0}")]
    BadUserInput(String),
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("not found")]
    NotFound,
    #[error("your role in this account does not allow this; ask one of its owners")]
    Forbidden,
    #[error("too many attempts; retry in {retry_after_secs} seconds")]
    RateLimited { retry_after_secs: u64 },
    #[error("internal server error")]
    Internal(#[source] anyhow::Error),
}

impl Error {
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::BadUserInput(message.into())
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::BadUserInput(_) => "BAD_USER_INPUT",
            Self::EmailTaken => "EMAIL_TAKEN",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::NotFound => "NOT_FOUND",
            Self::Forbidden => "FORBIDDEN",
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::Internal(_) => "INTERNAL_SERVER_ERROR",
        }
    }
}

impl From<DbErr> for Error {
    fn from(err: DbErr) -> Self {
        Self::Internal(err.into())
    }
}

impl From<anyhow::Error> for Error {
    fn from(err: anyhow::Error) -> Self {
        Self::Internal(err)
    }
}

impl Error {
    /// This error again, for one more of the callers that shared the work
    /// that failed (an internal error's cause kept as its message).
    pub fn for_each_caller(&self) -> Self {
        match self {
            Self::Unauthenticated => Self::Unauthenticated,
            Self::BadUserInput(message) => Self::BadUserInput(message.clone()),
            Self::EmailTaken => Self::EmailTaken,
            Self::InvalidCredentials => Self::InvalidCredentials,
            Self::NotFound => Self::NotFound,
            Self::Forbidden => Self::Forbidden,
            Self::RateLimited { retry_after_secs } => Self::RateLimited {
                retry_after_secs: *retry_after_secs,
            },
            Self::Internal(source) => Self::Internal(anyhow::anyhow!("{source:#}")),
        }
    }

    /// Logs an internal error's cause; the client is told nothing of it.
    /// The one place internal errors are logged: every answer made from an
    /// `Error` (GraphQL's, the gateway's) passes here.
    pub fn log_if_internal(&self) {
        if let Self::Internal(source) = self {
            let operation = OPERATION.try_with(Arc::clone).ok();
            tracing::error!(
                operation = operation.as_deref(),
                error = format!("{source:#}"),
                "request failed"
            );
        }
    }
}

impl ErrorExtensions for Error {
    fn extend(&self) -> async_graphql::Error {
        self.log_if_internal();
        async_graphql::Error::new(self.to_string()).extend_with(|_, ext| {
            ext.set("code", self.code());
            if let Self::RateLimited { retry_after_secs } = self {
                ext.set("retryAfterSeconds", *retry_after_secs);
            }
        })
    }
}

impl From<Error> for async_graphql::Error {
    fn from(err: Error) -> Self {
        err.extend()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A log sink for one test.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn an_internal_errors_log_line_names_its_operation_and_cause() {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let failed = Error::Internal(anyhow::anyhow!("the disk is full"));
        OPERATION
            .scope(Arc::from("Verify"), async { failed.log_if_internal() })
            .await;
        Error::NotFound.log_if_internal();
        let logged = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert_eq!(logged.lines().count(), 1, "{logged}");
        assert!(logged.contains("operation=\"Verify\""), "{logged}");
        assert!(logged.contains("the disk is full"), "{logged}");
    }
}
