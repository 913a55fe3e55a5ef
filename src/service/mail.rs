//! Outgoing email, through the `email_outbox` table: `Mailer::enqueue`
//! writes a row on the caller's transaction, and `Mailer::deliver_forever`,
//! a background worker in every process, claims due rows, sends them over
//! SMTP and deletes them. So an email exists iff the change that caused it
//! commits, a request never waits for an SMTP server, a restart loses
//! nothing, and processes sharing a database send each attempt once.
//!
//! Without KEYMETER_SMTP_URL and KEYMETER_EMAIL_FROM the `Mailer` is
//! disabled: `enqueue` writes nothing and the worker only waits.
//!
//! Recipients, subjects and bodies are never logged: a body may hold an
//! invitation token, and addresses are personal data. Neither is the SMTP
//! URL, which may hold a password.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::clock::Clock;
use crate::config::MailSettings;
use crate::error::{Error, Result};
use crate::store::db::Db;
use crate::store::statement;

/// One plain-text email.
#[derive(Clone, PartialEq, Eq)]
pub struct Email {
    pub to: String,
    pub subject: String,
    pub text: String,
}

impl std::fmt::Debug for Email {
    // An email's parts may hold a token or an address: never in a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Email").finish_non_exhaustive()
    }
}

/// How long a claimed row belongs to the process that claimed it. Longer
/// than one send can take (a handful of SMTP commands, each cut off after
/// `SMTP_TIMEOUT`); a process that dies mid-send leaves its row due again
/// once this has passed.
const LEASE: Duration = Duration::from_secs(10 * 60);

/// Longest wait for any one SMTP reply.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// How often an idle worker looks for due rows: rows written by other
/// processes, retries coming due, and the rare enqueue whose wake-up came
/// before its transaction committed.
const POLL: Duration = Duration::from_secs(1);

/// Sends email for the rest of the application. Cheap to clone.
#[derive(Clone)]
pub struct Mailer(Option<Arc<Outbox>>);

struct Outbox {
    db: Db,
    clock: Arc<dyn Clock>,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    retry_delays: Vec<Duration>,
    /// Wakes this process's worker after an enqueue: a shortcut only, the
    /// poll finds every row anyway.
    enqueued: Notify,
}

impl Mailer {
    /// A mailer sending through `settings` (validated by `Config`), or a
    /// disabled one without them.
    pub fn new(
        settings: Option<MailSettings>,
        db: Db,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let Some(settings) = settings else {
            return Ok(Self::disabled());
        };
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(&settings.smtp_url)
            // lettre's error never holds the URL; this message does not either.
            .map_err(|err| anyhow::anyhow!("KEYMETER_SMTP_URL: {err}"))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(Self(Some(Arc::new(Outbox {
            db,
            clock,
            transport,
            from: settings.from,
            retry_delays: settings.retry_delays,
            enqueued: Notify::new(),
        }))))
    }

    /// A mailer that sends nothing: what keymeter runs with when no SMTP
    /// server is configured.
    pub fn disabled() -> Self {
        Self(None)
    }

    pub fn is_configured(&self) -> bool {
        self.0.is_some()
    }

    /// Puts `email` in the outbox on `conn`, the caller's transaction or
    /// pool: it is sent iff that commits, by whichever process gets to it
    /// first, after this returns. Nothing is sent here. Without SMTP
    /// configured it does nothing. An address lettre cannot send to is
    /// refused now rather than failing every attempt later.
    pub async fn enqueue(
        &self,
        conn: &impl ConnectionTrait,
        email: Email,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let Some(outbox) = &self.0 else {
            return Ok(());
        };
        if email.to.parse::<Mailbox>().is_err() {
            return Err(Error::bad_input("the recipient is not an email address"));
        }
        const INSERT: &str = "INSERT INTO email_outbox
 (id, recipient, subject, body, created_at, attempts, next_attempt_at, claimed_until)
 VALUES ($1, $2, $3, $4, $5, 0, $5, NULL)";
        let values = vec![
            Uuid::new_v4().into(),
            email.to.into(),
            email.subject.into(),
            email.text.into(),
            now.into(),
        ];
        conn.execute_raw(statement(conn.get_database_backend(), INSERT, values))
            .await?;
        outbox.enqueued.notify_one();
        Ok(())
    }

    /// Sends due email until the task is aborted (at shutdown): claims one
    /// row at a time, sends it, and records the outcome; when none is due,
    /// waits for an enqueue or the next poll. A disabled mailer only waits.
    pub async fn deliver_forever(self) {
        let Some(outbox) = self.0 else {
            return std::future::pending().await;
        };
        loop {
            match outbox.deliver_due().await {
                Ok(Round {
                    sent,
                    retrying,
                    dropped,
                }) if sent + retrying + dropped > 0 => {
                    tracing::info!(sent, retrying, dropped, "email delivery round");
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(error = %err, "could not read the email outbox"),
            }
            // A wake-up stored during the round makes this return at once.
            let _ = tokio::time::timeout(POLL, outbox.enqueued.notified()).await;
        }
    }

    /// One pass over the due rows, as the worker makes it; for tests that
    /// want delivery without waiting for the worker.
    pub async fn deliver_due(&self) -> Result<Round> {
        match &self.0 {
            Some(outbox) => outbox.deliver_due().await,
            None => Ok(Round::default()),
        }
    }
}

/// What one pass over the outbox did, in counts only.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub sent: u64,
    pub retrying: u64,
    pub dropped: u64,
}

/// A claimed row: this process's to send until `claimed_until`.
#[derive(FromQueryResult)]
struct Claimed {
    id: Uuid,
    recipient: String,
    subject: String,
    body: String,
    attempts: i32,
    claimed_until: DateTime<Utc>,
}

/// What became of one attempt.
enum Outcome {
    Sent,
    /// Worth another attempt (a 4xx answer, a network or TLS failure).
    Failed(String),
    /// Never deliverable as it is (a 5xx answer, an unbuildable message).
    Refused(String),
}

impl Outbox {
    /// Sends due rows one by one until none is left. Once per attempt, not
    /// once ever: should the database fail between the SMTP server taking
    /// an email and its row's deletion, the row comes due again when its
    /// lease ends and is sent again. Losing an invitation would be worse.
    async fn deliver_due(&self) -> Result<Round> {
        let mut round = Round::default();
        while let Some(claimed) = self.claim_one().await? {
            let outcome = self.send(&claimed).await;
            self.record(&claimed, outcome, &mut round).await?;
        }
        Ok(round)
    }

    /// Leases the oldest due row whose lease is absent or past. On
    /// PostgreSQL, `SKIP LOCKED` lets processes claiming together take
    /// different rows, and a row another claimed since this statement began
    /// is re-checked and left out; SQLite has one writer at a time.
    async fn claim_one(&self) -> Result<Option<Claimed>> {
        let backend = self.db.get_database_backend();
        let lock = match backend {
            DbBackend::Postgres => " FOR UPDATE SKIP LOCKED",
            _ => "",
        };
        let claim = format!(
            "UPDATE email_outbox SET claimed_until = $1
 WHERE id = (SELECT id FROM email_outbox
              WHERE next_attempt_at <= $2 AND (claimed_until IS NULL OR claimed_until <= $2)
              ORDER BY next_attempt_at LIMIT 1{lock})
 RETURNING id, recipient, subject, body, attempts, claimed_until"
        );
        let now = self.clock.now();
        let lease = chrono::Duration::from_std(LEASE).expect("the lease fits");
        let values = vec![(now + lease).into(), now.into()];
        Ok(
            Claimed::find_by_statement(statement(backend, &claim, values))
                .one(&self.db)
                .await?,
        )
    }

    async fn send(&self, claimed: &Claimed) -> Outcome {
        let Ok(to) = claimed.recipient.parse::<Mailbox>() else {
            return Outcome::Refused("the recipient is not an email address".into());
        };
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(claimed.subject.as_str())
            .header(ContentType::TEXT_PLAIN)
            .body(claimed.body.clone());
        let message = match message {
            Ok(message) => message,
            Err(err) => return Outcome::Refused(format!("the message cannot be built: {err}")),
        };
        match self.transport.send(message).await {
            Ok(_) => Outcome::Sent,
            Err(err) if err.is_permanent() => Outcome::Refused(describe(&err)),
            Err(err) => Outcome::Failed(describe(&err)),
        }
    }

    /// Deletes a sent or hopeless row, or schedules its next attempt. The
    /// updates hold only while this process's lease does: a row whose lease
    /// ran out during a slow send may be another's now.
    async fn record(&self, claimed: &Claimed, outcome: Outcome, round: &mut Round) -> Result<()> {
        let backend = self.db.get_database_backend();
        let attempts = claimed.attempts + 1;
        let why = match outcome {
            Outcome::Sent => {
                // Sent is sent: deleted whoever holds the lease now, so that
                // its body (maybe a token) leaves the database.
                const DELETE: &str = "DELETE FROM email_outbox WHERE id = $1";
                self.db
                    .execute_raw(statement(backend, DELETE, vec![claimed.id.into()]))
                    .await?;
                round.sent += 1;
                return Ok(());
            }
            Outcome::Failed(why) => match self.retry_delays.get(claimed.attempts as usize) {
                Some(delay) => {
                    const RETRY: &str = "UPDATE email_outbox
 SET attempts = $2, next_attempt_at = $3, claimed_until = NULL
 WHERE id = $1 AND claimed_until = $4";
                    let delay = chrono::Duration::from_std(*delay).expect("validated delays fit");
                    let values = vec![
                        claimed.id.into(),
                        attempts.into(),
                        (self.clock.now() + delay).into(),
                        claimed.claimed_until.into(),
                    ];
                    self.db
                        .execute_raw(statement(backend, RETRY, values))
                        .await?;
                    tracing::info!(attempts, error = %why, "email not sent; will retry");
                    round.retrying += 1;
                    return Ok(());
                }
                None => why,
            },
            Outcome::Refused(why) => why,
        };
        const GIVE_UP: &str = "DELETE FROM email_outbox WHERE id = $1 AND claimed_until = $2";
        let values = vec![claimed.id.into(), claimed.claimed_until.into()];
        self.db
            .execute_raw(statement(backend, GIVE_UP, values))
            .await?;
        tracing::warn!(attempts, error = %why, "email dropped undelivered");
        round.dropped += 1;
        Ok(())
    }
}

/// An SMTP failure as it may be logged: the reply code, never the reply's
/// text (servers quote the recipient back), and otherwise lettre's own
/// description of a network, TLS or client failure, which holds neither
/// the message nor the URL.
fn describe(err: &lettre::transport::smtp::Error) -> String {
    match err.status() {
        Some(code) => format!("the SMTP server answered {code}"),
        None if err.is_response() => "the SMTP server's answer could not be read".into(),
        None => err.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;

    fn settings(url: &str) -> MailSettings {
        MailSettings {
            smtp_url: url.to_owned(),
            from: "keymeter <keys@example.com>".parse().unwrap(),
            retry_delays: vec![Duration::from_secs(5)],
        }
    }

    async fn memory_db() -> Db {
        sea_orm::Database::connect("sqlite::memory:")
            .await
            .unwrap()
            .into()
    }

    #[tokio::test]
    async fn without_settings_nothing_is_enqueued() {
        let db = memory_db().await;
        let mailer = Mailer::new(None, db.clone(), Arc::new(SystemClock)).unwrap();
        assert!(!mailer.is_configured());
        let email = Email {
            to: "someone@example.com".into(),
            subject: "s".into(),
            text: "t".into(),
        };
        // No outbox table exists here: a write would fail.
        mailer.enqueue(&db, email, Utc::now()).await.unwrap();
        assert_eq!(mailer.deliver_due().await.unwrap(), Round::default());
    }

    #[tokio::test]
    async fn smtp_and_smtps_urls_with_credentials_make_a_mailer() {
        for url in [
            "smtp://127.0.0.1:2525",
            "smtp://user:p%40ss@smtp.example.com:587?tls=required",
            "smtps://user:secret@smtp.example.com",
        ] {
            let mailer = Mailer::new(
                Some(settings(url)),
                memory_db().await,
                Arc::new(SystemClock),
            );
            assert!(mailer.unwrap().is_configured(), "{url}");
        }
    }

    #[tokio::test]
    async fn a_recipient_that_is_not_an_address_is_refused_before_the_database() {
        let db = memory_db().await;
        let mailer = Mailer::new(
            Some(settings("smtp://127.0.0.1:2525")),
            db.clone(),
            Arc::new(SystemClock),
        )
        .unwrap();
        let email = Email {
            to: "not an address".into(),
            subject: "s".into(),
            text: "t".into(),
        };
        let refused = mailer.enqueue(&db, email, Utc::now()).await.unwrap_err();
        assert_eq!(refused.code(), "BAD_USER_INPUT");
    }

    #[test]
    fn an_email_prints_none_of_its_parts() {
        let email = Email {
            to: "someone@example.com".into(),
            subject: "Your invitation".into(),
            text: "token abc".into(),
        };
        let printed = format!("{email:?}");
        assert!(
            !printed.contains("someone")
                && !printed.contains("invitation")
                && !printed.contains("abc")
        );
    }
}
