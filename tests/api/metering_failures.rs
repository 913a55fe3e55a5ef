//! A call that cannot be charged fails alone. Calls charged in the same
//! batch, or the same transaction, as a failing one are answered with their
//! true charge, and the failing call gets an error with nothing recorded.
//!
//! The failure switch is in the database, not the server: triggers make the
//! database refuse one tenant's calls at two different steps (claiming a
//! requestId, writing the event), so the server runs exactly its production
//! code. (A key can no longer be read without its account: migration 16
//! made every key belong to one, so the third step of earlier releases,
//! provisioning a key's missing account, is gone.)

use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};

use crate::helpers::*;

/// The victim's calls, the poisoned ones, and how many run at once.
const VICTIM_CALLS: usize = 200;
const POISONED_CALLS: usize = 40;
const CONNECTIONS: usize = 32;
/// Less than the victim's calls ask for (about 400), so the quota is crossed.
const MONTHLY_CREDITS: i64 = 300;

/// Makes the database refuse, as a broken statement would: a claim of a
/// requestId starting with `poison` and an event whose endpoint is `poison`.
async fn poison(app: &TestApp) {
    let postgres = app.backend() == sea_orm::DbBackend::Postgres;
    if postgres {
        app.execute(
            "CREATE FUNCTION poisoned() RETURNS trigger AS $$
             BEGIN RAISE EXCEPTION 'poisoned by the test'; END $$ LANGUAGE plpgsql",
        )
        .await;
    }
    let triggers = [
        (
            "poison_claims",
            "verify_requests",
            "NEW.request_id LIKE 'poison%'",
        ),
        ("poison_events", "api_key_usage", "NEW.endpoint = 'poison'"),
    ];
    for (name, table, condition) in triggers {
        let action = match postgres {
            true => format!("FOR EACH ROW WHEN ({condition}) EXECUTE FUNCTION poisoned()"),
            false => {
                format!("WHEN {condition} BEGIN SELECT RAISE(ABORT, 'poisoned by the test'); END")
            }
        };
        app.execute(&format!(
            "CREATE TRIGGER {name} BEFORE INSERT ON {table} {action}"
        ))
        .await;
    }
}

/// Who a call is from.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Caller {
    Victim,
    /// Refused at the claim of its requestId or at the write of its event.
    Poisoned,
}

/// The calls, interleaved so that every batch mixes callers: the victim's
/// with and without requestIds and of varying credits, and failing calls of
/// every kind.
fn calls(victim: &str, poisoned: &str) -> Vec<(Caller, Value)> {
    let mut calls: Vec<(Caller, Value)> = (0..VICTIM_CALLS)
        .map(|i| {
            let mut input =
                json!({ "key": victim, "credits": 1 + i % 3, "endpoint": "/v1/search" });
            if i % 2 == 0 {
                input["requestId"] = json!(format!("victim-{i}"));
            }
            (Caller::Victim, input)
        })
        .collect();
    for j in 0..POISONED_CALLS {
        let mut input = json!({ "key": poisoned, "credits": 1 });
        if j % 3 != 1 {
            input["requestId"] = json!(format!("poison-{j}"));
        }
        if j % 3 != 0 {
            input["endpoint"] = json!("poison");
        }
        calls.insert(
            j * VICTIM_CALLS / POISONED_CALLS + j,
            (Caller::Poisoned, input),
        );
    }
    calls
}

/// One number out of the database for `email`'s user, from a query whose
/// `{user}` stands for that user's id.
async fn of_user(app: &TestApp, email: &str, sql: &str) -> i64 {
    let user = format!("(SELECT id FROM users WHERE email = '{email}')");
    app.query_i64(&sql.replace("{user}", &user)).await[0]
}

/// Everything recorded for `email`'s user: (counter, events, their
/// credits, rollup requests, requestIds answered).
async fn recorded(app: &TestApp, email: &str) -> (i64, i64, i64, i64, i64) {
    let events =
        "FROM api_key_usage e JOIN api_keys k ON k.id = e.api_key_id WHERE k.created_by = {user}";
    (
        of_user(
            app,
            email,
            "SELECT CAST(COALESCE(SUM(u.credits_used), 0) AS BIGINT) FROM billing_cycle_usage u
             JOIN billing_accounts b ON b.id = u.billing_account_id WHERE b.user_id = {user}",
        )
        .await,
        of_user(
            app,
            email,
            &format!("SELECT CAST(COALESCE(SUM(e.calls), 0) AS BIGINT) {events}"),
        )
        .await,
        of_user(
            app,
            email,
            &format!("SELECT CAST(COALESCE(SUM(e.credits * e.calls), 0) AS BIGINT) {events}"),
        )
        .await,
        of_user(
            app,
            email,
            "SELECT CAST(COALESCE(SUM(r.requests), 0) AS BIGINT) FROM api_key_cycle_usage r
             JOIN api_keys k ON k.id = r.api_key_id WHERE k.created_by = {user}",
        )
        .await,
        of_user(
            app,
            email,
            "SELECT COUNT(*) FROM verify_requests r
             JOIN api_keys k ON k.id = r.api_key_id WHERE k.created_by = {user}",
        )
        .await,
    )
}

/// Fires every call, `CONNECTIONS` at a time, against a database that
/// refuses some of them, and checks each answer against what was recorded.
async fn failing_calls_fail_alone(app: TestApp, grouped: bool) {
    let victim = app.signup().await;
    let poisoned = app.signup().await;
    poison(&app).await;

    let calls = calls(victim.default_secret(), poisoned.default_secret());
    let app = &app;
    let answers: Vec<(Caller, Value, Value)> = stream::iter(calls)
        .map(|(caller, input)| async move {
            let response = app
                .graphql(VERIFY_KEY, json!({ "input": input }), None)
                .await;
            (caller, input, response)
        })
        .buffer_unordered(CONNECTIONS)
        .collect()
        .await;

    let mut valid_credits = 0;
    let mut valid = Vec::new();
    let mut exceeded = 0;
    let mut victim_errors = Vec::new();
    for (caller, input, response) in &answers {
        if *caller != Caller::Victim {
            assert_error(response, "INTERNAL_SERVER_ERROR");
            assert_eq!(response["errors"][0]["message"], "internal server error");
        } else if response.get("errors").is_some() {
            victim_errors.push((input, response));
        } else {
            let answer = &response["data"]["verifyKey"];
            assert!(
                matches!(answer["code"].as_str(), Some("VALID" | "USAGE_EXCEEDED")),
                "{answer}"
            );
            let remaining = answer["remainingCredits"].as_i64().unwrap();
            if answer["valid"] == true {
                valid_credits += input["credits"].as_i64().unwrap();
                valid.push(remaining);
            } else {
                assert!(
                    remaining < input["credits"].as_i64().unwrap(),
                    "refused though it fit: {answer}"
                );
                exceeded += 1;
            }
        }
    }
    let (counter, events, credits, requests, request_ids) = recorded(app, &victim.email).await;
    assert!(
        victim_errors.is_empty(),
        "{} of the victim's {VICTIM_CALLS} calls failed; {valid_credits} credits answered VALID, \
         {counter} charged; the first: {:#?}",
        victim_errors.len(),
        victim_errors[0]
    );

    // Every VALID answer is a charge, and every charge was answered VALID,
    // each with the total it made.
    assert_eq!(
        counter, valid_credits,
        "the counter holds exactly the credits answered VALID"
    );
    assert_eq!(
        (events, credits, requests),
        (valid.len() as i64, valid_credits, valid.len() as i64)
    );
    assert_eq!(
        request_ids,
        VICTIM_CALLS.div_ceil(2) as i64,
        "every requestId is answered"
    );
    valid.sort_unstable();
    valid.dedup();
    assert_eq!(
        valid.len() as i64,
        events,
        "every VALID answer saw a distinct total"
    );
    assert_eq!(app.keys_usage(&victim).await["totalCredits"], counter);
    assert!(
        exceeded > 0 && counter <= MONTHLY_CREDITS,
        "{exceeded} refused, {counter} charged"
    );

    // The failing calls left nothing behind.
    assert_eq!(
        recorded(app, &poisoned.email).await,
        (0, 0, 0, 0, 0),
        "{}",
        poisoned.email
    );

    if grouped && app.backend() == sea_orm::DbBackend::Postgres {
        // Calls shared transactions: events with one xmin were written together.
        let sizes = app
            .query_i64("SELECT SUM(calls) FROM api_key_usage GROUP BY xmin::text ORDER BY 1 DESC")
            .await;
        eprintln!("events per transaction: {sizes:?}");
        assert!(
            sizes[0] > 1,
            "no two calls were charged together: {sizes:?}"
        );
    }
}

on_both_backends! {
    async fn a_call_that_cannot_be_charged_fails_alone_in_a_shared_batch(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.monthly_credits = MONTHLY_CREDITS).await;
        failing_calls_fail_alone(app, true).await;
    }

    async fn a_call_that_cannot_be_charged_fails_alone_per_request(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| {
            config.monthly_credits = MONTHLY_CREDITS;
            config.group_commit = false;
        })
        .await;
        failing_calls_fail_alone(app, false).await;
    }
}
