//! The dashboard in a real browser (see `browser`), against the real server
//! on both databases: what a customer does, click by click.

use std::path::Path;
use std::time::Instant;

use fantoccini::Locator;
use serde_json::json;
use uuid::Uuid;

use crate::browser::Browser;
use crate::helpers::*;
use crate::oidc::{self, provider};
use crate::receiver::Receiver;
use crate::signup::{break_provisioning, repair_provisioning};

impl Browser {
    /// The button `name` in the keys table's row of the key named `key`.
    /// Clicks the button `name` in the row of the key named `key`.
    async fn click_row_button(&self, key: &str, name: &str) {
        let xpath = format!(
            "//tr[.//span[contains(@class,'key-name') and normalize-space()='{key}']]\
             //button[normalize-space()='{name}']"
        );
        self.click_xpath(&xpath).await;
    }

    /// Clicks what `xpath` finds, finding it again if the list re-rendered
    /// between the find and the click (a stale element).
    async fn click_xpath(&self, xpath: &str) {
        let deadline = Instant::now() + std::time::Duration::from_secs(15);
        loop {
            if let Ok(button) = self.client.find(Locator::XPath(xpath)).await {
                if button.click().await.is_ok() {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "nothing to click at {xpath}");
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    /// The secret dialog: its secret, after checking that closing it
    /// unseen warns, then copying it and closing it.
    async fn take_secret(&self) -> String {
        let secret = self
            .shown("#secret-dialog #secret-value")
            .await
            .text()
            .await
            .unwrap();
        self.click("#secret-dialog", "Done").await;
        self.text_of("#secret-warning", "You won't see this key again")
            .await;
        self.click("#secret-dialog", "Go back").await;
        self.click("#secret-dialog", "Copy").await;
        self.text_of("#copy-secret", "Copied").await;
        assert!(
            self.leaving_asks().await,
            "leaving with the secret open asks first"
        );
        self.click("#secret-dialog", "Done").await;
        self.gone("#secret-dialog").await;
        assert!(!self.leaving_asks().await);
        secret
    }

    /// Whether the page asks the browser to confirm leaving it (its
    /// beforeunload handler cancels the event).
    async fn leaving_asks(&self) -> bool {
        let script = "const e = new Event('beforeunload', { cancelable: true }); \
                      window.dispatchEvent(e); return e.defaultPrevented;";
        self.js(script, vec![]).await == true
    }

    /// The focused element, its text, and the name of the key whose row
    /// holds it.
    async fn focused(&self) -> serde_json::Value {
        let script = "const e = document.activeElement; const row = e.closest('tr[data-key-id]'); \
                      return { element: e.localName, text: e === document.body ? '' : e.textContent, \
                               key: row && row.querySelector('.key-name').textContent };";
        self.js(script, vec![]).await
    }

    /// From now on, counts the page's GraphQL requests (see COUNT_REQUESTS).
    async fn count_requests(&self) {
        self.js(COUNT_REQUESTS, vec![]).await;
    }

    /// Waits until the page has handled the answer to every request it
    /// sent since `count_requests`; returns how many it sent.
    async fn requests_sent_once_quiet(&self) -> u64 {
        let deadline = Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let count = self.js("return window.graphqlRequests", vec![]).await;
            if count["sent"] == count["handled"] {
                return count["sent"].as_u64().unwrap();
            }
            assert!(Instant::now() < deadline, "requests still pending: {count}");
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    /// Waits until the keys table's row of the key named `key` says
    /// `expected` (in any of its cells).
    async fn row_says(&self, key: &str, expected: &str) {
        let script = "return [...document.querySelectorAll('#keys-body tr')]
                        .find((tr) => tr.querySelector('.key-name')?.textContent === arguments[0])?.innerText ?? ''";
        let deadline = Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let text = self.js(script, vec![json!(key)]).await;
            if text.as_str().unwrap_or_default().contains(expected) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the row of {key} never said {expected:?}: {text}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    async fn sign_up_or_log_in(&self, email: &str, password: &str, button: &str) {
        self.shown("#auth-form").await;
        self.fill("Email", email).await;
        self.fill("Password", password).await;
        self.click("#auth-form", button).await;
    }
}

/// The rate limit `keys` shows for the key `key_id` of `account`, as `user`
/// reads it through the API.
async fn listed_limit(
    app: &TestApp,
    user: &TestUser,
    account: &str,
    key_id: &str,
) -> serde_json::Value {
    let query = "query($a: UUID) { keys(accountId: $a) { id rateLimit { limit windowSeconds } } }";
    let data = app
        .ok(query, json!({ "a": account }), Some(&user.token))
        .await;
    let keys = data["keys"].as_array().unwrap();
    let key = keys.iter().find(|key| key["id"] == key_id).expect("listed");
    key["rateLimit"].clone()
}

async fn spawn_with_provider(backend: Backend) -> TestApp {
    let issuer = provider().map(|provider| provider.issuer.clone());
    TestApp::spawn_with(backend, |config| {
        if let Some(issuer) = &issuer {
            oidc::configure(config, issuer, &["mock"]);
        }
    })
    .await
}

on_both_backends! {
    async fn a_customer_signs_up_manages_keys_and_watches_usage(backend: Backend) {
        let Some(browser) = Browser::start().await else { return };
        let is_sqlite = matches!(backend, Backend::Sqlite);
        let app = TestApp::spawn(backend).await;
        // A database of its own: a readable email for the screenshots.
        let email = "ada@example.com".to_owned();
        browser.goto(&app.url("/")).await;
        browser.sign_up_or_log_in(&email, PASSWORD, "Sign up").await;
        let default_secret = browser.take_secret().await;
        assert!(default_secret.starts_with("sk_dev_"), "{default_secret}");
        browser.text_of("#who", &email).await;
        browser.text_of("#keys-body", "Default key").await;
        browser.text_of("#keys-body", "Never used").await;
        // Nothing used yet: the chart's scale reads 0, 1, 2, never 1, 1, 0.
        browser.shown("#usage-chart svg").await;
        let scale = "return Array.from(document.querySelectorAll('#usage-chart svg text.axis'))
                       .slice(0, 3).map((t) => t.textContent);";
        assert_eq!(browser.js(scale, vec![]).await, json!(["0", "1", "2"]));
        // The page names an icon that is there (no 404 for /favicon.ico in
        // the console), and nothing it loaded failed.
        let icon = "return document.querySelector('link[rel=icon]').href";
        let icon = browser.js(icon, vec![]).await;
        let response = app.http.get(icon.as_str().unwrap()).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "image/svg+xml");
        let failed = "return performance.getEntriesByType('resource')
                        .filter((e) => e.responseStatus >= 400).map((e) => e.name);";
        assert_eq!(browser.js(failed, vec![]).await, json!([]));

        // A PROD key expiring in 30 days, then used through the API.
        browser.fill("Key name", "production").await;
        browser.select("#key-type", "PROD").await;
        browser.select("#key-expiry", "30d").await;
        browser.click("#create-form", "Create key").await;
        let secret = browser.take_secret().await;
        assert!(secret.starts_with("sk_prod_"), "{secret}");
        for _ in 0..3 {
            assert_eq!(app.charge(&secret, 5).await["code"], "VALID");
        }
        browser.goto(&app.url("/")).await;
        let usage = browser.text_of("#usage-body", "production").await;
        assert!(usage.contains("15"), "{usage}");
        browser.text_of("#credits-used", "15").await;
        browser.text_of("#credits-left", "985").await;
        let keys = browser.text_of("#keys-body", "PROD").await;
        assert!(keys.contains("Active") && keys.contains("Never"), "{keys}");
        browser.shown("#usage-chart svg rect").await;
        browser.text_of("#chart-caption", "15 credits").await;
        browser.text_of("#chart-legend", "production").await;
        browser.shown("#keys-body svg.sparkline").await;
        if is_sqlite {
            screenshots(&browser).await;
        }
        // The chart's other range, then back.
        browser.click(".ranges", "Last 24 hours").await;
        browser.text_of("#chart-caption", "in the last 24 hours, by hour").await;
        browser.click(".ranges", "This cycle").await;
        browser.text_of("#chart-caption", "this cycle, by day").await;

        // Rename, rotate with an hour's grace, revoke.
        browser.click_row_button("production", "Rename").await;
        browser.fill("New name", "production api").await;
        browser.click("dialog[open]", "Rename").await;
        browser.text_of("#keys-body", "production api").await;
        browser.click_row_button("production api", "Rotate").await;
        browser.select("dialog[open] select", "1h").await;
        browser.click("dialog[open]", "Rotate").await;
        let rotated = browser.take_secret().await;
        assert!(rotated.starts_with("sk_prod_") && rotated != secret);
        assert_eq!(app.charge(&secret, 1).await["code"], "VALID", "the old key's grace hour");
        assert_eq!(app.charge(&rotated, 1).await["code"], "VALID");
        browser.text_of("#keys-body", "Expires soon").await;

        let new_row = "//tr[.//button[normalize-space()='Rotate']][.//span[normalize-space()='production api']]";
        browser.client.find(Locator::XPath(new_row)).await.expect("the new key can be rotated");
        browser.click_xpath(&format!("{new_row}//button[normalize-space()='Revoke']")).await;
        browser.text_of("dialog[open]", "cannot be undone").await;
        browser.click("dialog[open]", "Revoke").await;
        browser.text_of("#revoked-count", "(1)").await;
        assert_eq!(app.charge(&rotated, 1).await["code"], "REVOKED");
        browser.shown("#show-revoked").await.click().await.unwrap();
        browser.text_of("#keys-body", "Revoked").await;

        // Log out; a wrong password is said in words; log in again.
        browser.click("header", "Log out").await;
        browser.shown("#auth-form").await;
        browser.sign_up_or_log_in(&email, "not the password", "Log in").await;
        browser.text_of("#auth-error", "Wrong email or password.").await;
        browser.sign_up_or_log_in(&email, PASSWORD, "Log in").await;
        browser.text_of("#who", &email).await;
        browser.text_of("#keys-body", "production api").await;
        browser.close().await;
    }

    async fn an_owner_invites_a_colleague_who_joins_and_sees_the_teams_keys(backend: Backend) {
        let Some(browser) = Browser::start().await else { return };
        let app = TestApp::spawn(backend).await;
        let owner = unique_email();
        let colleague = unique_email();
        browser.goto(&app.url("/")).await;
        browser.sign_up_or_log_in(&owner, PASSWORD, "Sign up").await;
        browser.take_secret().await;
        // The own account is listed first, and the keys say who made them.
        browser.text_of("#account-select", "(your account)").await;
        browser.text_of("#keys-body", "Default key").await;
        browser.text_of("#keys-body", &owner).await;

        // A new team, chosen at once, with a key of its own.
        browser.click("#account-bar", "New team").await;
        browser.fill("Team name", "Platform").await;
        browser.click("dialog[open]", "Create team").await;
        browser.text_of("#account-select", "Platform").await;
        browser.text_of("#keys-body", "No keys yet").await;
        browser.fill("Key name", "shared key").await;
        browser.click("#create-form", "Create key").await;
        browser.take_secret().await;
        browser.text_of("#keys-body", "shared key").await;
        let keys = browser.text_of("#keys-body", &owner).await;
        assert!(!keys.contains("Default key"), "the team's keys only: {keys}");

        // The owner invites the colleague; the link is shown once.
        browser.click("#account-bar", "Members").await;
        browser.text_of("#members-title", "Members of Platform").await;
        browser.text_of("#members-body", &owner).await;
        browser.fill("Invitee email", &colleague).await;
        browser.click("#invite-form", "Invite").await;
        let url = browser.text_of("#invite-url", "/invitations/accept#").await;
        browser.text_of("#invitations", &colleague).await;
        browser.click("#invite-link", "Copy").await;
        browser.text_of("#invite-copy-status", "Copied to the clipboard.").await;
        browser.click("#invite-link", "Done").await;
        browser.gone("#invite-link").await;
        let token = url.split('#').nth(1).expect("a token in the fragment").to_owned();

        // Signed out, the link asks to sign up first, then joins.
        browser.click("header", "Log out").await;
        browser.shown("#auth-form").await;
        let accept = app.url(&format!("/invitations/accept#{token}"));
        browser.goto(&accept).await;
        browser.text_of("#auth-error", "sign up with the email the invitation was sent to").await;
        browser.sign_up_or_log_in(&colleague, PASSWORD, "Sign up").await;
        browser.take_secret().await;
        browser.text_of("#who", &colleague).await;
        let chosen = "const s = document.getElementById('account-select'); return s.options[s.selectedIndex].text;";
        let deadline = Instant::now() + std::time::Duration::from_secs(15);
        while browser.js(chosen, vec![]).await != json!("Platform") {
            assert!(Instant::now() < deadline, "the team is not the account shown");
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        let keys = browser.text_of("#keys-body", "shared key").await;
        assert!(keys.contains(&owner) && !keys.contains("Default key"), "{keys}");
        let url = browser.client.current_url().await.unwrap();
        assert_eq!(url.path(), "/", "the token does not linger in the address bar");
        assert_eq!(url.fragment(), None);

        // A member sees the members, and cannot invite.
        browser.click("#account-bar", "Members").await;
        browser.text_of("#members-body", &colleague).await;
        let members = browser.text_of("#members-body", &owner).await;
        assert!(members.contains("Owner") && members.contains("Member"), "{members}");
        browser.gone("#owner-tools").await;

        // The audit log, newest first, and by action.
        browser.click("#account-bar", "Audit log").await;
        browser.text_of("#audit-title", "Audit log of Platform").await;
        let first = browser.text_of("#audit-body tr:first-child", "member.joined").await;
        assert!(first.contains(&colleague), "{first}");
        let all = browser.text_of("#audit-body", "account.created").await;
        let order: Vec<usize> = ["member.joined", "invitation.created", "key.created", "account.created"]
            .iter()
            .map(|action| all.find(action).unwrap_or_else(|| panic!("{action} in {all}")))
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "newest first: {all}");
        browser.select("#audit-action", "key.created").await;
        browser.gone("#audit-body tr:nth-child(2)").await;
        let keys_only = browser.text_of("#audit-body", "key.created").await;
        assert!(keys_only.contains("shared key") && !keys_only.contains("member.joined"), "{keys_only}");

        // The colleague leaves, and is back on their own account.
        browser.click("#account-bar", "Members").await;
        browser.click("#members-body", "Leave").await;
        browser.click("dialog[open]", "Leave").await;
        browser.text_of("#keys-body", "Default key").await;
        let options = browser.text_of("#account-select", "(your account)").await;
        assert!(!options.contains("Platform"), "{options}");

        // The link again: used, and said so in words.
        browser.goto(&accept).await;
        browser.text_of("#accept-error", "You could not join the team: ").await;
        browser.close().await;
    }

    async fn an_owner_manages_members_and_pages_through_the_audit_log(backend: Backend) {
        let Some(browser) = Browser::start().await else { return };
        let app = TestApp::spawn(backend).await;
        let owner = app.signup().await;
        let colleague = app.signup().await;
        let stranger = app.signup().await;
        let pending = unique_email();
        let team = app.ok("mutation { createAccount(name: \"Ops\") { id } }", json!({}), Some(&owner.token)).await;
        let team = team["createAccount"]["id"].as_str().unwrap().to_owned();
        let invite = "mutation($input: CreateInvitationInput!) { createInvitation(input: $input) { acceptUrl } }";
        let invited = app.ok(invite, json!({ "input": { "accountId": team, "email": colleague.email } }), Some(&owner.token)).await;
        let token = invited["createInvitation"]["acceptUrl"].as_str().unwrap().split('#').nth(1).unwrap().to_owned();
        let accept = "mutation($token: String!) { acceptInvitation(token: $token) { id } }";
        app.ok(accept, json!({ "token": token }), Some(&colleague.token)).await;
        app.ok(invite, json!({ "input": { "accountId": team, "email": pending } }), Some(&owner.token)).await;
        // More than a page of events: 55 renames.
        let key = app.ok("mutation($input: CreateKeyInput!) { createKey(input: $input) { apiKey { id } } }",
            json!({ "input": { "name": "k", "accountId": team } }), Some(&owner.token)).await;
        let key_id = key["createKey"]["apiKey"]["id"].as_str().unwrap().to_owned();
        for n in 0..55 {
            app.ok("mutation($id: UUID!, $name: String!) { renameKey(id: $id, name: $name) { id } }", json!({ "id": key_id, "name": format!("k{n}") }), Some(&owner.token)).await;
        }

        browser.goto(&app.url("/")).await;
        browser.sign_up_or_log_in(&owner.email, PASSWORD, "Log in").await;
        browser.text_of("#keys-body", "Default key").await;
        browser.select("#account-select", &team).await;
        browser.text_of("#keys-body", "k54").await;

        // The audit log: a page of 50, then the older ones.
        browser.click("#account-bar", "Audit log").await;
        browser.text_of("#audit-body tr:first-child", "key.renamed").await;
        browser.shown("#audit-body tr:nth-child(50)").await;
        browser.gone("#audit-body tr:nth-child(51)").await;
        browser.click("#audit-view", "Older").await;
        browser.text_of("#audit-body", "account.created").await;
        browser.gone("#audit-older").await;
        let rows = "return document.querySelectorAll('#audit-body tr').length";
        // 55 renames, key, account, 2 invitations, 1 join.
        assert_eq!(browser.js(rows, vec![]).await, json!(60));

        // Members: promote, demote, revoke the pending invitation, remove.
        browser.click("#account-bar", "Members").await;
        browser.text_of("#invitations", &pending).await;
        browser.click("#members-body", "Make owner").await;
        let row = format!("#members-body tr[data-user-id='{}']", colleague.id);
        browser.text_of(&row, "Owner").await;
        browser.click(&row, "Make member").await;
        browser.text_of(&row, "Member").await;
        browser.click("#invitations", "Revoke").await;
        browser.text_of("#invitations", "No pending invitations.").await;
        browser.click(&row, "Remove").await;
        browser.click("dialog[open]", "Remove").await;
        browser.gone(&row).await;
        // An owner cannot invite someone already in: said in words.
        browser.fill("Invitee email", &owner.email).await;
        browser.click("#invite-form", "Invite").await;
        browser.shown("#members-error").await;

        // Someone else's invitation: the accept page says the server's refusal.
        let invited = app.ok(invite, json!({ "input": { "accountId": team, "email": pending } }), Some(&owner.token)).await;
        let token = invited["createInvitation"]["acceptUrl"].as_str().unwrap().split('#').nth(1).unwrap().to_owned();
        browser.click("header", "Log out").await;
        browser.sign_up_or_log_in(&stranger.email, PASSWORD, "Log in").await;
        browser.text_of("#who", &stranger.email).await;
        browser.goto(&app.url(&format!("/invitations/accept#{token}"))).await;
        browser.text_of("#accept-error", "You could not join the team: ").await;
        browser.close().await;
    }

    async fn focus_comes_back_to_the_row_and_showing_revoked_keys_loads_nothing(backend: Backend) {
        let Some(browser) = Browser::start().await else { return };
        let app = TestApp::spawn(backend).await;
        let user = app.signup().await;
        app.create_key(&user, "staging", "DEV").await;
        let old = app.create_key(&user, "old", "DEV").await;
        app.ok(REVOKE_KEY, json!({ "id": old["apiKey"]["id"] }), Some(&user.token)).await;
        browser.goto(&app.url("/")).await;
        browser.sign_up_or_log_in(&user.email, PASSWORD, "Log in").await;
        browser.text_of("#revoked-count", "(1)").await;
        browser.count_requests().await;

        // The row is drawn again with its new name; focus is back on its
        // Rename button, and stays there once every answer is in.
        browser.click_row_button("staging", "Rename").await;
        browser.fill("New name", "staging api").await;
        browser.click("dialog[open]", "Rename").await;
        browser.text_of("#keys-body", "staging api").await;
        let sent = browser.requests_sent_once_quiet().await;
        assert!(sent >= 2, "the rename and the reload are counted: {sent}");
        assert_eq!(browser.focused().await, json!({ "element": "button", "text": "Rename", "key": "staging api" }));

        // The revoked key came with the page: showing it, and hiding it
        // again, is drawing, not loading.
        browser.shown("#show-revoked").await.click().await.unwrap();
        browser.text_of("#keys-body", "Revoked").await;
        browser.shown("#show-revoked").await.click().await.unwrap();
        browser.gone("#keys-body tr.revoked").await;
        assert_eq!(browser.requests_sent_once_quiet().await, sent, "no GraphQL request");
        browser.close().await;
    }

    async fn a_member_sets_a_keys_rate_limit_and_removes_it(backend: Backend) {
        let Some(browser) = Browser::start().await else { return };
        let app = TestApp::spawn(backend).await;
        let owner = app.signup().await;
        let member = app.signup().await;
        let acme = crate::teams::team(&app, &owner, "Acme").await;
        crate::teams::join(&app, &owner, &acme, &member, "MEMBER").await;
        let made = app.ok(crate::teams::TEAM_CREATE_KEY, json!({ "a": acme, "name": "metered" }), Some(&owner.token)).await;
        let key_id = made["createKey"]["apiKey"]["id"].as_str().unwrap().to_owned();
        let limit_of = || listed_limit(&app, &owner, &acme, &key_id);

        browser.goto(&app.url("/")).await;
        browser.sign_up_or_log_in(&member.email, PASSWORD, "Log in").await;
        browser.text_of("#keys-body", "Default key").await;
        browser.select("#account-select", &acme).await;
        browser.text_of("#keys-body", "metered").await;
        browser.row_says("metered", "None").await;

        // Nothing to remove yet; out of range, the browser says so and
        // sends nothing.
        browser.count_requests().await;
        browser.click_row_button("metered", "Rate limit: None").await;
        browser.text_of("dialog[open] h2", "Rate limit of metered").await;
        let remove = "//dialog[@open]//button[normalize-space()='Remove limit']";
        assert!(browser.client.find(Locator::XPath(remove)).await.is_err(), "no limit to remove");
        browser.fill("Calls per window", "0").await;
        browser.click("dialog[open]", "Save limit").await;
        let said = browser.js("return document.querySelector('dialog[open] input[name=limit]').validationMessage", vec![]).await;
        assert!(!said.as_str().unwrap_or("").is_empty(), "the field says why: {said}");
        assert_eq!(browser.requests_sent_once_quiet().await, 0);

        // Set: the table says it, and focus is back on the row's button.
        browser.fill("Calls per window", "100").await;
        browser.fill("Window in seconds", "60").await;
        browser.click("dialog[open]", "Save limit").await;
        browser.row_says("metered", "100 / 60 s").await;
        assert_eq!(limit_of().await, json!({ "limit": 100, "windowSeconds": 60 }));
        browser.requests_sent_once_quiet().await;
        assert_eq!(browser.focused().await, json!({ "element": "button", "text": "Rate limit: 100 / 60 s", "key": "metered" }));

        // Changed: the dialog starts from the limit the key has, and Enter
        // in a field saves (it does not press Cancel, the first button).
        browser.click_row_button("metered", "Rate limit: 100 / 60 s").await;
        let value = browser.js("return document.querySelector('dialog[open] input[name=limit]').value", vec![]).await;
        assert_eq!(value, "100");
        browser.fill("Window in seconds", "10\u{E007}").await;
        browser.row_says("metered", "100 / 10 s").await;

        // Removed.
        browser.click_row_button("metered", "Rate limit: 100 / 10 s").await;
        browser.click("dialog[open]", "Remove limit").await;
        browser.row_says("metered", "None").await;
        assert!(limit_of().await.is_null());
        let log = "query($a: UUID) { account(id: $a) { auditLog(actions: [\"key.rate_limit_changed\"]) { events { actor { user { email } } targetName } } } }";
        let events = app.ok(log, json!({ "a": acme }), Some(&owner.token)).await;
        let events = events["account"]["auditLog"]["events"].as_array().unwrap().clone();
        assert_eq!(events.len(), 3);
        assert!(events.iter().all(|e| e["actor"]["user"]["email"] == member.email.as_str() && e["targetName"] == "metered"));

        // Removed from the team meanwhile: the refusal is said in words.
        app.ok(crate::teams::REMOVE, json!({ "a": acme, "u": member.id }), Some(&owner.token)).await;
        browser.click_row_button("metered", "Rate limit: None").await;
        browser.fill("Calls per window", "5").await;
        browser.click("dialog[open]", "Save limit").await;
        browser.text_of("#keys-error", "Not found.").await;
        assert!(limit_of().await.is_null());
        browser.close().await;
    }

    async fn refusals_are_said_in_words(backend: Backend) {
        let Some(browser) = Browser::start().await else { return };
        let app = TestApp::spawn_with(backend, |config| config.login_max_failures = 2).await;
        let taken = app.signup().await;
        browser.goto(&app.url("/")).await;
        browser.sign_up_or_log_in(&taken.email, PASSWORD, "Sign up").await;
        browser.text_of("#auth-error", "already exists").await;
        for _ in 0..2 {
            browser.sign_up_or_log_in(&taken.email, "not the password", "Log in").await;
            browser.text_of("#auth-error", "Wrong email or password.").await;
        }
        browser.sign_up_or_log_in(&taken.email, "not the password", "Log in").await;
        let said = browser.text_of("#auth-error", "Too many attempts. Try again in ").await;
        assert!(said.contains("minute"), "{said}");
        browser.close().await;
    }

    async fn a_provider_sign_in_lands_on_the_dashboard_with_its_key(backend: Backend) {
        let Some(browser) = Browser::start().await else { return };
        let app = spawn_with_provider(backend).await;
        let Some(provider) = provider() else { return };
        let sub = format!("sub-{}", Uuid::new_v4().simple());
        let email = unique_email();
        provider.set_user(&sub, &email, true).await;

        browser.goto(&app.url("/")).await;
        browser.click("#providers", "Sign in with mock name").await;
        let field = browser.shown("input[name=sub]").await;
        field.send_keys(&sub).await.unwrap();
        browser.client.find(Locator::XPath("//button[normalize-space()='Authorize']")).await.unwrap()
            .click().await.unwrap();
        let secret = browser.take_secret().await;
        assert!(secret.starts_with("sk_dev_"));
        browser.text_of("#who", &email).await;
        browser.text_of("#keys-body", "Default key").await;
        let url = browser.client.current_url().await.unwrap();
        assert_eq!(url.path(), "/", "the code does not linger in the address bar");
        browser.close().await;
    }

    async fn a_sign_in_that_failed_is_said_on_the_signed_out_view(backend: Backend) {
        let Some(browser) = Browser::start().await else { return };
        let app = spawn_with_provider(backend).await;
        browser.goto(&app.url("/auth/callback?error=access_denied")).await;
        browser.text_of("#auth-error", "You cancelled the sign-in").await;
        let url = browser.client.current_url().await.unwrap();
        assert_eq!(url.path(), "/");
        browser.goto(&app.url("/auth/callback")).await;
        browser.text_of("#auth-error", "where sign-in providers send you back").await;
        if provider().is_some() {
            // A state this browser never started: the link is stale.
            browser.goto(&app.url("/auth/callback?code=abc&state=mock.nothing")).await;
            browser.text_of("#auth-error", "This sign-in link has expired or was already used.").await;
        }
        browser.shown("#auth-form").await;
        browser.close().await;
    }

    async fn a_user_whose_provisioning_failed_gets_the_key_on_the_dashboard(backend: Backend) {
        let Some(browser) = Browser::start().await else { return };
        let app = TestApp::spawn(backend).await;
        break_provisioning(&app).await;
        let email = unique_email();
        // Only what signup answers without a billing account.
        let signup = "mutation($email: String!, $password: String!) {
            signup(input: { email: $email, password: $password }) { token defaultKey { secret } } }";
        let signed_up = app.ok(signup, json!({ "email": email, "password": PASSWORD }), None).await;
        assert!(signed_up["signup"]["defaultKey"].is_null());
        repair_provisioning(&app).await;

        browser.goto(&app.url("/")).await;
        browser.sign_up_or_log_in(&email, PASSWORD, "Log in").await;
        let secret = browser.take_secret().await;
        assert_eq!(app.charge(&secret, 1).await["code"], "VALID");
        browser.text_of("#keys-body", "Default key").await;
        browser.close().await;
    }

    async fn twenty_keys_show_quickly_and_the_page_stays_small(backend: Backend) {
        let Some(browser) = Browser::start().await else { return };
        let app = TestApp::spawn(backend).await;
        let user = app.signup().await;
        // Ten members, nine of whom made one of the keys.
        let own = app.ok("{ account { id } }", json!({}), Some(&user.token)).await["account"]["id"].as_str().unwrap().to_owned();
        let mut makers = Vec::new();
        for _ in 1..10 {
            let member = app.signup().await;
            crate::teams::join(&app, &user, &own, &member, "MEMBER").await;
            makers.push(member);
        }
        for n in 1..20 {
            let name = format!("key {n:02}");
            // Odd keys by the members in turn, the rest by the owner.
            let maker = if n % 2 == 1 { makers.get(n / 2) } else { None };
            match maker {
                Some(member) => {
                    app.ok(crate::teams::TEAM_CREATE_KEY, json!({ "a": own, "name": name }), Some(&member.token)).await;
                }
                _ => {
                    app.create_key(&user, &name, if n % 2 == 0 { "PROD" } else { "DEV" }).await;
                }
            }
        }
        browser.goto(&app.url("/")).await;
        browser.sign_up_or_log_in(&user.email, PASSWORD, "Log in").await;
        browser.text_of("#keys-body", "key 19").await;
        // The first signed-in load: a fresh page with the session cookie.
        browser.goto(&app.url("/")).await;
        browser.shown("#keys-body tr:nth-child(20)").await;
        // The sparklines are the load's last request: measure once they are drawn.
        browser.shown("#keys-body svg.sparkline").await;
        let measured = browser.js(MEASURE, vec![]).await;
        let bytes = measured["bytes"].as_f64().unwrap();
        let keys_shown = measured["keysShownMs"].as_f64().unwrap();
        eprintln!("dashboard, first signed-in load: {} bytes transferred ({} resources, {} bytes of bodies); keys table with 20 keys of 10 members shown at {keys_shown:.0} ms",
            bytes, measured["resources"], measured["bodies"]);
        assert!(bytes < 200_000.0, "{measured:#}");
        assert!(measured["graphiql"] == 0, "GraphiQL is not part of the dashboard: {measured:#}");
        browser.close().await;
    }

    async fn graphiql_works_offline(backend: Backend) {
        let Some(browser) = Browser::start().await else { return };
        let app = TestApp::spawn(backend).await;
        browser.goto(&app.url("/graphql")).await;
        browser.shown(".graphiql-container").await;
        browser.shown(".graphiql-query-editor").await;
        let external = browser.js(
            "return performance.getEntriesByType('resource').filter(r => !r.name.startsWith(location.origin)).length",
            vec![],
        ).await;
        assert_eq!(external, 0);
        headers_typed_in_graphiql_stay_off_the_disk(&browser, &app).await;
        browser.close().await;
    }

    async fn an_owner_sets_alerts_and_manages_webhooks_and_a_member_sees_only_the_thresholds(backend: Backend) {
        let Some(browser) = Browser::start().await else { return };
        let receiver = Receiver::start().await;
        let app = TestApp::spawn_with(backend, |c| c.webhook_allow_private = true).await;
        let owner = app.signup().await;
        let colleague = app.signup().await;
        let team = app.ok("mutation { createAccount(name: \"Ops\") { id } }", json!({}), Some(&owner.token)).await;
        let team = team["createAccount"]["id"].as_str().unwrap().to_owned();
        let invite = "mutation($input: CreateInvitationInput!) { createInvitation(input: $input) { acceptUrl } }";
        let invited = app.ok(invite, json!({ "input": { "accountId": team, "email": colleague.email } }), Some(&owner.token)).await;
        let token = invited["createInvitation"]["acceptUrl"].as_str().unwrap().split('#').nth(1).unwrap().to_owned();
        let accept = "mutation($token: String!) { acceptInvitation(token: $token) { id } }";
        app.ok(accept, json!({ "token": token }), Some(&colleague.token)).await;

        browser.goto(&app.url("/")).await;
        browser.sign_up_or_log_in(&owner.email, PASSWORD, "Log in").await;
        browser.text_of("#keys-body", "Default key").await;
        browser.click("#account-bar", "Alerts and webhooks").await;
        browser.shown("#alerts-view").await;
        browser.select("#account-select", &team).await;
        browser.text_of("#alerts-title", "Alerts and webhooks of Ops").await;
        browser.text_of("#alerts-thresholds", "80%, 100%").await;

        // Thresholds: a refusal in words, then 50 and 90.
        browser.fill("Thresholds (%)", "50, 150").await;
        browser.click("#alerts-form", "Save").await;
        browser.shown("#alerts-error").await;
        browser.fill("Thresholds (%)", "50, 90").await;
        browser.click("#alerts-form", "Save").await;
        browser.text_of("#alerts-thresholds", "50%, 90%").await;
        browser.gone("#alerts-error").await;
        let read = app.ok("query($id: UUID) { account(id: $id) { usageAlerts } }", json!({ "id": team }), Some(&owner.token)).await;
        assert_eq!(read["account"]["usageAlerts"], json!([50, 90]));

        // An endpoint at the receiver; its secret is shown once.
        let url = receiver.url("/hooks");
        browser.fill("Endpoint URL", &url).await;
        browser.click("#endpoint-form", "Add endpoint").await;
        let secret = browser.text_of("#endpoint-secret-value", "whsec_").await;
        browser.text_of("#endpoints-body", &url).await;
        browser.text_of("#endpoints-body", "all events").await;
        browser.click("#endpoint-secret", "Copy").await;
        browser.text_of("#endpoint-copy-status", "Copied to the clipboard.").await;
        browser.click("#endpoint-secret", "Done").await;
        browser.gone("#endpoint-secret").await;
        let page = browser.js("return document.body.innerText", vec![]).await;
        assert!(!page.as_str().unwrap().contains(&secret), "the secret is gone from the page");

        // A test event, signed with that secret, SUCCEEDED after Refresh.
        browser.click("#endpoints-body", "Send test").await;
        eventually(WEBHOOK_WAIT, || async { receiver.events_to("/hooks", "webhook.test").len() == 1 }).await;
        let first = receiver.events_to("/hooks", "webhook.test").remove(0);
        assert_eq!(first.json()["type"], "webhook.test");
        assert!(crate::webhooks::verify_signature(
            &secret,
            first.header("webhook-id"),
            first.header("webhook-timestamp"),
            &first.body,
            first.header("webhook-signature"),
        ));
        // The test event's row (the endpoint's own creation is listed too).
        let test_row = format!("#deliveries-body tr[data-event-id='{}']", first.header("webhook-id"));
        let row = format!(
            "const r = document.querySelector(\"{test_row}\"); \
             return r ? [r.innerText, r.querySelector('td.num') && r.querySelector('td.num').innerText] : null;"
        );
        let row = row.as_str();
        let page = &browser;
        eventually(WEBHOOK_WAIT, || async move {
            page.click("#alerts-view", "Refresh").await;
            let row = page.js(row, vec![]).await;
            row[0].as_str().is_some_and(|text| text.contains("webhook.test") && text.contains("SUCCEEDED"))
        })
        .await;

        // Redelivered: the same webhook-id again, a second attempt.
        browser.click(&test_row, "Redeliver").await;
        eventually(WEBHOOK_WAIT, || async { receiver.events_to("/hooks", "webhook.test").len() == 2 }).await;
        let got = receiver.events_to("/hooks", "webhook.test");
        assert_eq!(got[0].header("webhook-id"), got[1].header("webhook-id"));
        eventually(WEBHOOK_WAIT, || async move {
            page.click("#alerts-view", "Refresh").await;
            let row = page.js(row, vec![]).await;
            row[0].as_str().is_some_and(|text| text.contains("SUCCEEDED")) && row[1] == "2"
        })
        .await;

        // Deleted after a confirmation.
        browser.click("#endpoints-body", "Delete").await;
        browser.click("dialog[open]", "Delete").await;
        browser.text_of("#endpoints-body", "No endpoints yet.").await;
        let left = app.ok("query($id: UUID) { account(id: $id) { webhookEndpoints { id } } }", json!({ "id": team }), Some(&owner.token)).await;
        assert_eq!(left["account"]["webhookEndpoints"], json!([]));

        // A member sees the thresholds, read-only, and nothing else.
        browser.click("header", "Log out").await;
        browser.sign_up_or_log_in(&colleague.email, PASSWORD, "Log in").await;
        browser.text_of("#who", &colleague.email).await;
        browser.click("#account-bar", "Alerts and webhooks").await;
        browser.shown("#alerts-view").await;
        browser.select("#account-select", &team).await;
        browser.text_of("#alerts-title", "Alerts and webhooks of Ops").await;
        browser.text_of("#alerts-thresholds", "50%, 90%").await;
        browser.gone("#alerts-edit").await;
        browser.gone("#webhook-tools").await;
        browser.gone("#alerts-error").await;
        browser.gone("#status").await;
        // Offline-safe: everything the page loaded came from keymeter.
        let external = browser.js(
            "return performance.getEntriesByType('resource').filter(r => !r.name.startsWith(location.origin)).length",
            vec![],
        ).await;
        assert_eq!(external, 0);
        browser.close().await;
    }
}

const WEBHOOK_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// What GraphiQL keeps in localStorage: never a typed header (a bearer
/// token there outlives the session, and any script on the origin reads
/// it), and not one an earlier version kept either.
async fn headers_typed_in_graphiql_stay_off_the_disk(browser: &Browser, app: &TestApp) {
    let stale = format!("stale-{}", Uuid::new_v4().simple());
    let seed = "localStorage.setItem('graphiql:headers', arguments[0]); \
                localStorage.setItem('graphiql:shouldPersistHeaders', 'true');";
    let kept = json!({ "Authorization": format!("Bearer {stale}") }).to_string();
    browser.js(seed, vec![json!(kept)]).await;
    browser.goto(&app.url("/graphql")).await;
    browser.click(".graphiql-editor-tools", "Headers").await;
    let typed = format!("typed-{}", Uuid::new_v4().simple());
    let editor = ".graphiql-editor-tool .graphiql-editor:not(.hidden)";
    // CodeMirror reads keys from a textarea of no height: focus it by a
    // click on the editor, and type there.
    let editor_box = browser.shown(&format!("{editor} .CodeMirror")).await;
    editor_box.click().await.unwrap();
    let field = browser.client.active_element().await.unwrap();
    field
        .send_keys(&format!("{{\"Authorization\": \"Bearer {typed}"))
        .await
        .unwrap();
    let value = "return document.querySelector(arguments[0]).CodeMirror.getValue()";
    let in_editor = browser
        .js(value, vec![json!(format!("{editor} .CodeMirror"))])
        .await;
    assert!(in_editor.as_str().unwrap().contains(&typed), "{in_editor}");
    // GraphiQL writes its state half a second after the last change.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let holding = "const tokens = Array.from(arguments); \
                   return Object.keys(localStorage) \
                     .filter((key) => tokens.some((t) => localStorage.getItem(key).includes(t)));";
    let holding = browser.js(holding, vec![json!(typed), json!(stale)]).await;
    assert_eq!(
        holding,
        json!([]),
        "localStorage keeps a header under these keys"
    );
}

/// What the page downloaded (navigation and every resource, headers
/// included as transferSize counts them) and when the keys table showed.
const MEASURE: &str = r#"
const entries = [...performance.getEntriesByType("navigation"), ...performance.getEntriesByType("resource")];
const mark = performance.getEntriesByName("keys-shown")[0];
return {
  bytes: entries.reduce((sum, e) => sum + (e.transferSize || e.encodedBodySize || 0), 0),
  bodies: entries.reduce((sum, e) => sum + (e.encodedBodySize || 0), 0),
  resources: entries.length,
  graphiql: entries.filter((e) => e.name.includes("graphiql")).length,
  keysShownMs: mark ? mark.startTime : -1,
};
"#;

/// Counts the GraphQL requests the page sends from now on (every one goes
/// through `fetch`): `sent`, and `handled` a task after the page has read
/// the answer, so after it has drawn what the answer changed.
const COUNT_REQUESTS: &str = r#"
const count = { sent: 0, handled: 0 };
const fetch = window.fetch;
window.fetch = async (...args) => {
  count.sent += 1;
  const response = await fetch(...args);
  const json = response.json.bind(response);
  response.json = () => json().finally(() => setTimeout(() => { count.handled += 1; }));
  return response;
};
window.graphqlRequests = count;
"#;

/// The signed-in dashboard, desktop and phone. Into target/screenshots/ by
/// default, so a test run leaves the tree alone; the README's pictures are
/// refreshed by asking: `KEYMETER_SCREENSHOTS=docs scripts/test.sh dashboard::`.
async fn screenshots(browser: &Browser) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = match std::env::var_os("KEYMETER_SCREENSHOTS") {
        Some(dir) => root.join(dir),
        None => root.join("target").join("screenshots"),
    };
    std::fs::create_dir_all(&dir).unwrap();
    browser
        .screenshot(1280, &dir.join("dashboard-desktop.png"))
        .await;
    browser
        .screenshot(360, &dir.join("dashboard-mobile.png"))
        .await;
    browser.client.set_window_size(1280, 800).await.unwrap();
}
