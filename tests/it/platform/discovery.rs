//! Session ids outside what flowkey migrates are listed, not migrated: columns of the
//! platform's other tables and views, and JSON keys inside the migrated tables.

use flowkey::migrate::flow::discovery::discover_outside_migrated;

use crate::both_engines;
use crate::support::harness::TestDb;
use crate::support::platform::{platform_db, Placement};

async fn session_ids_left_behind_are_listed(test_db: TestDb) {
    let test_db = platform_db(test_db.engine, Placement::Public).await;
    let db = test_db.connect().await;
    db.execute_plain(
        "CREATE TABLE platform_notes (id INTEGER PRIMARY KEY, body TEXT);\n\
         INSERT INTO platform_notes VALUES (1, 'see disc_session_40000000-0000-4000-8000-000000000001');\n\
         INSERT INTO platform_notes VALUES (2, 'nothing here');\n\
         CREATE TABLE platform_chats (id INTEGER PRIMARY KEY, chat_session_id TEXT);\n\
         INSERT INTO platform_chats VALUES (1, 'c-1'), (2, NULL), (3, 'c-3');",
    )
    .await
    .unwrap();
    let found = discover_outside_migrated(&db).await.unwrap();
    let text = found.to_string();
    eprintln!("{text}");
    let named = |table: &str, column: &str| {
        found
            .columns
            .iter()
            .find(|c| c.table == table && c.column == column)
            .unwrap_or_else(|| panic!("{table}.{column} not listed in {text}"))
    };
    assert_eq!(
        named("import_session_summary", "session_id").why,
        "named like a session key"
    );
    // A table's column named like a session key: its set values in the sample are counted.
    let chats = named("platform_chats", "chat_session_id");
    assert_eq!(
        (chats.why, chats.sampled_matches),
        ("named like a session key", 2)
    );
    let notes = named("platform_notes", "body");
    assert_eq!(
        (notes.why, notes.sampled_matches),
        ("holds disc_session_ ids", 1)
    );
    assert!(
        !found
            .columns
            .iter()
            .any(|c| c.table == "data_imports" || c.table == "alembic_version"),
        "the migrated tables' own columns are flowkey's business: {text}"
    );
    assert_eq!(found.json_keys.len(), 3);
    assert!(text.contains("not migrated"), "{text}");
    db.close().await;
}
both_engines!(
    session_ids_outside_the_migrated_tables_are_listed_as_not_migrated,
    session_ids_left_behind_are_listed
);
