//! Outgoing email through the outbox: what is enqueued on the server's
//! database reaches the SMTP server once and leaves the database; a 451 is
//! retried after its delay; a rolled-back change sends nothing; email
//! enqueued while no server runs goes out when one starts; two servers on
//! one database send each email once; and the logs name no recipient,
//! subject, body or password. The SMTP server is `smtp::SmtpSink`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use keymeter::clock::SystemClock;
use keymeter::service::mail::{Email, Mailer};
use keymeter::Config;
use sea_orm::TransactionTrait;

use crate::helpers::*;
use crate::server_process::ServerProcess;
use crate::smtp::SmtpSink;

const FROM: &str = "keymeter <keys@example.com>";
const WAIT: Duration = Duration::from_secs(20);

/// Points `config` at `sink`, retrying after `delays` seconds.
fn send_through(config: &mut Config, sink: &SmtpSink, delays: &[u64]) {
    config.smtp_url = Some(sink.url());
    config.email_from = Some(FROM.to_owned());
    config.mail_retry_delays = delays.to_vec();
}

/// A mailer on `app`'s database and clock, configured as the server is:
/// what it enqueues, the server's worker sends.
fn mailer_of(app: &TestApp) -> Mailer {
    let settings = app.config.mail_settings().unwrap();
    Mailer::new(settings, app.db.clone(), Arc::new(app.clock.clone())).unwrap()
}

fn invitation(to: &str) -> Email {
    Email {
        to: to.to_owned(),
        subject: "You are invited to Acme's keys".to_owned(),
        // A line starting with a dot is stuffed on the wire and unstuffed
        // by the server: it must arrive as written.
        text: "Accept here: https://keys.example.com/invite#token-1234\n.signature\n".to_owned(),
    }
}

async fn outbox_rows(app: &TestApp) -> i64 {
    app.query_i64("SELECT COUNT(*) FROM email_outbox").await[0]
}

async fn attempts(app: &TestApp) -> Vec<i64> {
    app.query_i64("SELECT CAST(attempts AS BIGINT) FROM email_outbox")
        .await
}

on_both_backends! {
    async fn an_enqueued_email_reaches_the_smtp_server_once_and_leaves_the_database(backend: Backend) {
        let sink = SmtpSink::start().await;
        let app = TestApp::spawn_with(backend, |c| send_through(c, &sink, &[5])).await;
        let mailer = mailer_of(&app);
        assert!(mailer.is_configured());

        mailer.enqueue(&app.db, invitation("ada@example.com"), app.clock.now()).await.unwrap();

        eventually(WAIT, || async { sink.messages().len() == 1 }).await;
        let message = &sink.messages()[0];
        assert_eq!(message.from, "keys@example.com");
        assert_eq!(message.to, ["ada@example.com"]);
        assert!(message.data.contains("Subject: You are invited to Acme's keys\r\n"), "{}", message.data);
        assert!(message.data.contains("From: keymeter <keys@example.com>\r\n"), "{}", message.data);
        assert!(message.data.contains("https://keys.example.com/invite#token-1234\r\n.signature\r\n"), "{}", message.data);
        // The body held a token: it must not stay behind.
        eventually(WAIT, || async { outbox_rows(&app).await == 0 }).await;
        assert_eq!(sink.messages().len(), 1, "sent once");
    }

    async fn an_email_whose_change_rolls_back_is_never_sent(backend: Backend) {
        let sink = SmtpSink::start().await;
        let app = TestApp::spawn_with(backend, |c| send_through(c, &sink, &[5])).await;
        let mailer = mailer_of(&app);

        let txn = app.db.begin().await.unwrap();
        mailer.enqueue(&txn, invitation("rolled-back@example.com"), app.clock.now()).await.unwrap();
        txn.rollback().await.unwrap();
        let txn = app.db.begin().await.unwrap();
        mailer.enqueue(&txn, invitation("committed@example.com"), app.clock.now()).await.unwrap();
        txn.commit().await.unwrap();

        eventually(WAIT, || async { outbox_rows(&app).await == 0 }).await;
        let recipients: Vec<_> = sink.messages().into_iter().flat_map(|m| m.to).collect();
        assert_eq!(recipients, ["committed@example.com"]);
    }

    async fn a_refused_delivery_is_retried_after_each_delay_until_it_is_taken(backend: Backend) {
        let sink = SmtpSink::start().await;
        sink.fail_next(2);
        let app = TestApp::spawn_with(backend, |c| send_through(c, &sink, &[1, 2])).await;
        let enqueued_at = app.clock.now();
        mailer_of(&app).enqueue(&app.db, invitation("bob@example.com"), enqueued_at).await.unwrap();

        // The first attempt fails; the next is due a first delay later, by
        // the server's clock, which stands still until the test moves it.
        eventually(WAIT, || async { attempts(&app).await == [1] }).await;
        assert_eq!(sink.failures(), 1);
        let due = app.rows("SELECT next_attempt_at FROM email_outbox").await;
        let due: chrono::DateTime<Utc> = due[0].try_get_by_index(0).unwrap();
        assert_eq!(due, enqueued_at + chrono::Duration::seconds(1));

        app.clock.advance(chrono::Duration::seconds(1));
        eventually(WAIT, || async { attempts(&app).await == [2] }).await;
        assert_eq!(sink.failures(), 2);
        assert!(sink.messages().is_empty());

        // The delays grow: the third attempt waits two seconds.
        app.clock.advance(chrono::Duration::seconds(2));
        eventually(WAIT, || async { sink.messages().len() == 1 }).await;
        eventually(WAIT, || async { outbox_rows(&app).await == 0 }).await;
        assert_eq!(sink.messages()[0].to, ["bob@example.com"]);
        assert_eq!(sink.failures(), 2);
    }

    async fn an_email_refused_on_its_last_attempt_is_dropped(backend: Backend) {
        let sink = SmtpSink::start().await;
        sink.fail_next(1);
        // No delays: one attempt only.
        let app = TestApp::spawn_with(backend, |c| send_through(c, &sink, &[])).await;
        mailer_of(&app).enqueue(&app.db, invitation("cy@example.com"), app.clock.now()).await.unwrap();

        eventually(WAIT, || async { sink.failures() == 1 && outbox_rows(&app).await == 0 }).await;
        assert!(sink.messages().is_empty());
    }

    async fn email_enqueued_while_no_server_runs_is_sent_when_one_starts(backend: Backend) {
        let sink = SmtpSink::start().await;
        let database = TestDatabase::create(&backend).await;
        let mut config = Config::from_defaults();
        config.database_url = database.url.clone();
        send_through(&mut config, &sink, &[5]);
        // What a process that stopped (or crashed) after its commit leaves.
        let db = keymeter::app::connect(&config).await.unwrap();
        keymeter::app::migrate(&db).await.unwrap();
        let mailer = Mailer::new(config.mail_settings().unwrap(), db.clone(), Arc::new(SystemClock)).unwrap();
        mailer.enqueue(&db, invitation("dee@example.com"), Utc::now()).await.unwrap();
        db.close().await.unwrap();
        assert!(sink.messages().is_empty(), "enqueue sends nothing itself");

        let app = TestApp::spawn_on(database, Utc::now(), |c| send_through(c, &sink, &[5])).await;

        eventually(WAIT, || async { sink.messages().len() == 1 }).await;
        assert_eq!(sink.messages()[0].to, ["dee@example.com"]);
        eventually(WAIT, || async { outbox_rows(&app).await == 0 }).await;
    }

    async fn two_servers_on_one_database_send_each_email_once(backend: Backend) {
        let sink = SmtpSink::start().await;
        let app = TestApp::spawn_with(backend, |c| send_through(c, &sink, &[5])).await;
        app.spawn_second_server().await;
        let mailer = mailer_of(&app);
        let recipients: Vec<String> = (0..20).map(|i| format!("user{i}@example.com")).collect();
        for to in &recipients {
            mailer.enqueue(&app.db, invitation(to), app.clock.now()).await.unwrap();
        }

        eventually(WAIT, || async { outbox_rows(&app).await == 0 }).await;
        let mut sent: Vec<String> = sink.messages().into_iter().flat_map(|m| m.to).collect();
        sent.sort();
        let mut expected = recipients.clone();
        expected.sort();
        assert_eq!(sent, expected, "each once");
    }

    async fn credentials_in_the_url_are_used_and_nothing_private_is_logged(backend: Backend) {
        let sink = SmtpSink::start().await;
        sink.fail_next(1);
        let database = TestDatabase::create(&backend).await;
        let url = sink.url().replace("smtp://", "smtp://inviter:hunter2@");
        let server = ServerProcess::start(
            &database.url,
            &[
                ("KEYMETER_SMTP_URL", url.as_str()),
                ("KEYMETER_EMAIL_FROM", FROM),
                ("KEYMETER_MAIL_RETRY_DELAYS", "0"),
            ],
        );
        // The server migrated the database as it started; it runs on the
        // system clock, as enqueue's `now` here.
        let mut config = Config::from_defaults();
        config.database_url = database.url.clone();
        config.smtp_url = Some(url.clone());
        config.email_from = Some(FROM.to_owned());
        let db = keymeter::app::connect(&config).await.unwrap();
        let mailer = Mailer::new(config.mail_settings().unwrap(), db.clone(), Arc::new(SystemClock)).unwrap();
        mailer.enqueue(&db, invitation("eve@example.com"), Utc::now()).await.unwrap();

        eventually(WAIT, || async { sink.messages().len() == 1 }).await;
        assert_eq!(sink.messages()[0].user.as_deref(), Some("inviter"));
        eventually(WAIT, || async { server.output().contains("email delivery round") }).await;
        let output = server.output();
        assert!(output.contains("will retry"), "the 451 was logged: {output}");
        for private in ["hunter2", "eve@example.com", "invited", "token-1234"] {
            assert!(!output.contains(private), "{private} logged: {output}");
        }
        db.close().await.unwrap();
    }
}
