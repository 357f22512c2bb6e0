//! The `service_state` revision through the real runner: it creates the service's tables,
//! and its way down keeps them (they are flowkey's own).

// Test bodies are plain async fns run by `both_engines!`, so clippy does not see them as
// tests: allow the unwraps it allows in tests.

use flowkey::flags::{self, FlagScope, FlowIdPrimary};
use flowkey::migrate::{Migrator, RunOptions};

use crate::both_engines;
use crate::support::harness::TestDb;
use crate::support::service_support::count_rows;

async fn service_state_round_trip(test_db: TestDb) {
    let db = test_db.connect().await;
    let migrator = Migrator::new(db.clone(), RunOptions::default());
    // `set_flag` also records the change in `flowkey_flag_changes` (live_mapping's table).
    migrator.upgrade("live_mapping").await.expect("upgrade");
    assert_eq!(migrator.current().await.unwrap(), Some("live_mapping"));
    flags::set_flag(&db, FlagScope::Global, FlowIdPrimary::Shadow, "test")
        .await
        .expect("flags table exists");
    migrator.downgrade("legacy").await.expect("downgrade");
    assert_eq!(
        count_rows(&db, "flowkey_flags").await,
        1,
        "flags survive the downgrade"
    );
    assert_eq!(count_rows(&db, "flowkey_legacy_traffic").await, 0);
    migrator
        .upgrade("live_mapping")
        .await
        .expect("upgrade again");
    assert_eq!(
        count_rows(&db, "flowkey_flags").await,
        1,
        "IF NOT EXISTS keeps the rows"
    );
}
both_engines!(
    service_state_creates_its_tables_and_its_downgrade_keeps_them,
    service_state_round_trip
);
