//! Accounts shared by members (contract v3), over HTTP on both databases:
//! own accounts and teams, keys that belong to an account and charge it,
//! invitations (shown once, emailed, bound to an email, redeemed once),
//! roles and the last-owner rule under races, removal that ends access at
//! once, and what another account's ids answer.

use serde_json::{json, Value};

use crate::helpers::*;
use crate::smtp::SmtpSink;

pub const ACCOUNTS: &str = "{ accounts { id name role billingAccount { monthlyCredits } } }";
pub const CREATE_ACCOUNT: &str =
    "mutation($name: String!) { createAccount(name: $name) { id name role } }";
pub const INVITE: &str = "mutation($input: CreateInvitationInput!) { createInvitation(input: $input) { acceptUrl invitation { id email role invitedBy { email } expiresAt createdAt } } }";
pub const ACCEPT: &str =
    "mutation($token: String!) { acceptInvitation(token: $token) { id name role } }";
pub const TEAM_KEYS: &str =
    "query($a: UUID) { keys(accountId: $a) { id name accountId createdBy { id email } } }";
pub const TEAM_CREATE_KEY: &str = "mutation($a: UUID, $name: String!) { createKey(input: { name: $name, accountId: $a }) { secret apiKey { id accountId createdBy { email } } } }";
pub const MEMBERS: &str =
    "query($a: UUID) { account(id: $a) { members { user { id email } role joinedAt } } }";
pub const REMOVE: &str =
    "mutation($a: UUID!, $u: UUID!) { removeMember(accountId: $a, userId: $u) }";
pub const SET_ROLE: &str = "mutation($a: UUID!, $u: UUID!, $r: MemberRole!) { setMemberRole(accountId: $a, userId: $u, role: $r) { role user { email } } }";

/// A team made by `owner`, its id.
pub async fn team(app: &TestApp, owner: &TestUser, name: &str) -> String {
    let made = app
        .ok(CREATE_ACCOUNT, json!({ "name": name }), Some(&owner.token))
        .await;
    made["createAccount"]["id"].as_str().unwrap().to_owned()
}

/// The token of an accept URL (after its `#`).
pub fn token_of(accept_url: &str) -> String {
    accept_url.split_once('#').unwrap().1.to_owned()
}

/// `user` joins `account` as `role`, invited by `owner`.
pub async fn join(app: &TestApp, owner: &TestUser, account: &str, user: &TestUser, role: &str) {
    let invited = app
        .ok(
            INVITE,
            json!({ "input": { "accountId": account, "email": user.email, "role": role } }),
            Some(&owner.token),
        )
        .await;
    let token = token_of(invited["createInvitation"]["acceptUrl"].as_str().unwrap());
    // Joined a second later, so that members list in the order they came.
    app.clock.advance(chrono::Duration::seconds(1));
    app.ok(ACCEPT, json!({ "token": token }), Some(&user.token))
        .await;
}

/// The text of an email as sent: quoted-printable soft line breaks joined,
/// or a base64 body decoded.
fn readable(data: &str) -> String {
    use base64::Engine;
    let (headers, body) = data.split_once("\r\n\r\n").unwrap_or((data, ""));
    if headers
        .to_ascii_lowercase()
        .contains("content-transfer-encoding: base64")
    {
        let joined: String = body.split_whitespace().collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(joined)
            .unwrap_or_default();
        return String::from_utf8_lossy(&bytes).into_owned();
    }
    body.replace("=\r\n", "").replace("=3D", "=")
}

on_both_backends! {
    async fn a_user_owns_their_own_account_and_makes_teams(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let user = app.signup().await;
        let listed = app.ok(ACCOUNTS, json!({}), Some(&user.token)).await;
        assert_eq!(listed["accounts"].as_array().unwrap().len(), 1);
        assert_eq!(listed["accounts"][0]["name"], user.email.as_str());
        assert_eq!(listed["accounts"][0]["role"], "OWNER");
        let own_id = listed["accounts"][0]["id"].clone();

        let zeta = team(&app, &user, "  Zeta  ").await;
        let alpha = team(&app, &user, "Alpha").await;
        let listed = app.ok(ACCOUNTS, json!({}), Some(&user.token)).await;
        let names: Vec<&str> = listed["accounts"].as_array().unwrap().iter().map(|a| a["name"].as_str().unwrap()).collect();
        // Own first, then by name; names are trimmed.
        assert_eq!(names, [user.email.as_str(), "Alpha", "Zeta"]);
        assert_eq!(listed["accounts"][0]["id"], own_id);
        // A team has its own billing account on the default plan, and no keys.
        assert_eq!(listed["accounts"][1]["billingAccount"]["monthlyCredits"], 1000);
        let keys = app.ok(TEAM_KEYS, json!({ "a": alpha }), Some(&user.token)).await;
        assert_eq!(keys["keys"], json!([]));
        // The v1 operations still act on the own account.
        let own_keys = app.ok(TEAM_KEYS, json!({}), Some(&user.token)).await;
        assert_eq!(own_keys["keys"][0]["accountId"], own_id);

        for bad in ["", "   ", &"n".repeat(65), "a\u{202E}b"] {
            let refused = app.graphql(CREATE_ACCOUNT, json!({ "name": bad }), Some(&user.token)).await;
            assert_error(&refused, "BAD_USER_INPUT");
        }
        // At most 20 teams per user.
        for i in 2..20 {
            team(&app, &user, &format!("team {i}")).await;
        }
        let refused = app.graphql(CREATE_ACCOUNT, json!({ "name": "one too many" }), Some(&user.token)).await;
        assert_error(&refused, "BAD_USER_INPUT");
        assert!(refused["errors"][0]["message"].as_str().unwrap().contains("20"));
        let renamed = app
            .ok("mutation($a: UUID!) { renameAccount(accountId: $a, name: \"Zed\") { name } }", json!({ "a": zeta }), Some(&user.token))
            .await;
        assert_eq!(renamed["renameAccount"]["name"], "Zed");
    }

    async fn a_teams_keys_charge_the_team_and_every_member_manages_them(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let owner = app.signup().await;
        let colleague = app.signup().await;
        let acme = team(&app, &owner, "Acme").await;
        join(&app, &owner, &acme, &colleague, "MEMBER").await;

        let made = app.ok(TEAM_CREATE_KEY, json!({ "a": acme, "name": "prod" }), Some(&colleague.token)).await;
        let key = &made["createKey"];
        assert_eq!(key["apiKey"]["accountId"], acme.as_str());
        assert_eq!(key["apiKey"]["createdBy"]["email"], colleague.email.as_str());
        let secret = key["secret"].as_str().unwrap();
        assert_eq!(app.charge(secret, 7).await["code"], "VALID");
        let check = app
            .ok("mutation($k: String!) { verifyKey(input: { key: $k, credits: 0 }) { accountId } }", json!({ "k": secret }), None)
            .await;
        assert_eq!(check["verifyKey"]["accountId"], acme.as_str());

        // The owner sees the colleague's key and its usage on the team.
        let keys = app.ok(TEAM_KEYS, json!({ "a": acme }), Some(&owner.token)).await;
        assert_eq!(keys["keys"][0]["createdBy"]["email"], colleague.email.as_str());
        let usage = app
            .ok("query($a: UUID) { keysUsage(accountId: $a) { totalCredits } own: keysUsage { totalCredits } }", json!({ "a": acme }), Some(&owner.token))
            .await;
        assert_eq!((usage["keysUsage"]["totalCredits"].as_i64(), usage["own"]["totalCredits"].as_i64()), (Some(7), Some(0)));
        // Any member renames and revokes the team's keys.
        let key_id = key["apiKey"]["id"].as_str().unwrap();
        app.ok("mutation($id: UUID!) { renameKey(id: $id, name: \"prod-2\") { name } }", json!({ "id": key_id }), Some(&owner.token)).await;
        app.ok("mutation($id: UUID!) { revokeKey(id: $id) { status } }", json!({ "id": key_id }), Some(&owner.token)).await;
        assert_eq!(app.verify(json!({ "key": secret, "credits": 1 })).await["code"], "REVOKED");
    }

    async fn another_accounts_ids_answer_like_missing_ones(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let owner = app.signup().await;
        let stranger = app.signup().await;
        let acme = team(&app, &owner, "Acme").await;
        let made = app.ok(TEAM_CREATE_KEY, json!({ "a": acme, "name": "k" }), Some(&owner.token)).await;
        let key_id = made["createKey"]["apiKey"]["id"].as_str().unwrap().to_owned();
        let invited = app.ok(INVITE, json!({ "input": { "accountId": acme, "email": unique_email() } }), Some(&owner.token)).await;
        let invitation_id = invited["createInvitation"]["invitation"]["id"].as_str().unwrap().to_owned();
        let missing = "00000000-0000-4000-8000-000000000000";

        for id in [acme.as_str(), missing] {
            let asks = [
                (TEAM_KEYS, json!({ "a": id })),
                ("query($a: UUID) { keysUsage(accountId: $a) { totalCredits } }", json!({ "a": id })),
                ("query($a: UUID) { usageSeries(accountId: $a) { from } }", json!({ "a": id })),
                ("query($a: UUID) { account(id: $a) { name } }", json!({ "a": id })),
                (TEAM_CREATE_KEY, json!({ "a": id, "name": "x" })),
                ("mutation($a: UUID!) { renameAccount(accountId: $a, name: \"x\") { name } }", json!({ "a": id })),
                (INVITE, json!({ "input": { "accountId": id, "email": unique_email() } })),
                (REMOVE, json!({ "a": id, "u": owner.id })),
                (SET_ROLE, json!({ "a": id, "u": owner.id, "r": "MEMBER" })),
            ];
            for (query, variables) in asks {
                let answer = app.graphql(query, variables, Some(&stranger.token)).await;
                assert_error(&answer, "NOT_FOUND");
                assert_eq!(answer["errors"][0]["message"], "not found", "{query}");
            }
        }
        for id in [key_id.as_str(), missing] {
            for query in [
                "mutation($id: UUID!) { revokeKey(id: $id) { id } }",
                "mutation($id: UUID!) { renameKey(id: $id, name: \"x\") { id } }",
                "mutation($id: UUID!) { rotateKey(input: { id: $id }) { secret } }",
            ] {
                assert_error(&app.graphql(query, json!({ "id": id }), Some(&stranger.token)).await, "NOT_FOUND");
            }
        }
        for id in [invitation_id.as_str(), missing] {
            let answer = app.graphql("mutation($id: UUID!) { revokeInvitation(id: $id) { id } }", json!({ "id": id }), Some(&stranger.token)).await;
            assert_error(&answer, "NOT_FOUND");
        }
        // Nothing the stranger tried changed the team.
        let keys = app.ok(TEAM_KEYS, json!({ "a": acme }), Some(&owner.token)).await;
        assert_eq!(keys["keys"][0]["name"], "k");
    }

    async fn a_member_cannot_reach_owner_operations_by_any_route(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let owner = app.signup().await;
        let member = app.signup().await;
        let acme = team(&app, &owner, "Acme").await;
        join(&app, &owner, &acme, &member, "MEMBER").await;
        let documents = [
            ("mutation($a: UUID!) { renameAccount(accountId: $a, name: \"mine\") { name } }", json!({ "a": acme })),
            ("mutation($a: UUID!) { x: renameAccount(accountId: $a, name: \"mine\") { name } y: renameAccount(accountId: $a, name: \"mine\") { name } }", json!({ "a": acme })),
            (INVITE, json!({ "input": { "accountId": acme, "email": unique_email() } })),
            (SET_ROLE, json!({ "a": acme, "u": member.id, "r": "OWNER" })),
            (REMOVE, json!({ "a": acme, "u": owner.id })),
            ("query($a: UUID) { account(id: $a) { ...Owned } } fragment Owned on Account { invitations { email } }", json!({ "a": acme })),
        ];
        for (query, variables) in documents {
            let answer = app.graphql(query, variables, Some(&member.token)).await;
            let codes: Vec<&str> = answer["errors"].as_array().unwrap().iter().map(|e| e["extensions"]["code"].as_str().unwrap()).collect();
            assert!(!codes.is_empty() && codes.iter().all(|c| *c == "FORBIDDEN"), "{query}: {answer}");
        }
        let members = app.ok(MEMBERS, json!({ "a": acme }), Some(&owner.token)).await;
        let roles: Vec<&str> = members["account"]["members"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(roles, ["OWNER", "MEMBER"]);
        let name = app.ok("query($a: UUID) { account(id: $a) { name } }", json!({ "a": acme }), Some(&owner.token)).await;
        assert_eq!(name["account"]["name"], "Acme");
    }

    async fn invitations_are_shown_once_emailed_bound_to_the_email_and_redeemed_once(backend: Backend) {
        let sink = SmtpSink::start().await;
        let app = TestApp::spawn_with(backend, |config| {
            config.smtp_url = Some(sink.url());
            config.email_from = Some("keymeter <keys@example.com>".to_owned());
        })
        .await;
        let owner = app.signup().await;
        let invitee = app.signup().await;
        let other = app.signup().await;
        let acme = team(&app, &owner, "Acme").await;
        let invited = app
            .ok(INVITE, json!({ "input": { "accountId": acme, "email": format!("  {}  ", invitee.email.to_uppercase()), "role": "OWNER" } }), Some(&owner.token))
            .await;
        let created = &invited["createInvitation"];
        let url = created["acceptUrl"].as_str().unwrap();
        assert!(url.starts_with(&format!("{}/invitations/accept#", app.url("").trim_end_matches('/'))), "{url}");
        assert_eq!(created["invitation"]["email"], invitee.email.as_str());
        assert_eq!(created["invitation"]["invitedBy"]["email"], owner.email.as_str());
        let token = token_of(url);
        // Stored only as a hash.
        let stored = app.rows("SELECT * FROM invitations").await;
        assert!(!format!("{stored:?}").contains(&token));

        // Emailed to the invitee, with the link, through the outbox.
        eventually(std::time::Duration::from_secs(20), || async { !sink.messages().is_empty() }).await;
        let mail = &sink.messages()[0];
        assert_eq!(mail.to, std::slice::from_ref(&invitee.email));
        assert!(readable(&mail.data).contains(url), "the email carries the link: {}", mail.data);
        // The worker deletes the row once the sink has taken the message.
        eventually(std::time::Duration::from_secs(20), || async {
            app.query_i64("SELECT COUNT(*) FROM email_outbox").await == [0]
        })
        .await;

        // Another user cannot use it, and trying redeems nothing.
        assert_error(&app.graphql(ACCEPT, json!({ "token": token }), Some(&other.token)).await, "FORBIDDEN");
        // Ten racing accepts by the invitee make one member.
        let answers = futures_util::future::join_all((0..10).map(|_| app.graphql(ACCEPT, json!({ "token": token }), Some(&invitee.token)))).await;
        let joined = answers.iter().filter(|a| a.get("errors").is_none()).count();
        assert_eq!(joined, 1, "{answers:?}");
        for answer in answers.iter().filter(|a| a.get("errors").is_some()) {
            assert_error(answer, "BAD_USER_INPUT");
        }
        let members = app.ok(MEMBERS, json!({ "a": acme }), Some(&invitee.token)).await;
        assert_eq!(members["account"]["members"][1]["role"], "OWNER");
        // Pending invitations no longer list it; an unknown token is refused.
        let pending = app.ok("query($a: UUID) { account(id: $a) { invitations { id } } }", json!({ "a": acme }), Some(&owner.token)).await;
        assert_eq!(pending["account"]["invitations"], json!([]));
        assert_error(&app.graphql(ACCEPT, json!({ "token": "kmi_nope" }), Some(&other.token)).await, "BAD_USER_INPUT");
        // A member's email cannot be invited again.
        let again = app.graphql(INVITE, json!({ "input": { "accountId": acme, "email": invitee.email } }), Some(&owner.token)).await;
        assert_error(&again, "BAD_USER_INPUT");
    }

    async fn a_new_invitation_replaces_the_pending_one_and_expired_or_revoked_ones_cannot_be_used(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let owner = app.signup().await;
        let invitee = app.signup().await;
        let invite = json!({ "input": { "email": invitee.email } });
        let first = app.ok(INVITE, invite.clone(), Some(&owner.token)).await;
        let second = app.ok(INVITE, invite.clone(), Some(&owner.token)).await;
        let pending = app.ok("{ account { invitations { id } } }", json!({}), Some(&owner.token)).await;
        assert_eq!(pending["account"]["invitations"].as_array().unwrap().len(), 1);
        assert_eq!(pending["account"]["invitations"][0]["id"], second["createInvitation"]["invitation"]["id"]);
        let replaced = token_of(first["createInvitation"]["acceptUrl"].as_str().unwrap());
        assert_error(&app.graphql(ACCEPT, json!({ "token": replaced }), Some(&invitee.token)).await, "BAD_USER_INPUT");
        // Revoked: cannot be accepted.
        let id = second["createInvitation"]["invitation"]["id"].clone();
        app.ok("mutation($id: UUID!) { revokeInvitation(id: $id) { id } }", json!({ "id": id }), Some(&owner.token)).await;
        let revoked = token_of(second["createInvitation"]["acceptUrl"].as_str().unwrap());
        assert_error(&app.graphql(ACCEPT, json!({ "token": revoked }), Some(&invitee.token)).await, "BAD_USER_INPUT");
        // Expired after 7 days.
        let third = app.ok(INVITE, invite, Some(&owner.token)).await;
        app.clock.advance(chrono::Duration::days(7) + chrono::Duration::seconds(1));
        let expired = token_of(third["createInvitation"]["acceptUrl"].as_str().unwrap());
        assert_error(&app.graphql(ACCEPT, json!({ "token": expired }), Some(&invitee.token)).await, "BAD_USER_INPUT");
    }

    async fn a_removed_member_loses_access_at_once_and_their_keys_keep_verifying(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let owner = app.signup().await;
        let member = app.signup().await;
        let acme = team(&app, &owner, "Acme").await;
        join(&app, &owner, &acme, &member, "MEMBER").await;
        let made = app.ok(TEAM_CREATE_KEY, json!({ "a": acme, "name": "theirs" }), Some(&member.token)).await;
        let secret = made["createKey"]["secret"].as_str().unwrap().to_owned();
        // A second process serving the same database sees the removal too.
        let other = app.spawn_second_server().await;
        app.ok(REMOVE, json!({ "a": acme, "u": member.id }), Some(&owner.token)).await;
        for addr in [app.addr, other] {
            let answer = app.graphql_at(addr, TEAM_KEYS, json!({ "a": acme }), Some(&member.token)).await;
            assert_error(&answer, "NOT_FOUND");
        }
        // Still signed in, on their own account.
        app.ok("{ me { email } }", json!({}), Some(&member.token)).await;
        assert_eq!(app.charge(&secret, 1).await["code"], "VALID");
        let keys = app.ok(TEAM_KEYS, json!({ "a": acme }), Some(&owner.token)).await;
        assert_eq!(keys["keys"][0]["createdBy"]["email"], member.email.as_str());
        // Nobody leaves their own account; a member may leave a team.
        let own = app.ok("{ account { id } }", json!({}), Some(&owner.token)).await;
        let refused = app.graphql(REMOVE, json!({ "a": own["account"]["id"], "u": owner.id }), Some(&owner.token)).await;
        assert_error(&refused, "BAD_USER_INPUT");
        join(&app, &owner, &acme, &member, "MEMBER").await;
        app.ok(REMOVE, json!({ "a": acme, "u": member.id }), Some(&member.token)).await;
        assert_error(&app.graphql(TEAM_KEYS, json!({ "a": acme }), Some(&member.token)).await, "NOT_FOUND");
    }

    async fn two_owners_removing_each_other_at_once_leave_one_owner(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        for _ in 0..3 {
            let first = app.signup().await;
            let second = app.signup().await;
            let acme = team(&app, &first, "Acme").await;
            join(&app, &first, &acme, &second, "OWNER").await;
            let (a, b) = tokio::join!(
                app.graphql(REMOVE, json!({ "a": acme, "u": second.id }), Some(&first.token)),
                app.graphql(REMOVE, json!({ "a": acme, "u": first.id }), Some(&second.token)),
            );
            let removed = [&a, &b].iter().filter(|answer| answer.get("errors").is_none()).count();
            assert_eq!(removed, 1, "{a} {b}");
            let members = app.ok(MEMBERS, json!({ "a": acme }), Some(if a.get("errors").is_none() { &first.token } else { &second.token })).await;
            let owners = members["account"]["members"].as_array().unwrap().iter().filter(|m| m["role"] == "OWNER").count();
            assert_eq!(owners, 1, "{a} {b}");
        }
        // Demoting each other at once: one demotion wins at most.
        let first = app.signup().await;
        let second = app.signup().await;
        let acme = team(&app, &first, "Demotions").await;
        join(&app, &first, &acme, &second, "OWNER").await;
        let (a, b) = tokio::join!(
            app.graphql(SET_ROLE, json!({ "a": acme, "u": second.id, "r": "MEMBER" }), Some(&first.token)),
            app.graphql(SET_ROLE, json!({ "a": acme, "u": first.id, "r": "MEMBER" }), Some(&second.token)),
        );
        let members = app.ok(MEMBERS, json!({ "a": acme }), Some(&first.token)).await;
        let owners = members["account"]["members"].as_array().unwrap().iter().filter(|m| m["role"] == "OWNER").count();
        assert_eq!(owners, 1, "{a} {b}");
        // The last owner cannot demote themself.
        let last: Value = members["account"]["members"].as_array().unwrap().iter().find(|m| m["role"] == "OWNER").unwrap().clone();
        let token = if last["user"]["id"] == first.id.as_str() { &first.token } else { &second.token };
        let refused = app.graphql(SET_ROLE, json!({ "a": acme, "u": last["user"]["id"], "r": "MEMBER" }), Some(token)).await;
        assert_error(&refused, "BAD_USER_INPUT");
    }
}
