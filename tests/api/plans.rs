//! Plans for operators: `keymeter accounts show|set-plan` through the real
//! binary, on the database running servers use.

use std::process::{Command, Output};

use serde_json::json;

use crate::helpers::*;
use crate::server_process::ServerProcess;

/// Runs the keymeter binary with `args` on `database_url`.
fn keymeter(database_url: &str, args: &[&str]) -> Output {
    tokio::task::block_in_place(|| {
        Command::new(env!("CARGO_BIN_EXE_keymeter"))
            .args(args)
            .env("DATABASE_URL", database_url)
            .output()
            .expect("running the keymeter binary")
    })
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The value printed on `label`'s line of `accounts show`.
fn field<'a>(printed: &'a str, label: &str) -> &'a str {
    printed
        .lines()
        .find_map(|line| line.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{printed}"))
        .trim()
}

on_both_backends! {
    async fn a_plan_set_from_the_command_line_prices_the_next_charge_in_every_process(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let url = app.config.database_url.clone();
        let server = tokio::task::spawn_blocking({
            let url = url.clone();
            move || ServerProcess::start(&url, &[])
        })
        .await
        .unwrap();
        let user = app.signup().await;
        let secret = user.default_secret();
        // Both processes have charged the key, so each may price the next
        // call from what it read then: the database's plan must still win.
        assert_eq!(app.charge(secret, 450).await["remainingCredits"], 550);
        let charged = server.verify(&app.http, json!({ "key": secret, "credits": 450 })).await;
        assert_eq!(charged["remainingCredits"], 100);

        let set = keymeter(&url, &["accounts", "set-plan", &user.email, "--plan", "pro", "--monthly-credits", "5000"]);
        assert!(set.status.success(), "{}", stderr(&set));
        let printed = stdout(&set);
        assert_eq!(field(&printed, "plan"), "pro");
        assert_eq!(field(&printed, "monthly credits"), "5000");
        assert_eq!(field(&printed, "credits used"), "900");
        assert_eq!(field(&printed, "credits left"), "4100");
        assert_eq!(app.keys_usage(&user).await["remainingCredits"], 4100);
        // The operator's change is in the account's audit log, as theirs.
        let log = app
            .ok("{ account { id auditLog(actions: [\"plan.changed\"]) { events { actor { type user { id } } targetType targetId targetName ip } } } }", json!({}), Some(&user.token))
            .await;
        let events = log["account"]["auditLog"]["events"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{log}");
        assert_eq!(events[0]["actor"], json!({ "type": "OPERATOR", "user": null }));
        assert_eq!((&events[0]["targetType"], &events[0]["targetId"]), (&json!("ACCOUNT"), &log["account"]["id"]));
        assert_eq!(events[0]["targetName"], "pro (5000 credits)");
        assert!(events[0]["ip"].is_null());

        let next = app.charge(secret, 1).await;
        assert_eq!((next["code"].as_str(), next["remainingCredits"].as_i64()), (Some("VALID"), Some(4099)));
        let other = server.verify(&app.http, json!({ "key": secret, "credits": 4000 })).await;
        assert_eq!((other["code"].as_str(), other["remainingCredits"].as_i64()), (Some("VALID"), Some(99)));
        let over = server.verify(&app.http, json!({ "key": secret, "credits": 100 })).await;
        assert_eq!(over["code"], "USAGE_EXCEEDED");

        let shown = keymeter(&url, &["accounts", "show", &user.email.to_uppercase()]);
        assert!(shown.status.success(), "{}", stderr(&shown));
        let printed = stdout(&shown);
        let account = &user.signup["user"]["billingAccount"];
        assert_eq!(field(&printed, "email"), user.email);
        assert_eq!(field(&printed, "plan"), "pro");
        assert_eq!(field(&printed, "credits used"), "4901");
        assert_eq!(field(&printed, "cycle start"), account["billingCycleStart"].as_str().unwrap());
        assert_eq!(field(&printed, "cycle end"), account["billingCycleEnd"].as_str().unwrap());
        let me = app.ok(ME, json!({}), Some(&user.token)).await;
        assert_eq!(me["me"]["billingAccount"]["plan"], "pro");
        assert_eq!(me["me"]["billingAccount"]["monthlyCredits"], 5000);
    }

    async fn bad_operator_input_is_one_line_and_changes_nothing(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let url = app.config.database_url.clone();
        let user = app.signup().await;
        let email = user.email.as_str();
        let set_plan = |plan: &'static str, credits: &'static str| {
            vec!["accounts", "set-plan", email, "--plan", plan, "--monthly-credits", credits]
        };
        let cases = [
            (vec!["accounts", "show", "nobody@example.com"], "no user has the email"),
            (vec!["accounts", "show", "not an email"], "email"),
            (vec!["accounts", "set-plan", "nobody@example.com", "--plan", "pro", "--monthly-credits", "10"], "no user has the email"),
            (set_plan("pro", "-1"), "--monthly-credits"),
            (set_plan("pro", "2147483648"), "--monthly-credits"),
            (set_plan("pro", "lots"), "--monthly-credits"),
            (set_plan("", "10"), "--plan"),
            (set_plan("   ", "10"), "--plan"),
            (set_plan("a plan name far longer than 32 chars", "10"), "--plan"),
        ];
        for (args, reason) in cases {
            let output = keymeter(&url, &args);
            let said = stderr(&output);
            assert!(!output.status.success(), "{args:?} succeeded");
            assert_eq!(said.lines().count(), 1, "{args:?}: {said}");
            assert!(said.starts_with("keymeter: ") && said.contains(reason), "{args:?}: {said}");
            assert!(stdout(&output).is_empty(), "{args:?}");
        }
        let me = app.ok(ME, json!({}), Some(&user.token)).await;
        assert_eq!(me["me"]["billingAccount"]["plan"], "free");
        assert_eq!(me["me"]["billingAccount"]["monthlyCredits"], 1000);

        // The bounds themselves are allowed; 0 credits refuses every charge.
        for credits in ["2147483647", "0"] {
            let output = keymeter(&url, &set_plan("closed", credits));
            assert!(output.status.success(), "{}", stderr(&output));
        }
        assert_eq!(app.charge(user.default_secret(), 1).await["code"], "USAGE_EXCEEDED");
    }
}
