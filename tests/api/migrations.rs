use migration::{Migrator, MigratorTrait, SchemaManager};

on_both_databases! {
    async fn migrations_roll_back_and_apply_again(app: TestApp) {
        // The server has applied them all; undo every one, then redo.
        Migrator::down(&app.db, None).await.expect("migrating down");
        let tables = Migrator::get_applied_migrations(&app.db).await.expect("listing");
        assert!(tables.is_empty());
        Migrator::up(&app.db, None).await.expect("migrating up again");
        assert!(Migrator::get_pending_migrations(&app.db).await.unwrap().is_empty());
        app.signup().await;
    }

    async fn the_database_refuses_unknown_key_types(app: TestApp) {
        let user = app.signup().await;
        let insert = format!(
            "UPDATE api_keys SET key_type = 'test' WHERE user_id IN (SELECT id FROM users WHERE email = '{}')",
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
        let manager = SchemaManager::new(&app.db);
        migration.down(&manager).await.expect("undoing it");
        let signups = "SELECT COUNT(*) FROM auth_attempts WHERE kind = 'signup'";
        assert_eq!(app.query_i64(signups).await, [1]);
        migration.up(&manager).await.expect("applying it again");
        // A signup's subject is its client address, which the limit counts by.
        let by_address = "SELECT COUNT(*) FROM auth_attempts WHERE kind = 'signup' AND address = subject";
        assert_eq!(app.query_i64(by_address).await, [1]);
        app.signup().await;
    }
}
