use migration::{Migrator, MigratorTrait};

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
}
