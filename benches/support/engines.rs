//! What the whole-service benches share: run a measurement on a fresh SQLite file, then on a
//! fresh PostgreSQL database (created on the server of `FLOWKEY_TEST_PG_URL`, dropped after;
//! skipped with a line when no server answers). Included with `#[path]` by each bench.

use std::future::Future;

use flowkey::db::{Db, Engine};

/// Runs `run(engine, url)` on both engines, on a runtime of its own.
pub fn on_both_engines<F, Fut>(database_prefix: &str, run: F)
where
    F: Fn(Engine, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = tempfile::tempdir().expect("temp dir");
        let sqlite_url = format!("sqlite://{}", dir.path().join("bench.db").display());
        run(Engine::Sqlite, sqlite_url).await;
        let admin = std::env::var("FLOWKEY_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let name = format!("{database_prefix}_{}", std::process::id());
        match Db::connect(&admin).await {
            Ok(admin_db) => {
                let _ = admin_db
                    .execute_plain(&format!("DROP DATABASE IF EXISTS {name}"))
                    .await;
                admin_db
                    .execute_plain(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create bench database");
                let mut url = url::Url::parse(&admin).expect("url");
                url.set_path(&format!("/{name}"));
                run(Engine::Postgres, url.to_string()).await;
                let _ = admin_db
                    .execute_plain(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
            Err(err) => eprintln!("postgres: skipped ({err})"),
        }
    });
}
