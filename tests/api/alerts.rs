//! Usage alerts (contract v3), over HTTP on both databases: a threshold is
//! raised exactly once per cycle however many calls and processes race
//! across it, on both charging paths; a charge that rolls back raises
//! nothing; a plan change does not raise a threshold again; thresholds are
//! the owners' to set; each alert reaches the audit log as SYSTEM and the
//! owners by email.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::receiver::Receiver;
use crate::smtp::SmtpSink;
use crate::teams::{join, team};

const ALERTS_LOG: &str = "query($a: UUID) { account(id: $a) { usageAlerts auditLog(actions: [\"usage.threshold_reached\"]) { events { actor { type } targetType targetId targetName } } } }";
const SET_ALERTS: &str = "mutation($a: UUID, $t: [Int!]!) { setUsageAlerts(accountId: $a, thresholds: $t) { usageAlerts } }";
const WAIT: Duration = Duration::from_secs(20);

/// The thresholds raised for `user`'s own account, as stored.
async fn raised(app: &TestApp, user: &TestUser) -> Vec<i64> {
    app.query_i64(&format!(
        "SELECT CAST(a.threshold AS BIGINT) FROM usage_alerts a
           JOIN billing_accounts b ON b.id = a.account_id
           JOIN users u ON u.id = b.user_id
          WHERE u.email = '{}' ORDER BY a.threshold",
        user.email
    ))
    .await
}

/// The usage.threshold_reached events of the user's own account, once fanned out.
async fn logged(app: &TestApp, user: &TestUser, expected: usize) -> Vec<Value> {
    eventually(WAIT, || async {
        let data = app.ok(ALERTS_LOG, json!({}), Some(&user.token)).await;
        data["account"]["auditLog"]["events"]
            .as_array()
            .unwrap()
            .len()
            >= expected
    })
    .await;
    let data = app.ok(ALERTS_LOG, json!({}), Some(&user.token)).await;
    data["account"]["auditLog"]["events"]
        .as_array()
        .unwrap()
        .clone()
}

/// 60 calls of 2 credits on an account of 100, `connections` at a time,
/// spread over `servers`; half carry a requestId (the locked path on
/// PostgreSQL), half not (its one statement).
async fn race(app: &TestApp, servers: &[std::net::SocketAddr], secret: &str) -> usize {
    let answers: Vec<Value> = futures_util::stream::iter(0..60)
        .map(|i| {
            let addr = servers[i % servers.len()];
            let mut input = json!({ "key": secret, "credits": 2 });
            if i % 2 == 0 {
                input["requestId"] = json!(format!("race-{i}"));
            }
            async move {
                app.graphql_at(addr, VERIFY_KEY, json!({ "input": input }), None)
                    .await
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    answers
        .iter()
        .filter(|a| a["data"]["verifyKey"]["code"] == "VALID")
        .count()
}

on_both_backends! {
    async fn racing_calls_across_a_threshold_raise_it_once(backend: Backend) {
        for grouped in [true, false] {
            let app = TestApp::spawn_with(backend.clone(), |config| {
                config.monthly_credits = 100;
                config.group_commit = grouped;
            })
            .await;
            let user = app.signup().await;
            assert_eq!(race(&app, &[app.addr], user.default_secret()).await, 50);
            assert_eq!(raised(&app, &user).await, [80, 100], "grouped: {grouped}");
            let events = logged(&app, &user, 2).await;
            assert_eq!(events.len(), 2);
            for event in &events {
                assert_eq!(event["actor"]["type"], "SYSTEM");
                assert_eq!(event["targetType"], "ACCOUNT");
            }
            assert!(events[0]["targetName"].as_str().unwrap().starts_with("100% of 100 credits"));
            assert!(events[1]["targetName"].as_str().unwrap().starts_with("80% of 100 credits"));
        }
    }

    async fn two_processes_racing_across_a_threshold_raise_it_once(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.monthly_credits = 100).await;
        let second = app.spawn_second_server().await;
        let user = app.signup().await;
        assert_eq!(race(&app, &[app.addr, second], user.default_secret()).await, 50);
        assert_eq!(raised(&app, &user).await, [80, 100]);
        // Both processes fan out; each alert is fanned out once.
        assert_eq!(logged(&app, &user, 2).await.len(), 2);
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(logged(&app, &user, 2).await.len(), 2);
    }

    async fn a_charge_that_rolls_back_raises_nothing(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.monthly_credits = 100).await;
        let user = app.signup().await;
        let secret = user.default_secret();
        assert_eq!(app.charge(secret, 79).await["code"], "VALID");
        poison_endpoint(&app).await;
        let failed = app.graphql(VERIFY_KEY, json!({ "input": { "key": secret, "credits": 5, "endpoint": "poison" } }), None).await;
        assert_error(&failed, "INTERNAL_SERVER_ERROR");
        assert_eq!(raised(&app, &user).await, Vec::<i64>::new());
        assert_eq!(app.charge(secret, 1).await["code"], "VALID");
        assert_eq!(raised(&app, &user).await, [80]);
    }

    async fn a_plan_change_does_not_raise_a_threshold_again_but_the_next_cycle_does(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.monthly_credits = 100).await;
        let user = app.signup().await;
        let secret = user.default_secret();
        assert_eq!(app.charge(secret, 85).await["code"], "VALID");
        assert_eq!(raised(&app, &user).await, [80]);
        // The allowance doubles: 85 of 200 is under 80 % again; crossing it
        // again in this cycle raises nothing new.
        app.execute("UPDATE billing_accounts SET monthly_credits = 200").await;
        assert_eq!(app.charge(secret, 80).await["code"], "VALID");
        assert_eq!(raised(&app, &user).await, [80]);
        assert_eq!(app.charge(secret, 35).await["code"], "VALID");
        assert_eq!(raised(&app, &user).await, [80, 100]);
        // A new cycle raises them again.
        app.clock.advance(chrono::Duration::days(32));
        assert_eq!(app.charge(secret, 200).await["code"], "VALID");
        assert_eq!(raised(&app, &user).await, [80, 80, 100, 100]);
    }

    async fn thresholds_are_the_owners_to_set_and_apply_from_the_next_charge(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.monthly_credits = 100).await;
        let owner = app.signup().await;
        let member = app.signup().await;
        let acme = team(&app, &owner, "Acme").await;
        join(&app, &owner, &acme, &member, "MEMBER").await;
        let read = app.ok("query($a: UUID) { account(id: $a) { usageAlerts } }", json!({ "a": acme }), Some(&member.token)).await;
        assert_eq!(read["account"]["usageAlerts"], json!([80, 100]));
        assert_error(&app.graphql(SET_ALERTS, json!({ "a": acme, "t": [50] }), Some(&member.token)).await, "FORBIDDEN");
        for bad in [json!([0]), json!([101]), json!([50, 50]), json!([1, 2, 3, 4, 5, 6])] {
            assert_error(&app.graphql(SET_ALERTS, json!({ "a": acme, "t": bad }), Some(&owner.token)).await, "BAD_USER_INPUT");
        }
        let set = app.ok(SET_ALERTS, json!({ "a": acme, "t": [90, 25] }), Some(&owner.token)).await;
        assert_eq!(set["setUsageAlerts"]["usageAlerts"], json!([25, 90]));
        let stranger = app.signup().await;
        assert_error(&app.graphql(SET_ALERTS, json!({ "a": acme, "t": [50] }), Some(&stranger.token)).await, "NOT_FOUND");
        let made = app.ok("mutation($a: UUID) { createKey(input: { name: \"k\", accountId: $a }) { secret } }", json!({ "a": acme }), Some(&member.token)).await;
        let secret = made["createKey"]["secret"].as_str().unwrap();
        assert_eq!(app.charge(secret, 30).await["code"], "VALID");
        let rows = app.query_i64("SELECT CAST(threshold AS BIGINT) FROM usage_alerts WHERE account_id IN (SELECT account_id FROM api_keys WHERE name = 'k') ORDER BY 1").await;
        assert_eq!(rows, [25]);
        let log = app.ok("query($a: UUID) { account(id: $a) { auditLog(actions: [\"usage_alerts.changed\"]) { events { targetName } } } }", json!({ "a": acme }), Some(&member.token)).await;
        assert_eq!(log["account"]["auditLog"]["events"][0]["targetName"], "25, 90");
        // No thresholds at all: nothing is raised.
        app.ok(SET_ALERTS, json!({ "a": acme, "t": [] }), Some(&owner.token)).await;
        assert_eq!(app.charge(secret, 65).await["code"], "VALID");
        let rows = app.query_i64("SELECT COUNT(*) FROM usage_alerts WHERE threshold <> 25 AND account_id IN (SELECT account_id FROM api_keys WHERE name = 'k')").await;
        assert_eq!(rows, [0]);
    }

    async fn a_threshold_reached_is_a_signed_webhook_to_subscribed_endpoints(backend: Backend) {
        let receiver = Receiver::start().await;
        let app = TestApp::spawn_with(backend, |config| {
            config.monthly_credits = 100;
            config.webhook_allow_private = true;
        })
        .await;
        let owner = app.signup().await;
        let create = "mutation($url: String!, $events: [String!]) { createWebhookEndpoint(input: { url: $url, events: $events }) { secret endpoint { id } } }";
        let subscribed = app.ok(create, json!({ "url": receiver.url("/alerts"), "events": ["usage.threshold_reached"] }), Some(&owner.token)).await;
        let secret = subscribed["createWebhookEndpoint"]["secret"].as_str().unwrap().to_owned();
        app.ok(create, json!({ "url": receiver.url("/keys-only"), "events": ["key.created"] }), Some(&owner.token)).await;
        let own = app.ok("{ account { id billingAccount { billingCycleStart billingCycleEnd } } }", json!({}), Some(&owner.token)).await;

        assert_eq!(app.charge(owner.default_secret(), 85).await["code"], "VALID");
        eventually(WAIT, || async { !receiver.requests_to("/alerts").is_empty() }).await;
        let delivered = &receiver.requests_to("/alerts")[0];
        assert!(crate::webhooks::verify_signature(
            &secret,
            delivered.header("webhook-id"),
            delivered.header("webhook-timestamp"),
            &delivered.body,
            delivered.header("webhook-signature"),
        ));
        let body = delivered.json();
        assert_eq!(body["type"], "usage.threshold_reached");
        assert_eq!(body["data"], json!({
            "accountId": own["account"]["id"],
            "threshold": 80,
            "creditsUsed": 85,
            "monthlyCredits": 100,
            "cycleStart": own["account"]["billingAccount"]["billingCycleStart"],
            "cycleEnd": own["account"]["billingAccount"]["billingCycleEnd"],
        }));
        // Once, and not to the endpoint that did not subscribe.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(receiver.requests_to("/alerts").len(), 1);
        assert!(receiver.requests_to("/keys-only").is_empty());
    }

    async fn an_alert_that_cannot_be_fanned_out_holds_back_no_other_account(backend: Backend) {
        let app = TestApp::spawn_with(backend, |config| config.monthly_credits = 100).await;
        let stuck = app.signup().await;
        let other = app.signup().await;
        let stuck_account = app.ok("{ account { id } }", json!({}), Some(&stuck.token)).await["account"]["id"].as_str().unwrap().to_owned();
        refuse_audit_events_of(&app, &stuck_account).await;
        // The stuck account's alert is raised first, so it is first in line.
        assert_eq!(app.charge(stuck.default_secret(), 85).await["code"], "VALID");
        app.clock.advance(chrono::Duration::seconds(1));
        assert_eq!(app.charge(other.default_secret(), 85).await["code"], "VALID");
        assert_eq!(logged(&app, &other, 1).await.len(), 1);
        let pending = app.query_i64("SELECT COUNT(*) FROM usage_alerts WHERE fanned_out_at IS NULL").await;
        assert_eq!(pending, [1], "the stuck alert waits, rolled back whole");
    }

    async fn the_owners_are_emailed_when_a_threshold_is_reached(backend: Backend) {
        let sink = SmtpSink::start().await;
        let app = TestApp::spawn_with(backend, |config| {
            config.monthly_credits = 100;
            config.smtp_url = Some(sink.url());
            config.email_from = Some("keymeter <keys@example.com>".to_owned());
        })
        .await;
        let owner = app.signup().await;
        let member = app.signup().await;
        let acme = team(&app, &owner, "Acme").await;
        join(&app, &owner, &acme, &member, "MEMBER").await;
        // The invitation's email first, so that it is not taken for an alert.
        eventually(WAIT, || async { !sink.messages().is_empty() }).await;
        let invitations = sink.messages().len();
        let made = app.ok("mutation($a: UUID) { createKey(input: { name: \"k\", accountId: $a }) { secret } }", json!({ "a": acme }), Some(&owner.token)).await;
        assert_eq!(app.charge(made["createKey"]["secret"].as_str().unwrap(), 80).await["code"], "VALID");
        eventually(WAIT, || async { sink.messages().len() > invitations }).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let alerts: Vec<_> = sink.messages().into_iter().skip(invitations).collect();
        assert_eq!(alerts.len(), 1, "only the owner");
        assert_eq!(alerts[0].to, std::slice::from_ref(&owner.email));
        assert!(alerts[0].data.contains("80%"), "{}", alerts[0].data);
    }
}

/// Makes the database refuse an event whose endpoint is `poison`, as a
/// broken statement would.
async fn poison_endpoint(app: &TestApp) {
    if app.backend() == sea_orm::DbBackend::Postgres {
        app.execute(
            "CREATE FUNCTION poisoned() RETURNS trigger AS $$
             BEGIN RAISE EXCEPTION 'poisoned by the test'; END $$ LANGUAGE plpgsql;
             CREATE TRIGGER poison_events BEFORE INSERT ON api_key_usage
             FOR EACH ROW WHEN (NEW.endpoint = 'poison') EXECUTE FUNCTION poisoned();",
        )
        .await;
    } else {
        app.execute(
            "CREATE TRIGGER poison_events BEFORE INSERT ON api_key_usage WHEN NEW.endpoint = 'poison'
             BEGIN SELECT RAISE(ABORT, 'poisoned by the test'); END;",
        )
        .await;
    }
}

/// Makes the database refuse audit events of one account, as a broken
/// statement would.
async fn refuse_audit_events_of(app: &TestApp, account_id: &str) {
    if app.backend() == sea_orm::DbBackend::Postgres {
        app.execute(&format!(
            "CREATE FUNCTION refuse_audit() RETURNS trigger AS $$
             BEGIN RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql;
             CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events
             FOR EACH ROW WHEN (NEW.target_id = '{account_id}') EXECUTE FUNCTION refuse_audit();"
        ))
        .await;
    } else {
        app.execute(&format!(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events WHEN NEW.target_id = '{account_id}'
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;"
        ))
        .await;
    }
}
