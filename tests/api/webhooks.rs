//! Webhooks (contract v3) over HTTP on both databases, delivered to a real
//! receiver (`receiver::Receiver`): signatures a receiver library would
//! accept, test events, retries with one webhook-id, timeouts, 410 disabling an
//! endpoint, redelivery, event filters, deliveries that survive a restart
//! and are made once by two servers, SSRF refusals, OWNER-only access,
//! the endpoint cap and the audit log.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use keymeter::service::webhooks::{enqueue, WebhookEvent};
use serde_json::{json, Value};
use sha2::Sha256;
use uuid::Uuid;

use crate::helpers::*;
use crate::receiver::{url_at, Receiver};
use crate::teams::{join, team};

const WAIT: Duration = Duration::from_secs(20);

const CREATE: &str = "mutation($input: CreateWebhookEndpointInput!) { createWebhookEndpoint(input: $input) { secret endpoint { id url events createdAt disabledAt } } }";
const DELETE: &str = "mutation($id: UUID!) { deleteWebhookEndpoint(id: $id) }";
const SEND_TEST: &str = "mutation($id: UUID!) { sendTestWebhook(endpointId: $id) { id endpointId eventId eventType status attempts lastResponseStatus createdAt nextAttemptAt } }";
const REDELIVER: &str =
    "mutation($id: UUID!) { redeliverWebhook(deliveryId: $id) { id eventId status attempts } }";
const ENDPOINTS: &str =
    "query($a: UUID) { account(id: $a) { id webhookEndpoints { id url events disabledAt } } }";
const DELIVERIES: &str = "query($a: UUID, $e: UUID, $first: Int) { account(id: $a) { webhookDeliveries(endpointId: $e, first: $first) { id endpointId eventId eventType status attempts lastResponseStatus nextAttemptAt } } }";

/// A server that may call the receiver on 127.0.0.1, retrying after
/// `delays` seconds.
async fn spawn(backend: Backend, delays: &[u64]) -> TestApp {
    let delays = delays.to_vec();
    TestApp::spawn_with(backend, move |c| {
        c.webhook_allow_private = true;
        c.webhook_retry_delays = delays;
        c.webhook_timeout_secs = 5;
    })
    .await
}

/// `user`'s new endpoint at `url` (in their own account unless `account`),
/// receiving `events`: (its id, its secret).
async fn endpoint(
    app: &TestApp,
    user: &TestUser,
    account: Option<&str>,
    url: &str,
    events: &[&str],
) -> (String, String) {
    let made = app
        .ok(
            CREATE,
            json!({ "input": { "accountId": account, "url": url, "events": events } }),
            Some(&user.token),
        )
        .await;
    let payload = &made["createWebhookEndpoint"];
    (
        payload["endpoint"]["id"].as_str().unwrap().to_owned(),
        payload["secret"].as_str().unwrap().to_owned(),
    )
}

/// A filter that lets every event through.
const EVERY: &[&str] = &[];
/// A filter for an event these tests raise only on purpose, so a receiver
/// gets test events and redeliveries alone (an endpoint that takes every
/// event would also hear of its own creation).
const QUIET: &[&str] = &["usage.threshold_reached"];

async fn send_test(app: &TestApp, user: &TestUser, endpoint_id: &str) -> Value {
    let sent = app
        .ok(SEND_TEST, json!({ "id": endpoint_id }), Some(&user.token))
        .await;
    sent["sendTestWebhook"].clone()
}

/// `user`'s own account's deliveries, newest first.
async fn deliveries(app: &TestApp, user: &TestUser) -> Vec<Value> {
    let listed = app.ok(DELIVERIES, json!({}), Some(&user.token)).await;
    listed["account"]["webhookDeliveries"]
        .as_array()
        .unwrap()
        .clone()
}

/// Waits until `user`'s delivery `id` has `status` and returns it.
async fn delivery_once(app: &TestApp, user: &TestUser, id: &str, status: &str) -> Value {
    eventually(WAIT, || async {
        deliveries(app, user)
            .await
            .iter()
            .any(|d| d["id"] == id && d["status"] == status)
    })
    .await;
    let all = deliveries(app, user).await;
    all.into_iter().find(|d| d["id"] == id).unwrap()
}

async fn own_account_id(app: &TestApp, user: &TestUser) -> Uuid {
    let data = app
        .ok("{ account { id } }", json!({}), Some(&user.token))
        .await;
    data["account"]["id"].as_str().unwrap().parse().unwrap()
}

/// What a Standard Webhooks receiver library checks: the signature over
/// id.timestamp.body with the secret's key, among the header's signatures.
pub fn verify_signature(secret: &str, id: &str, timestamp: &str, body: &str, header: &str) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    header
        .split(' ')
        .any(|signature| signature == format!("v1,{expected}"))
}

on_both_backends! {
    async fn a_test_event_arrives_signed_as_standard_webhooks(backend: Backend) {
        let receiver = Receiver::start().await;
        let app = spawn(backend, &[5]).await;
        let user = app.signup().await;
        let (id, secret) = endpoint(&app, &user, None, &receiver.url("/hooks"), QUIET).await;
        assert!(secret.starts_with("whsec_"));
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret.strip_prefix("whsec_").unwrap())
            .unwrap();
        assert_eq!(key.len(), 32);

        let sent = send_test(&app, &user, &id).await;
        assert_eq!(sent["eventType"], "webhook.test");
        assert_eq!(sent["endpointId"], id.as_str());

        eventually(WAIT, || async { receiver.requests().len() == 1 }).await;
        let request = &receiver.requests()[0];
        assert_eq!(request.path, "/hooks");
        assert_eq!(request.header("content-type"), "application/json");
        assert_eq!(request.header("webhook-id"), sent["eventId"].as_str().unwrap());
        // Unix seconds of the attempt, by the server's clock (which stands
        // still until the test moves it).
        let timestamp = request.header("webhook-timestamp");
        assert_eq!(timestamp, app.clock.now().timestamp().to_string());
        assert!(verify_signature(
            &secret,
            request.header("webhook-id"),
            timestamp,
            &request.body,
            request.header("webhook-signature"),
        ));
        assert!(!verify_signature(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            request.header("webhook-id"),
            timestamp,
            &request.body,
            request.header("webhook-signature"),
        ));
        let body = request.json();
        assert_eq!(body["type"], "webhook.test");
        assert_eq!(body["data"], json!({ "endpointId": id }));
        let at = chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap());
        assert!(at.is_ok(), "{body}");

        let done = delivery_once(&app, &user, sent["id"].as_str().unwrap(), "SUCCEEDED").await;
        assert_eq!(done["attempts"], 1);
        assert_eq!(done["lastResponseStatus"], 200);
        assert_eq!(done["nextAttemptAt"], Value::Null);
        // The secret was shown once: no field answers it again.
        let listed = app.ok(ENDPOINTS, json!({}), Some(&user.token)).await;
        assert!(!listed.to_string().contains(&secret));
    }

    async fn failed_attempts_are_retried_with_the_same_id_after_each_delay(backend: Backend) {
        let receiver = Receiver::start().await;
        receiver.answer(&[500, 503]);
        let app = spawn(backend, &[1, 2]).await;
        let user = app.signup().await;
        let (id, secret) = endpoint(&app, &user, None, &receiver.url("/hooks"), QUIET).await;
        let sent = send_test(&app, &user, &id).await;
        let delivery = sent["id"].as_str().unwrap();

        eventually(WAIT, || async {
            deliveries(&app, &user).await[0]["attempts"] == 1
        })
        .await;
        let pending = deliveries(&app, &user).await.remove(0);
        assert_eq!(pending["status"], "PENDING");
        assert_eq!(pending["lastResponseStatus"], 500);
        let due = chrono::DateTime::parse_from_rfc3339(pending["nextAttemptAt"].as_str().unwrap()).unwrap();
        assert_eq!(due.timestamp(), app.clock.now().timestamp() + 1);

        app.clock.advance(chrono::Duration::seconds(1));
        // Moved on only once the second failure is recorded: its delay
        // counts from the clock as the server read it then.
        eventually(WAIT, || async {
            deliveries(&app, &user).await[0]["attempts"] == 2
        })
        .await;
        assert_eq!(receiver.requests().len(), 2);
        app.clock.advance(chrono::Duration::seconds(2));
        let done = delivery_once(&app, &user, delivery, "SUCCEEDED").await;
        assert_eq!(done["attempts"], 3);
        assert_eq!(done["lastResponseStatus"], 200);

        let requests = receiver.requests();
        assert_eq!(requests.len(), 3);
        for request in &requests {
            assert_eq!(request.header("webhook-id"), sent["eventId"].as_str().unwrap());
            assert_eq!(request.body, requests[0].body, "the same body on every attempt");
            assert!(verify_signature(
                &secret,
                request.header("webhook-id"),
                request.header("webhook-timestamp"),
                &request.body,
                request.header("webhook-signature"),
            ));
        }
        // Each attempt signs its own timestamp.
        assert_ne!(requests[0].header("webhook-timestamp"), requests[2].header("webhook-timestamp"));
    }

    async fn a_delivery_fails_after_its_last_attempt_and_is_redelivered_with_its_id(backend: Backend) {
        let receiver = Receiver::start().await;
        // A redirect is a failure too: it is not followed.
        receiver.answer(&[500, 302]);
        let app = spawn(backend, &[0]).await;
        let user = app.signup().await;
        let (id, _) = endpoint(&app, &user, None, &receiver.url("/hooks"), QUIET).await;
        let sent = send_test(&app, &user, &id).await;
        let delivery = sent["id"].as_str().unwrap();

        let failed = delivery_once(&app, &user, delivery, "FAILED").await;
        assert_eq!(failed["attempts"], 2);
        assert_eq!(failed["lastResponseStatus"], 302);
        assert_eq!(receiver.requests().len(), 2);

        let again = app.ok(REDELIVER, json!({ "id": delivery }), Some(&user.token)).await;
        assert_eq!(again["redeliverWebhook"]["eventId"], sent["eventId"]);
        let done = delivery_once(&app, &user, delivery, "SUCCEEDED").await;
        assert_eq!(done["attempts"], 3, "attempts continue");
        let requests = receiver.requests();
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[2].header("webhook-id"), sent["eventId"].as_str().unwrap());

        // A SUCCEEDED delivery can be redelivered too; a PENDING one cannot.
        app.ok(REDELIVER, json!({ "id": delivery }), Some(&user.token)).await;
        eventually(WAIT, || async { receiver.requests().len() == 4 }).await;
        let _ = delivery_once(&app, &user, delivery, "SUCCEEDED").await;
        receiver.delay(Duration::from_secs(3));
        app.ok(REDELIVER, json!({ "id": delivery }), Some(&user.token)).await;
        let twice = app.graphql(REDELIVER, json!({ "id": delivery }), Some(&user.token)).await;
        assert_error(&twice, "BAD_USER_INPUT");
    }

    async fn an_answer_later_than_the_timeout_is_a_failed_attempt(backend: Backend) {
        let receiver = Receiver::start().await;
        receiver.delay(Duration::from_secs(4));
        let app = TestApp::spawn_with(backend, |c| {
            c.webhook_allow_private = true;
            c.webhook_retry_delays = vec![];
            c.webhook_timeout_secs = 1;
        })
        .await;
        let user = app.signup().await;
        let (id, _) = endpoint(&app, &user, None, &receiver.url("/slow"), QUIET).await;
        let sent = send_test(&app, &user, &id).await;

        let failed = delivery_once(&app, &user, sent["id"].as_str().unwrap(), "FAILED").await;
        assert_eq!(failed["attempts"], 1);
        assert_eq!(failed["lastResponseStatus"], Value::Null, "no answer in time");
        assert_eq!(receiver.requests().len(), 1);
    }

    async fn a_410_disables_the_endpoint_and_nothing_more_is_sent_to_it(backend: Backend) {
        let receiver = Receiver::start().await;
        receiver.answer(&[410]);
        let app = spawn(backend, &[1]).await;
        let user = app.signup().await;
        let (id, _) = endpoint(&app, &user, None, &receiver.url("/gone"), QUIET).await;
        let sent = send_test(&app, &user, &id).await;

        let failed = delivery_once(&app, &user, sent["id"].as_str().unwrap(), "FAILED").await;
        assert_eq!(failed["lastResponseStatus"], 410);
        assert_eq!(failed["attempts"], 1);
        let listed = app.ok(ENDPOINTS, json!({}), Some(&user.token)).await;
        assert!(listed["account"]["webhookEndpoints"][0]["disabledAt"].is_string(), "{listed}");

        // Events, test events and redeliveries: none reach it.
        let account = own_account_id(&app, &user).await;
        let event = WebhookEvent::new("usage.threshold_reached", app.clock.now(), json!({}));
        assert_eq!(enqueue(&app.db, account, &event, app.clock.now()).await.unwrap(), 0);
        let test = app.graphql(SEND_TEST, json!({ "id": id }), Some(&user.token)).await;
        assert_error(&test, "BAD_USER_INPUT");
        let again = app.graphql(REDELIVER, json!({ "id": sent["id"] }), Some(&user.token)).await;
        assert_error(&again, "BAD_USER_INPUT");
        app.clock.advance(chrono::Duration::seconds(60));
        // A delivery whose endpoint is disabled is never attempted: what
        // the worker would have sent by now, it has not.
        assert_eq!(deliveries(&app, &user).await.len(), 1);
        assert_eq!(receiver.requests().len(), 1);
    }

    async fn events_reach_the_endpoints_subscribed_to_them(backend: Backend) {
        let receiver = Receiver::start().await;
        let app = spawn(backend, &[5]).await;
        let user = app.signup().await;
        endpoint(&app, &user, None, &receiver.url("/alerts"), &["usage.threshold_reached"]).await;
        endpoint(&app, &user, None, &receiver.url("/all"), EVERY).await;
        let (keys_only, _) = endpoint(&app, &user, None, &receiver.url("/keys"), &["key.created"]).await;
        let account = own_account_id(&app, &user).await;

        let data = json!({ "accountId": account, "threshold": 80, "creditsUsed": 800, "monthlyCredits": 1000 });
        let event = WebhookEvent {
            id: "evt_threshold_1".into(),
            event_type: "usage.threshold_reached".into(),
            timestamp: app.clock.now(),
            data: data.clone(),
        };
        // On the caller's transaction, as the charge's fan-out does.
        use sea_orm::TransactionTrait;
        let txn = app.db.begin().await.unwrap();
        assert_eq!(enqueue(&txn, account, &event, app.clock.now()).await.unwrap(), 2);
        txn.commit().await.unwrap();
        // A rolled-back change sends nothing.
        let txn = app.db.begin().await.unwrap();
        let rolled_back = WebhookEvent::new("usage.threshold_reached", app.clock.now(), json!({}));
        enqueue(&txn, account, &rolled_back, app.clock.now()).await.unwrap();
        txn.rollback().await.unwrap();

        let threshold = "usage.threshold_reached";
        eventually(WAIT, || async {
            receiver.events_to("/alerts", threshold).len() + receiver.events_to("/all", threshold).len() == 2
        })
        .await;
        for path in ["/alerts", "/all"] {
            let got = receiver.events_to(path, threshold);
            assert_eq!(got.len(), 1, "{path}");
            assert_eq!(got[0].header("webhook-id"), "evt_threshold_1");
            let body = got[0].json();
            assert_eq!(body["type"], "usage.threshold_reached");
            assert_eq!(body["data"], data);
        }
        // A test event ignores the filter.
        send_test(&app, &user, &keys_only).await;
        eventually(WAIT, || async { receiver.requests_to("/keys").len() == 1 }).await;
        assert_eq!(receiver.requests_to("/keys")[0].json()["type"], "webhook.test");
        assert_eq!(receiver.requests_to("/alerts").len(), 1, "nothing else was raised");
        // The filter names known event types only.
        let refused = app
            .graphql(CREATE, json!({ "input": { "url": receiver.url("/x"), "events": ["key.deleted"] } }), Some(&user.token))
            .await;
        assert_error(&refused, "BAD_USER_INPUT");
    }

    async fn deliveries_survive_a_restart_and_go_out_when_the_receiver_is_back(backend: Backend) {
        let down = Receiver::unused_addr();
        let app = spawn(backend, &[1]).await;
        let user = app.signup().await;
        let (id, _) = endpoint(&app, &user, None, &url_at(down, "/hooks"), QUIET).await;
        let sent = send_test(&app, &user, &id).await;
        // The receiver is down: the first attempt fails, the next is due in
        // a second by the server's clock, which stands still.
        eventually(WAIT, || async { deliveries(&app, &user).await[0]["attempts"] == 1 }).await;
        let pending = deliveries(&app, &user).await.remove(0);
        assert_eq!(pending["status"], "PENDING");
        assert_eq!(pending["lastResponseStatus"], Value::Null, "no answer");

        // Every server stopped, the receiver back, then a new server.
        let later = app.clock.now() + chrono::Duration::seconds(5);
        let stopped = app.stop().await;
        let receiver = Receiver::start_at(down).await;
        let app = stopped.start(later).await;
        let done = delivery_once(&app, &user, sent["id"].as_str().unwrap(), "SUCCEEDED").await;
        assert_eq!(done["attempts"], 2);
        assert_eq!(receiver.requests().len(), 1);
        assert_eq!(receiver.requests()[0].header("webhook-id"), sent["eventId"].as_str().unwrap());
    }

    async fn two_servers_deliver_each_attempt_once(backend: Backend) {
        let receiver = Receiver::start().await;
        let app = spawn(backend, &[5]).await;
        app.spawn_second_server().await;
        let user = app.signup().await;
        endpoint(&app, &user, None, &receiver.url("/a"), QUIET).await;
        endpoint(&app, &user, None, &receiver.url("/b"), QUIET).await;
        let account = own_account_id(&app, &user).await;
        for i in 0..15 {
            let event = WebhookEvent::new("usage.threshold_reached", app.clock.now(), json!({ "i": i }));
            assert_eq!(enqueue(&app.db, account, &event, app.clock.now()).await.unwrap(), 2);
        }

        eventually(WAIT, || async {
            let all = deliveries(&app, &user).await;
            all.len() == 30 && all.iter().all(|d| d["status"] == "SUCCEEDED")
        })
        .await;
        let requests = receiver.requests();
        assert_eq!(requests.len(), 30, "each once");
        let mut sent: Vec<(String, String)> = requests
            .iter()
            .map(|r| (r.path.clone(), r.header("webhook-id").to_owned()))
            .collect();
        sent.sort();
        sent.dedup();
        assert_eq!(sent.len(), 30);
        assert!(deliveries(&app, &user).await.iter().all(|d| d["attempts"] == 1));
    }

    async fn one_slow_receiver_does_not_hold_the_others(backend: Backend) {
        let slow = Receiver::start().await;
        slow.delay(Duration::from_secs(4));
        let fast = Receiver::start().await;
        let app = spawn(backend, &[5]).await;
        let user = app.signup().await;
        let (slow_id, _) = endpoint(&app, &user, None, &slow.url("/slow"), QUIET).await;
        let (fast_id, _) = endpoint(&app, &user, None, &fast.url("/fast"), QUIET).await;
        send_test(&app, &user, &slow_id).await;
        eventually(WAIT, || async { slow.requests().len() == 1 }).await;
        send_test(&app, &user, &fast_id).await;
        // Delivered while the slow one still waits for its answer.
        let took = eventually(WAIT, || async { fast.requests().len() == 1 }).await;
        assert!(took < Duration::from_secs(3), "took {took:?}");
    }

    async fn private_addresses_and_plain_http_are_refused(backend: Backend) {
        // allow_private is off, as in production.
        let app = TestApp::spawn_with(backend, |c| c.webhook_retry_delays = vec![]).await;
        let user = app.signup().await;
        for (url, why) in [
            ("https://127.0.0.1/hooks", "loopback"),
            ("https://10.1.2.3/hooks", "private"),
            ("https://169.254.169.254/latest/meta-data", "link-local"),
            ("https://[::1]/hooks", "loopback"),
            ("https://[::ffff:127.0.0.1]/hooks", "loopback"),
            ("https://100.64.0.1/", "CGNAT"),
            ("https://localhost:8443/hooks", "loopback"),
            ("http://example.com/hooks", "https"),
            ("ftp://example.com/", "https"),
        ] {
            let refused = app.graphql(CREATE, json!({ "input": { "url": url } }), Some(&user.token)).await;
            assert_error(&refused, "BAD_USER_INPUT");
            let message = refused["errors"][0]["message"].as_str().unwrap();
            assert!(message.contains(why), "{url}: {message}");
        }
        let long = format!("https://example.com/{}", "a".repeat(2048));
        let refused = app.graphql(CREATE, json!({ "input": { "url": long } }), Some(&user.token)).await;
        assert_error(&refused, "BAD_USER_INPUT");
        let listed = app.ok(ENDPOINTS, json!({}), Some(&user.token)).await;
        assert_eq!(listed["account"]["webhookEndpoints"], json!([]));

        // An endpoint that points inside (made before a DNS change, say) is
        // refused again at the attempt: a failed attempt, nothing sent.
        let receiver = Receiver::start().await;
        let account = own_account_id(&app, &user).await;
        let inside = format!("https://{}/hooks", receiver.addr());
        let insert = "INSERT INTO webhook_endpoints (id, account_id, url, events, secret, created_at, disabled_at) VALUES ($1, $2, $3, '[]', 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', $4, NULL)";
        use sea_orm::ConnectionTrait;
        app.db
            .execute_raw(sea_orm::Statement::from_sql_and_values(
                app.backend(),
                insert,
                [Uuid::new_v4().into(), account.into(), inside.into(), app.clock.now().into()],
            ))
            .await
            .unwrap();
        let event = WebhookEvent::new("usage.threshold_reached", app.clock.now(), json!({}));
        assert_eq!(enqueue(&app.db, account, &event, app.clock.now()).await.unwrap(), 1);
        eventually(WAIT, || async { deliveries(&app, &user).await[0]["status"] == "FAILED" }).await;
        let failed = deliveries(&app, &user).await.remove(0);
        assert_eq!(failed["attempts"], 1);
        assert_eq!(failed["lastResponseStatus"], Value::Null);
        assert!(receiver.requests().is_empty());
    }

    async fn only_owners_reach_webhooks_and_other_accounts_ids_are_not_found(backend: Backend) {
        let receiver = Receiver::start().await;
        let app = spawn(backend, &[5]).await;
        let owner = app.signup().await;
        let member = app.signup().await;
        let stranger = app.signup().await;
        let account = team(&app, &owner, "Acme").await;
        join(&app, &owner, &account, &member, "MEMBER").await;
        let (id, _) = endpoint(&app, &owner, Some(&account), &receiver.url("/acme"), QUIET).await;
        let sent = app.ok(SEND_TEST, json!({ "id": id }), Some(&owner.token)).await;
        let delivery = sent["sendTestWebhook"]["id"].as_str().unwrap().to_owned();

        // A MEMBER sees the account, so is told FORBIDDEN.
        let made = app
            .graphql(CREATE, json!({ "input": { "accountId": account, "url": receiver.url("/m") } }), Some(&member.token))
            .await;
        assert_error(&made, "FORBIDDEN");
        let listed = app.graphql(ENDPOINTS, json!({ "a": account }), Some(&member.token)).await;
        assert_error(&listed, "FORBIDDEN");
        let listed = app.graphql(DELIVERIES, json!({ "a": account }), Some(&member.token)).await;
        assert_error(&listed, "FORBIDDEN");
        for (query, variables) in [
            (DELETE, json!({ "id": id })),
            (SEND_TEST, json!({ "id": id })),
            (REDELIVER, json!({ "id": delivery })),
        ] {
            assert_error(&app.graphql(query, variables, Some(&member.token)).await, "FORBIDDEN");
        }
        // Anyone else: as if it did not exist.
        for (query, variables) in [
            (DELETE, json!({ "id": id })),
            (SEND_TEST, json!({ "id": id })),
            (REDELIVER, json!({ "id": delivery })),
            (DELETE, json!({ "id": Uuid::new_v4() })),
            (REDELIVER, json!({ "id": Uuid::new_v4() })),
        ] {
            assert_error(&app.graphql(query, variables, Some(&stranger.token)).await, "NOT_FOUND");
        }
        let foreign = app.graphql(DELIVERIES, json!({ "e": id }), Some(&stranger.token)).await;
        assert_error(&foreign, "NOT_FOUND");
        let foreign = app.graphql(ENDPOINTS, json!({ "a": account }), Some(&stranger.token)).await;
        assert_error(&foreign, "NOT_FOUND");
        let made = app
            .graphql(CREATE, json!({ "input": { "accountId": account, "url": receiver.url("/s") } }), Some(&stranger.token))
            .await;
        assert_error(&made, "NOT_FOUND");

        // The owner lists the team's deliveries, of one endpoint or all.
        let listed = app.ok(DELIVERIES, json!({ "a": account, "e": id, "first": 1 }), Some(&owner.token)).await;
        assert_eq!(listed["account"]["webhookDeliveries"][0]["id"], delivery.as_str());
        for first in [0, 201] {
            let refused = app.graphql(DELIVERIES, json!({ "a": account, "first": first }), Some(&owner.token)).await;
            assert_error(&refused, "BAD_USER_INPUT");
        }
    }

    async fn ended_deliveries_are_forgotten_after_30_days_and_pending_ones_kept(backend: Backend) {
        let down = Receiver::unused_addr();
        let app = spawn(backend, &[3600]).await;
        let user = app.signup().await;
        let (id, _) = endpoint(&app, &user, None, &url_at(down, "/old"), QUIET).await;
        let receiver = Receiver::start().await;
        let (ok_id, _) = endpoint(&app, &user, None, &receiver.url("/ok"), QUIET).await;
        let pending = send_test(&app, &user, &id).await;
        let ended = send_test(&app, &user, &ok_id).await;
        let _ = delivery_once(&app, &user, ended["id"].as_str().unwrap(), "SUCCEEDED").await;
        eventually(WAIT, || async {
            deliveries(&app, &user).await.iter().any(|d| d["id"] == pending["id"] && d["attempts"] == 1)
        })
        .await;

        let day29 = app.clock.now() + chrono::Duration::days(29);
        let retention = app.config.retention();
        let sweep = |at| keymeter::service::retention::sweep_usage(&app.db, &retention, at);
        assert_eq!(sweep(day29).await.unwrap().deliveries, 0);
        let day31 = app.clock.now() + chrono::Duration::days(31);
        assert_eq!(sweep(day31).await.unwrap().deliveries, 1);
        let left = deliveries(&app, &user).await;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0]["id"], pending["id"]);
    }

    async fn an_account_has_at_most_ten_endpoints(backend: Backend) {
        let receiver = Receiver::start().await;
        let app = spawn(backend, &[5]).await;
        let user = app.signup().await;
        for i in 0..5 {
            endpoint(&app, &user, None, &receiver.url(&format!("/{i}")), QUIET).await;
        }
        // Racing creations cannot pass the cap between them.
        let racing = (5..13).map(|i| {
            app.graphql(CREATE, json!({ "input": { "url": receiver.url(&format!("/{i}")) } }), Some(&user.token))
        });
        let answers = futures_util::future::join_all(racing).await;
        let made = answers.iter().filter(|a| a.get("errors").is_none()).count();
        assert_eq!(made, 5, "{answers:?}");
        for refused in answers.iter().filter(|a| a.get("errors").is_some()) {
            assert_error(refused, "BAD_USER_INPUT");
        }
        let eleventh = app.graphql(CREATE, json!({ "input": { "url": receiver.url("/10") } }), Some(&user.token)).await;
        assert_error(&eleventh, "BAD_USER_INPUT");
        let listed = app.ok(ENDPOINTS, json!({}), Some(&user.token)).await;
        assert_eq!(listed["account"]["webhookEndpoints"].as_array().unwrap().len(), 10);
    }

    async fn creation_and_deletion_are_audited_and_deletion_drops_pending_deliveries(backend: Backend) {
        let down = Receiver::unused_addr();
        let app = spawn(backend, &[60]).await;
        let user = app.signup().await;
        let url = url_at(down, "/audited");
        let (id, secret) = endpoint(&app, &user, None, &url, &["usage.threshold_reached"]).await;
        send_test(&app, &user, &id).await;
        eventually(WAIT, || async { deliveries(&app, &user).await[0]["attempts"] == 1 }).await;

        let deleted = app.ok(DELETE, json!({ "id": id }), Some(&user.token)).await;
        assert_eq!(deleted["deleteWebhookEndpoint"], true);
        assert!(deliveries(&app, &user).await.is_empty());
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM webhook_deliveries").await, [0]);
        let again = app.graphql(DELETE, json!({ "id": id }), Some(&user.token)).await;
        assert_error(&again, "NOT_FOUND");

        let log = app
            .ok(
                "{ account { auditLog(actions: [\"webhook_endpoint.created\", \"webhook_endpoint.deleted\"]) { events { action actor { type user { id } } targetType targetId targetName } } } }",
                json!({}),
                Some(&user.token),
            )
            .await;
        let events = log["account"]["auditLog"]["events"].as_array().unwrap();
        let actions: Vec<&str> = events.iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["webhook_endpoint.deleted", "webhook_endpoint.created"]);
        for event in events {
            assert_eq!(event["targetType"], "WEBHOOK_ENDPOINT");
            assert_eq!(event["targetId"], id.as_str());
            assert_eq!(event["targetName"], url.as_str());
            assert_eq!(event["actor"]["type"], "USER");
            assert_eq!(event["actor"]["user"]["id"], user.id.as_str());
        }
        assert!(!log.to_string().contains(&secret));
    }

    async fn account_changes_reach_subscribed_endpoints_as_their_log_says_them(backend: Backend) {
        let receiver = Receiver::start().await;
        let app = spawn(backend, &[5]).await;
        let owner = app.signup().await;
        let stranger = app.signup().await;
        let account = team(&app, &owner, "Acme").await;
        let (_, secret) = endpoint(&app, &owner, Some(&account), &receiver.url("/all"), EVERY).await;
        endpoint(&app, &owner, Some(&account), &receiver.url("/keys"), &["key.created", "key.revoked"]).await;
        let (stranger_endpoint, _) = endpoint(&app, &stranger, None, &receiver.url("/stranger"), EVERY).await;

        let made = app
            .ok(CREATE_KEY, json!({ "input": { "accountId": account, "name": "ci", "keyType": "DEV" } }), Some(&owner.token))
            .await;
        let key_secret = made["createKey"]["secret"].as_str().unwrap().to_owned();
        let key = made["createKey"]["apiKey"]["id"].as_str().unwrap().to_owned();
        let rename = "mutation($id: UUID!, $name: String!) { renameKey(id: $id, name: $name) { id } }";
        app.ok(rename, json!({ "id": key, "name": "deploys" }), Some(&owner.token)).await;
        // A refused change is neither logged nor sent.
        let refused = app.graphql(rename, json!({ "id": key, "name": "" }), Some(&owner.token)).await;
        assert_error(&refused, "BAD_USER_INPUT");
        let invited = app
            .ok(crate::teams::INVITE, json!({ "input": { "accountId": account, "email": unique_email() } }), Some(&owner.token))
            .await;
        let accept_url = invited["createInvitation"]["acceptUrl"].as_str().unwrap().to_owned();
        app.ok(REVOKE_KEY, json!({ "id": key }), Some(&owner.token)).await;

        let log = app
            .ok(
                "query($a: UUID) { account(id: $a) { auditLog { events { id action actor { type user { id } } targetType targetId targetName } } } }",
                json!({ "a": account }),
                Some(&owner.token),
            )
            .await;
        let mut logged = log["account"]["auditLog"]["events"].as_array().unwrap().clone();
        logged.reverse();
        let actions: Vec<&str> = logged.iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(
            actions,
            [
                "account.created",
                "webhook_endpoint.created",
                "webhook_endpoint.created",
                "key.created",
                "key.renamed",
                "invitation.created",
                "key.revoked"
            ]
        );

        // Every change after the first endpoint existed, in the log's order,
        // each under the log entry's id and with its fields.
        eventually(WAIT, || async { receiver.requests_to("/all").len() == 6 }).await;
        let got = receiver.requests_to("/all");
        for request in &got {
            let body = request.json();
            let entry = logged
                .iter()
                .find(|entry| entry["id"] == body["data"]["auditEventId"])
                .unwrap_or_else(|| panic!("{body} is in the log"));
            let id = Uuid::parse_str(entry["id"].as_str().unwrap()).unwrap();
            assert_eq!(request.header("webhook-id"), format!("evt_{}", id.simple()));
            assert_eq!(body["type"], entry["action"]);
            let data = &body["data"];
            assert_eq!(data["accountId"], account.as_str());
            assert_eq!(data["actor"], json!({ "type": "USER", "userId": owner.id }));
            assert_eq!(data["targetType"], entry["targetType"]);
            assert_eq!(data["targetId"], entry["targetId"]);
            assert_eq!(data["targetName"], entry["targetName"]);
            assert!(verify_signature(
                &secret,
                request.header("webhook-id"),
                request.header("webhook-timestamp"),
                &request.body,
                request.header("webhook-signature"),
            ));
            for hidden in [&key_secret, &accept_url, &secret] {
                assert!(!request.body.contains(hidden.as_str()), "{hidden} stays out of {body}");
            }
        }
        let mut sent: Vec<String> = got.iter().map(|r| r.json()["type"].as_str().unwrap().to_owned()).collect();
        sent.sort();
        let mut expected: Vec<String> = actions[1..].iter().map(|a| a.to_string()).collect();
        expected.sort();
        assert_eq!(sent, expected);

        // A filter takes only what it names; another account hears nothing.
        eventually(WAIT, || async { receiver.requests_to("/keys").len() == 2 }).await;
        let mut types: Vec<String> =
            receiver.requests_to("/keys").iter().map(|r| r.json()["type"].as_str().unwrap().to_owned()).collect();
        types.sort();
        assert_eq!(types, ["key.created", "key.revoked"]);
        // Its own delivery may still be on its way when the others have come.
        eventually(WAIT, || async { !receiver.requests_to("/stranger").is_empty() }).await;
        let stranger_got = receiver.requests_to("/stranger");
        assert_eq!(stranger_got.len(), 1);
        assert_eq!(stranger_got[0].json()["data"]["targetId"], stranger_endpoint.as_str());
    }
}
