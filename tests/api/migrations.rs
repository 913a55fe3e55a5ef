use chrono::Duration;
use migration::{Migrator, MigratorTrait, SchemaManager};
use serde_json::json;

use crate::helpers::*;
use crate::signup::{break_provisioning, repair_provisioning};

const ENSURE_DEFAULT_KEY: &str = "mutation { ensureDefaultKey { secret } }";

on_both_databases! {
    async fn migrations_roll_back_and_apply_again(app: TestApp) {
        // The server has applied them all; undo every one, then redo.
        Migrator::down(app.db.pool(), None).await.expect("migrating down");
        let tables = Migrator::get_applied_migrations(&app.db).await.expect("listing");
        assert!(tables.is_empty());
        Migrator::up(app.db.pool(), None).await.expect("migrating up again");
        assert!(Migrator::get_pending_migrations(&app.db).await.unwrap().is_empty());
        app.signup().await;
    }

    async fn the_database_refuses_unknown_key_types(app: TestApp) {
        let user = app.signup().await;
        let insert = format!(
            "UPDATE api_keys SET key_type = 'test' WHERE created_by IN (SELECT id FROM users WHERE email = '{}')",
            user.email
        );
        use sea_orm::ConnectionTrait;
        assert!(app.db.execute_unprepared(&insert).await.is_err());
    }

    async fn undoing_the_address_migration_keeps_the_counted_signups(app: TestApp) {
        app.signup().await;
        let migration = Migrator::migrations()
            .into_iter()
            .find(|m| m.name() == "m20261126_000008_count_attempts_by_address")
            .expect("the migration adding client addresses to auth attempts");
        let manager = SchemaManager::new(app.db.pool());
        migration.down(&manager).await.expect("undoing it");
        let signups = "SELECT COUNT(*) FROM auth_attempts WHERE kind = 'signup'";
        assert_eq!(app.query_i64(signups).await, [1]);
        migration.up(&manager).await.expect("applying it again");
        // A signup's subject is its client address, which the limit counts by.
        let by_address = "SELECT COUNT(*) FROM auth_attempts WHERE kind = 'signup' AND address = subject";
        assert_eq!(app.query_i64(by_address).await, [1]);
        app.signup().await;
    }

    async fn the_sign_in_limit_migration_keeps_every_counted_attempt(app: TestApp) {
        // Counted attempts of both earlier kinds, as an older release made them.
        let user = app.signup().await;
        let wrong = json!({ "email": user.email, "password": "not the password" });
        assert_error(&app.graphql(LOGIN, wrong, None).await, "INVALID_CREDENTIALS");
        let migration = Migrator::migrations()
            .into_iter()
            .find(|m| m.name() == "m20261204_000013_count_sign_in_starts")
            .expect("the migration admitting sign-in starts");
        let manager = SchemaManager::new(app.db.pool());
        let attempts = "SELECT id FROM auth_attempts ORDER BY id";
        let before = app.query_i64(attempts).await;
        assert_eq!(before.len(), 2, "one signup, one failed login");
        migration.down(&manager).await.expect("undoing it");
        let sign_in = "INSERT INTO auth_attempts (kind, subject, address, created_at) \
                       VALUES ('sign_in', '127.0.0.1', '127.0.0.1', '2026-01-01 00:00:00+00:00')";
        use sea_orm::ConnectionTrait;
        assert!(app.db.execute_unprepared(sign_in).await.is_err(), "refused before");
        migration.up(&manager).await.expect("applying it again");
        assert_eq!(app.query_i64(attempts).await, before, "the same rows, the same ids");
        app.execute(sign_in).await;
        // New attempts still number after the old ones: forgiving a login relies on it.
        let ids = app.query_i64(attempts).await;
        assert!(ids[2] > ids[1], "{ids:?}");
    }

    async fn undoing_the_lifecycle_migration_keeps_keys_and_who_had_a_default_key(app: TestApp) {
        let user = app.signup().await;
        let rotation = "mutation($id: UUID!) { rotateKey(input: { id: $id, gracePeriodSeconds: 60 }) { secret } }";
        app.ok(rotation, json!({ "id": user.default_key_id() }), Some(&user.token)).await;
        break_provisioning(&app).await;
        let orphan = app.graphql(SIGNUP, json!({ "email": unique_email(), "password": PASSWORD }), None).await;
        let orphan_token = orphan["data"]["signup"]["token"].as_str().unwrap().to_owned();
        repair_provisioning(&app).await;

        // Undone as an operator would: the migrations after it first.
        let migrations = Migrator::migrations();
        let position = migrations
            .iter()
            .position(|m| m.name() == "m20261130_000010_key_lifecycle")
            .expect("the key lifecycle migration");
        let later = u32::try_from(migrations.len() - position - 1).unwrap();
        Migrator::down(app.db.pool(), Some(later)).await.expect("undoing the later ones");
        let manager = SchemaManager::new(app.db.pool());
        migrations[position].down(&manager).await.expect("undoing it");
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_keys").await, [2]);
        migrations[position].up(&manager).await.expect("applying it again");
        Migrator::up(app.db.pool(), None).await.expect("applying the later ones again");

        // Signup's default key is recognised again; the orphan never had one.
        let had = app.ok(ENSURE_DEFAULT_KEY, json!({}), Some(&user.token)).await;
        assert!(had["ensureDefaultKey"].is_null());
        let made = app.ok(ENSURE_DEFAULT_KEY, json!({}), Some(&orphan_token)).await;
        assert!(made["ensureDefaultKey"]["secret"].is_string());
        assert_eq!(app.query_i64("SELECT COUNT(*) FROM api_keys").await, [3]);
    }

    async fn the_daily_rollups_migration_folds_in_the_hours_already_charged(app: TestApp) {
        let user = app.signup().await;
        let day = chrono::Utc::now().date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
        // Two hours of one day, and one of the next.
        for (at, credits) in [(day + Duration::hours(30), 2), (day + Duration::hours(31), 3), (day + Duration::hours(50), 4)] {
            app.clock.set(at);
            assert_eq!(app.charge(user.default_secret(), credits).await["code"], "VALID");
        }
        let daily = "SELECT credits FROM api_key_daily_usage ORDER BY day_start";
        assert_eq!(app.query_i64(daily).await, [5, 4]);
        let migration = Migrator::migrations()
            .into_iter()
            .find(|m| m.name() == "m20261130_000012_daily_key_usage")
            .expect("the daily rollups migration");
        let manager = SchemaManager::new(app.db.pool());
        migration.down(&manager).await.expect("undoing it");
        migration.up(&manager).await.expect("applying it again");
        assert_eq!(app.query_i64(daily).await, [5, 4]);
        let requests = "SELECT requests FROM api_key_daily_usage ORDER BY day_start";
        assert_eq!(app.query_i64(requests).await, [2, 1]);
        // And charges go on adding to the folded rows.
        assert_eq!(app.charge(user.default_secret(), 1).await["code"], "VALID");
        assert_eq!(app.query_i64(daily).await, [5, 5]);
    }
}
