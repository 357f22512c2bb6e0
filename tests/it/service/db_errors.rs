//! A driver error is read by the codes of the engine that raised it, on real errors from
//! both engines: PostgreSQL's SQLSTATE 22021 (a NUL byte in text) is a number whose low
//! byte is 5, SQLite's "busy", and must not be read as one.

use flowkey::db::errors::{classify, sqlite_primary_code, DbFailure};
use flowkey::db::Db;

use crate::both_engines;
use crate::support::harness::TestDb;

async fn errors_are_read_by_their_own_engine(test_db: TestDb) {
    let db = test_db.connect().await;
    match &db {
        Db::Postgres(pool) => {
            let err = sqlx::query("SELECT convert_from('\\x00'::bytea, 'UTF8')")
                .execute(pool)
                .await
                .expect_err("a NUL byte is not valid text");
            assert_eq!(
                err.as_database_error().and_then(|db| db.code()).as_deref(),
                Some("22021")
            );
            assert_eq!(sqlite_primary_code(&err), None, "{err}");
            assert_eq!(classify(&err), DbFailure::ClientData);
        }
        Db::Sqlite(pool) => {
            sqlx::query("CREATE TABLE probe (id INTEGER PRIMARY KEY)")
                .execute(pool)
                .await
                .unwrap();
            sqlx::query("INSERT INTO probe VALUES (1)")
                .execute(pool)
                .await
                .unwrap();
            let err = sqlx::query("INSERT INTO probe VALUES (1)")
                .execute(pool)
                .await
                .expect_err("a duplicate key");
            // SQLITE_CONSTRAINT_PRIMARYKEY (1555): primary code 19.
            assert_eq!(sqlite_primary_code(&err), Some(19), "{err}");
            assert_eq!(classify(&err), DbFailure::ClientData);
        }
    }
    assert_eq!(
        sqlite_primary_code(&sqlx::Error::PoolTimedOut),
        None,
        "no database error, no code"
    );
}
both_engines!(
    a_database_error_is_read_by_the_codes_of_its_own_engine,
    errors_are_read_by_their_own_engine
);
