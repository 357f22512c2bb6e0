//! Readiness from the last stored verification plus a cheap delta (issue 12, item 4): the
//! link checks run once and are stored. Below the write ledger, readiness answers from them
//! until a migration runs, old code writes, a row is left without a `flow_id`, or the stored
//! result is too old; then it checks again and stores the new result. At the ledger's
//! revision, the delta checks again every row a write since could have changed the checks of
//! (`migrate::flow::verification_delta`), and the stored result stands while they pass. Each
//! case is tested alone.

use std::time::Duration;

use flowkey::flags::{readiness, Readiness};
use flowkey::migrate::flow::verification_delta::DELTA_ROWS_CAP;
use flowkey::migrate::flow::verification_record::{
    check_links_and_record, last_standing, verify_and_record, verify_and_record_online, Stored,
    StoredVerification,
};

use uuid::Uuid;

use crate::both_engines;
use crate::support::flow_fixtures::{Fx, Tenant};
use crate::support::flow_support::{downgrade_to, upgrade_to};
use crate::support::harness::TestDb;

/// The revision below the write ledger: the legacy-write signal, and no delta.
const SIGNAL: &str = "legacy_write_signal";

/// The next readiness answers from the stored verification (at the write ledger's revision,
/// with the delta over the rows the application wrote).
async fn from_storage(fx: &Fx) -> Readiness {
    let next = readiness(&fx.db).await.unwrap();
    assert!(
        ["stored", "delta"].contains(&next.checks.from.as_str()),
        "nothing changed, yet the checks ran again: {:?}",
        next.checks
    );
    assert!(next.checks.verified_at.is_some());
    next
}

/// Lets the database clock move on after a write: the legacy-write log counts a write at or
/// after a verification's start, and SQLite's clock ticks in milliseconds, so a write logged
/// in the millisecond the next check starts counts as after it (on purpose: the log cannot
/// order two events within one tick).
async fn clock_tick() {
    tokio::time::sleep(Duration::from_millis(5)).await;
}

fn stale_because(readiness: &Readiness, why: &str) {
    assert_eq!(readiness.checks.from, "checked", "{:?}", readiness.checks);
    let reason = readiness.checks.reason.as_deref().unwrap_or_default();
    assert!(reason.contains(why), "{reason:?} does not say {why:?}");
}

/// Below the write ledger (the legacy-write signal's revision), where no delta can be
/// computed: the stored result stands while nothing it could have missed happened.
async fn readiness_answers_from_the_stored_verification_until_something_changes(test_db: TestDb) {
    let db = test_db.connect().await;
    upgrade_to(&db, SIGNAL).await;
    let fx = Fx::new(db).await;
    let tenant = fx.tenant().await;
    let session = fx.session(tenant, 0).await;
    let flow = fx.flow(tenant, None, Some(session), None, 1).await;
    assert!(
        fx.mapping_of(session).await.is_some(),
        "the live mapping maps it"
    );

    let first = readiness(&fx.db).await.unwrap();
    stale_because(&first, "no verification stored yet");
    let stored = readiness(&fx.db).await.unwrap();
    assert_eq!(stored.checks.from, "stored", "{:?}", stored.checks);
    assert!(stored.is_ready(), "{:?}", stored.reasons());

    // Old code writes a row by session key: logged by the signal, the checks run again.
    let asset = fx.asset(tenant, Some(session)).await;
    assert_eq!(fx.flow_of("assets", asset).await, Some(flow));
    clock_tick().await;
    stale_because(&readiness(&fx.db).await.unwrap(), "legacy writes");
    assert!(from_storage(&fx).await.is_ready());

    // A row no rule links (no session, no flow): one more row without a flow_id.
    fx.llm(Some(tenant), None).await;
    stale_because(
        &readiness(&fx.db).await.unwrap(),
        "rows without a flow_id changed",
    );
    from_storage(&fx).await;

    // A downgrade and an upgrade back: the same revision, but a migration ran.
    downgrade_to(&fx.db, "-1").await;
    upgrade_to(&fx.db, SIGNAL).await;
    stale_because(&readiness(&fx.db).await.unwrap(), "a migration ran");
    from_storage(&fx).await;

    // `flowkey verify` stores its result too.
    fx.llm(Some(tenant), None).await;
    verify_and_record(&fx.db).await.unwrap();
    let after_verify = readiness(&fx.db).await.unwrap();
    assert_eq!(
        after_verify.checks.from, "stored",
        "{:?}",
        after_verify.checks
    );

    // A session without a mapping is counted live, whatever is stored.
    fx.sql("DELETE FROM session_flow_mapping").await;
    let unmapped = readiness(&fx.db).await.unwrap();
    assert_eq!(unmapped.sessions_unmapped, 1);
    assert!(!unmapped.is_ready());
}
both_engines!(
    readiness_answers_from_the_stored_verification_until_something_changes,
    readiness_answers_from_the_stored_verification_until_something_changes
);

/// A stored result that found problems is served as such: a stored verification never
/// turns a failing check into a passing one.
async fn a_stored_failure_stays_a_failure(test_db: TestDb) {
    let db = test_db.connect().await;
    upgrade_to(&db, "head").await;
    let fx = Fx::new(db).await;
    let tenant = fx.tenant().await;
    let other = fx.tenant().await;
    let session = fx.session(tenant, 0).await;
    fx.flow(tenant, None, Some(session), None, 1).await;
    let foreign = fx.flow(other, None, None, None, 2).await;
    let asset = fx.asset(tenant, Some(session)).await;
    // A link across tenants, written as foreign SQL would (flow_id only).
    fx.sql(&format!(
        "UPDATE assets SET flow_id = '{foreign}' WHERE id = '{asset}'"
    ))
    .await;
    clock_tick().await;
    let first = readiness(&fx.db).await.unwrap();
    assert!(!first.is_ready());
    let second = readiness(&fx.db).await.unwrap();
    assert_eq!(second.checks.from, "stored", "{:?}", second.checks);
    assert!(!second.is_ready(), "the stored failure was lost");
    assert_eq!(first.integrity_problems, second.integrity_problems);
    assert_eq!(first.backfill_pending, second.backfill_pending);
}
both_engines!(
    a_stored_failure_stays_a_failure,
    a_stored_failure_stays_a_failure
);

/// Readiness gates the links, so its full check runs the link checks alone: it never
/// recomputes the fingerprints or compares the write ledger (which prove legacy values, and
/// while the application writes cost several times the link checks). With the fingerprints
/// gone, `verify` cannot run, and readiness still checks and stores the links.
async fn readiness_checks_the_links_without_the_fingerprints(test_db: TestDb) {
    let db = test_db.connect().await;
    upgrade_to(&db, "head").await;
    let fx = Fx::new(db).await;
    let tenant = fx.tenant().await;
    let session = fx.session(tenant, 0).await;
    fx.flow(tenant, None, Some(session), None, 1).await;
    fx.asset(tenant, Some(session)).await;
    fx.sql("DELETE FROM flowkey_fingerprints").await;
    assert!(
        verify_and_record(&fx.db).await.is_err(),
        "verify needs them"
    );

    let checked = readiness(&fx.db).await.unwrap();
    stale_because(&checked, "no verification stored yet");
    assert!(checked.is_ready(), "{:?}", checked.reasons());
    assert!(from_storage(&fx).await.is_ready());
}
both_engines!(
    readiness_checks_the_links_without_the_fingerprints,
    readiness_checks_the_links_without_the_fingerprints
);

fn stale_reason(stored: Stored) -> String {
    match stored {
        Stored::Stale(reason) => reason,
        Stored::Fresh(fresh) => panic!("still standing: {fresh:?}"),
    }
}

/// Each reason a stored verification stops standing, read directly (`last_standing`): none
/// stored in the table yet, older than the caller's maximum age, unreadable (written by
/// another build), and stored below the legacy-write log's revision (no log to see writes
/// since). `verify --online` stores its result like `verify`.
async fn every_reason_a_stored_verification_stops_standing_is_named(test_db: TestDb) {
    let db = test_db.connect().await;
    upgrade_to(&db, "flow_constraints").await;
    let fx = Fx::new(db).await;
    let long = Duration::from_secs(3600);

    // Below the legacy-write log: stored, but nothing can tell writes since.
    verify_and_record(&fx.db).await.unwrap();
    let reason = stale_reason(last_standing(&fx.db, long, DELTA_ROWS_CAP).await.unwrap());
    assert!(
        reason.contains("no legacy-write log at this revision"),
        "{reason}"
    );

    upgrade_to(&fx.db, "head").await;
    fx.sql("DELETE FROM flowkey_verifications").await;
    let reason = stale_reason(last_standing(&fx.db, long, DELTA_ROWS_CAP).await.unwrap());
    assert_eq!(reason, "no verification stored yet");

    let report = verify_and_record_online(&fx.db).await.unwrap();
    assert!(report.is_ok(), "{}", report.summary());
    assert!(matches!(
        last_standing(&fx.db, long, DELTA_ROWS_CAP).await.unwrap(),
        Stored::Fresh(_)
    ));
    let reason = stale_reason(
        last_standing(&fx.db, Duration::ZERO, DELTA_ROWS_CAP)
            .await
            .unwrap(),
    );
    assert!(reason.contains("more than 0 s"), "{reason}");

    fx.sql("UPDATE flowkey_verifications SET report = 'not json'")
        .await;
    let reason = stale_reason(last_standing(&fx.db, long, DELTA_ROWS_CAP).await.unwrap());
    assert!(reason.contains("unreadable"), "{reason}");
    // Readiness then checks again and stores a readable result.
    let checked = readiness(&fx.db).await.unwrap();
    assert_eq!(checked.checks.from, "checked", "{:?}", checked.checks);
    assert!(matches!(
        last_standing(&fx.db, long, DELTA_ROWS_CAP).await.unwrap(),
        Stored::Fresh(_)
    ));
}
both_engines!(
    every_reason_a_stored_verification_stops_standing_is_named,
    every_reason_a_stored_verification_stops_standing_is_named
);

/// One legacy session, written before the upgrade: its flow, an import with two raw records
/// and a field mapping, and an asset.
struct Legacy {
    tenant: Tenant,
    session: Uuid,
    flow: Uuid,
    import: Uuid,
    asset: Uuid,
}

/// `sessions` legacy sessions written at the legacy schema, then `upgrade head`: the write
/// ledger starts empty, so what the delta reaches is only what the test writes after.
async fn legacy_world(test_db: &TestDb, sessions: usize) -> (Fx, Vec<Legacy>) {
    let db = test_db.connect().await;
    upgrade_to(&db, "legacy").await;
    let fx = Fx::new(db).await;
    let mut world = Vec::new();
    for n in 0..sessions {
        let tenant = fx.tenant().await;
        let session = fx.session(tenant, n as i64).await;
        let flow = fx.flow(tenant, None, Some(session), None, n as i64).await;
        let import = fx.import(Some(tenant), Some(session)).await;
        fx.raw(import, Some(tenant), Some(session)).await;
        fx.raw(import, Some(tenant), None).await;
        fx.field_mapping(import).await;
        let asset = fx.asset(tenant, Some(session)).await;
        // An LLM log naming the session in a spelling of its own (free text).
        let spelled = format!(" Disc_Session_{} ", session.to_string().to_uppercase());
        fx.llm(Some(tenant), Some(&spelled)).await;
        world.push(Legacy {
            tenant,
            session,
            flow,
            import,
            asset,
        });
    }
    // An import of the last tenant without a session, named by a flow of its own: linked
    // to that flow by the backfill.
    if let Some(last) = world.last() {
        let import = fx.import(Some(last.tenant), None).await;
        fx.flow(last.tenant, None, None, Some(import), 10).await;
    }
    upgrade_to(&fx.db, "head").await;
    (fx, world)
}

/// The import of [`legacy_world`] without a session.
async fn world_orphan_import(fx: &Fx) -> Option<Uuid> {
    let sql = format!(
        "SELECT {} FROM data_imports WHERE session_id IS NULL",
        match fx.engine() {
            flowkey::db::Engine::Postgres => "id::text",
            flowkey::db::Engine::Sqlite => "id",
        }
    );
    let id: String = match &fx.db {
        flowkey::db::Db::Postgres(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
        flowkey::db::Db::Sqlite(pool) => sqlx::query_scalar(&sql).fetch_one(pool).await.unwrap(),
    };
    Some(Uuid::parse_str(&id).unwrap())
}

fn from_delta(readiness: &Readiness) -> i64 {
    assert_eq!(readiness.checks.from, "delta", "{:?}", readiness.checks);
    assert!(readiness.checks.verified_at.is_some());
    readiness
        .checks
        .delta_rows_checked
        .expect("the delta says what it checked")
}

/// While the old application writes, readiness answers from the stored verification and a
/// delta over the rows it wrote and the rows those writes reach, not from the whole tables:
/// one asset written is one row checked; a new session with its flow, import and raw record
/// reaches those rows and no others.
async fn old_code_writes_are_checked_by_the_delta_not_by_the_whole_tables(test_db: TestDb) {
    let (fx, world) = legacy_world(&test_db, 6).await;
    let first = readiness(&fx.db).await.unwrap();
    stale_because(&first, "no verification stored yet");
    assert!(first.is_ready(), "{:?}", first.reasons());
    let quiet = from_storage(&fx).await;
    assert!(quiet.is_ready());

    let one = &world[0];
    let asset = fx.asset(one.tenant, Some(one.session)).await;
    assert_eq!(fx.flow_of("assets", asset).await, Some(one.flow));
    let after_asset = readiness(&fx.db).await.unwrap();
    assert!(after_asset.is_ready(), "{:?}", after_asset.reasons());
    assert_eq!(from_delta(&after_asset), 1, "{:?}", after_asset.checks);

    // The old application's new session: session, flow (the live mapping maps it), import
    // and one raw record, all by session key.
    let session = fx.session(one.tenant, 100).await;
    let flow = fx.flow(one.tenant, None, Some(session), None, 100).await;
    let import = fx.import(Some(one.tenant), Some(session)).await;
    let raw = fx.raw(import, Some(one.tenant), Some(session)).await;
    assert_eq!(fx.flow_of("raw_import_records", raw).await, Some(flow));
    let after_session = readiness(&fx.db).await.unwrap();
    assert!(after_session.is_ready(), "{:?}", after_session.reasons());
    // The asset, the import and the raw record: the legacy sessions' rows are not reached.
    assert_eq!(from_delta(&after_session), 3, "{:?}", after_session.checks);
    let total = fx.count("SELECT count(*) FROM raw_import_records").await
        + fx.count("SELECT count(*) FROM assets").await;
    assert!(total > 3 * 6);
}
both_engines!(
    old_code_writes_are_checked_by_the_delta_not_by_the_whole_tables,
    old_code_writes_are_checked_by_the_delta_not_by_the_whole_tables
);

async fn not_ready_naming(fx: &Fx, tables: &[&str]) {
    let answer = readiness(&fx.db).await.unwrap();
    assert!(
        !answer.is_ready(),
        "the delta missed a broken {tables:?}: {:?}",
        answer.checks
    );
    for table in tables {
        stale_because(&answer, table);
    }
}

/// The delta reaches a row through every other row its checks read, and catches what a
/// change there broke: each case breaks links through one path only (the row itself, its
/// session's mapping row, its import, its flow, a flow naming an import without a session),
/// on rows written before the upgrade (so the write ledger does not name them), and nothing
/// else is written: readiness must say not ready and name a table the delta found failing.
/// The repair is checked in full and stored, and the next case starts from a sound result.
async fn the_delta_catches_a_link_broken_through_any_row_it_reads(test_db: TestDb) {
    let (fx, world) = legacy_world(&test_db, 5).await;
    assert!(readiness(&fx.db).await.unwrap().is_ready());
    let sound_again = |fx: &Fx| {
        let db = fx.db.clone();
        async move {
            check_links_and_record(&db).await.unwrap();
            let answer = readiness(&db).await.unwrap();
            assert!(answer.is_ready(), "repair: {:?}", answer.reasons());
        }
    };
    let other = fx.tenant().await;
    let foreign = fx.flow(other, None, None, None, 50).await;
    sound_again(&fx).await;

    // 1. The row itself: the application links an asset to another tenant's flow.
    let one = &world[0];
    fx.sql(&format!(
        "UPDATE assets SET flow_id = '{foreign}' WHERE id = '{}'",
        one.asset
    ))
    .await;
    not_ready_naming(&fx, &["assets"]).await;
    fx.sql(&format!(
        "UPDATE assets SET flow_id = '{}' WHERE id = '{}'",
        one.flow, one.asset
    ))
    .await;
    sound_again(&fx).await;

    // 2. Its session's mapping row (flowkey's own table, which the ledger does not see),
    //    moved to another flow of the same tenant: the session's rows no longer match it.
    let two = &world[1];
    let elsewhere = fx.flow(two.tenant, None, None, None, 60).await;
    sound_again(&fx).await;
    fx.sql(&format!(
        "UPDATE session_flow_mapping SET flow_id = '{elsewhere}' WHERE session_id = '{}'",
        two.session
    ))
    .await;
    not_ready_naming(&fx, &["raw_import_records", "llm_usage_logs"]).await;
    fx.sql(&format!(
        "UPDATE session_flow_mapping SET flow_id = '{}' WHERE session_id = '{}'",
        two.flow, two.session
    ))
    .await;
    sound_again(&fx).await;

    // 3. Its import: the import loses its session and gets another flow; its field mapping
    //    (linked through its import only) no longer carries its import's flow.
    let three = &world[2];
    let moved = fx.flow(three.tenant, None, None, None, 70).await;
    sound_again(&fx).await;
    fx.sql(&format!(
        "UPDATE data_imports SET session_id = NULL WHERE id = '{}'",
        three.import
    ))
    .await;
    fx.sql(&format!(
        "UPDATE data_imports SET flow_id = '{moved}' WHERE id = '{}'",
        three.import
    ))
    .await;
    not_ready_naming(&fx, &["import_field_mappings"]).await;
    fx.sql(&format!(
        "UPDATE data_imports SET flow_id = '{}', session_id = '{}' WHERE id = '{}'",
        three.flow, three.session, three.import
    ))
    .await;
    sound_again(&fx).await;

    // 4. Its flow: the flow moves to another tenant; the rows linked to it cross tenants, and
    //    the session's mapping row is of another tenant than its flow.
    let four = &world[3];
    fx.sql(&format!(
        "UPDATE discovery_flows SET client_account_id = '{}', engagement_id = '{}' WHERE flow_id = '{}'",
        other.client, other.engagement, four.flow
    ))
    .await;
    not_ready_naming(&fx, &["assets", "session_flow_mapping"]).await;
    fx.sql(&format!(
        "UPDATE discovery_flows SET client_account_id = '{}', engagement_id = '{}' WHERE flow_id = '{}'",
        four.tenant.client, four.tenant.engagement, four.flow
    ))
    .await;
    sound_again(&fx).await;

    // 5. A flow naming an import without a session (both written before the upgrade): a new
    //    flow, created earlier, names it too; by the rules (the earliest naming flow) the
    //    import now belongs to the new flow, and it still carries the old one.
    let five = &world[4];
    fx.flow(
        five.tenant,
        None,
        None,
        world_orphan_import(&fx).await,
        -500,
    )
    .await;
    not_ready_naming(&fx, &["data_imports"]).await;
}
both_engines!(
    the_delta_catches_a_link_broken_through_any_row_it_reads,
    the_delta_catches_a_link_broken_through_any_row_it_reads
);

/// `flowkey verify` stores its result with a basis, as readiness's full check does. The
/// delta gives way to the full check where it cannot stand in for it: a stored result
/// without a basis (stored by an older build), and a stored failure (never turned into a
/// pass by a delta).
async fn the_delta_gives_way_to_the_full_check_where_it_cannot_stand_in(test_db: TestDb) {
    let (fx, world) = legacy_world(&test_db, 2).await;
    let one = &world[0];
    verify_and_record(&fx.db).await.unwrap();
    fx.asset(one.tenant, Some(one.session)).await;
    assert_eq!(from_delta(&readiness(&fx.db).await.unwrap()), 1);

    fx.sql("DELETE FROM flowkey_delta_basis").await;
    fx.asset(one.tenant, Some(one.session)).await;
    let without_basis = readiness(&fx.db).await.unwrap();
    stale_because(&without_basis, "no delta basis");
    assert!(without_basis.is_ready());
    assert_eq!(from_delta(&readiness(&fx.db).await.unwrap()), 2);
    // A build before the delta kept no basis tables at all: the same, and the full check
    // creates them.
    fx.sql("DROP TABLE flowkey_delta_basis").await;
    fx.asset(one.tenant, Some(one.session)).await;
    stale_because(&readiness(&fx.db).await.unwrap(), "no delta basis");
    assert!(from_delta(&readiness(&fx.db).await.unwrap()) > 0);

    let other = fx.tenant().await;
    let foreign = fx.flow(other, None, None, None, 50).await;
    fx.sql(&format!(
        "UPDATE assets SET flow_id = '{foreign}' WHERE id = '{}'",
        one.asset
    ))
    .await;
    let failed = readiness(&fx.db).await.unwrap();
    assert!(!failed.is_ready());
    // Repaired, with a write beside it: the stored failure is checked in full, not by delta.
    fx.sql(&format!(
        "UPDATE assets SET flow_id = '{}' WHERE id = '{}'",
        one.flow, one.asset
    ))
    .await;
    fx.asset(one.tenant, Some(one.session)).await;
    let repaired = readiness(&fx.db).await.unwrap();
    assert_eq!(repaired.checks.from, "checked", "{:?}", repaired.checks);
    assert!(repaired.is_ready(), "{:?}", repaired.reasons());
}
both_engines!(
    the_delta_gives_way_to_the_full_check_where_it_cannot_stand_in,
    the_delta_gives_way_to_the_full_check_where_it_cannot_stand_in
);

/// A delta that would reach more keys than allowed gives way: to the quiet checks (the
/// stored result stands while nothing was logged) and, once something was, to the full
/// check, with both reasons named. The ledger's rows alone, and the ledger with the changes
/// beside it, are each counted against the limit.
async fn a_delta_past_its_key_limit_gives_way(test_db: TestDb) {
    let (fx, world) = legacy_world(&test_db, 2).await;
    let long = Duration::from_secs(3600);
    assert!(readiness(&fx.db).await.unwrap().is_ready());
    let one = &world[0];
    // A row the ledger names that the legacy-write signal does not log (it carries its flow).
    fx.sql(&format!(
        "UPDATE assets SET name = 'renamed' WHERE id = '{}'",
        one.asset
    ))
    .await;
    assert!(matches!(
        last_standing(&fx.db, long, 0).await.unwrap(),
        Stored::Fresh(StoredVerification { delta: None, .. })
    ));
    // A flow written beside it: two ledger rows (the asset, the flow) fit a limit of two,
    // not one of one.
    fx.flow(one.tenant, None, None, None, 5).await;
    assert!(matches!(
        last_standing(&fx.db, long, 2).await.unwrap(),
        Stored::Fresh(StoredVerification { delta: Some(_), .. })
    ));
    assert!(matches!(
        last_standing(&fx.db, long, 1).await.unwrap(),
        Stored::Fresh(StoredVerification { delta: None, .. })
    ));
    // A new session and its flow: two more ledger rows and a mapping row (the live
    // mapping's): four ledger rows fit a limit of four, with the mapping row five keys do not.
    let session = fx.session(one.tenant, 6).await;
    fx.flow(one.tenant, None, Some(session), None, 6).await;
    assert!(matches!(
        last_standing(&fx.db, long, 4).await.unwrap(),
        Stored::Fresh(StoredVerification { delta: None, .. })
    ));
    // Old code writes by session key: logged, so past the limit the full check runs.
    fx.asset(one.tenant, Some(one.session)).await;
    let reason = stale_reason(last_standing(&fx.db, long, 5).await.unwrap());
    assert!(reason.contains("legacy writes"), "{reason}");
    assert!(reason.contains("6 rows written or changed"), "{reason}");
    let reason = stale_reason(last_standing(&fx.db, long, 0).await.unwrap());
    assert!(
        reason.contains("write ledger names more than 0 rows"),
        "{reason}"
    );
}
both_engines!(
    a_delta_past_its_key_limit_gives_way,
    a_delta_past_its_key_limit_gives_way
);

/// On a read-only connection (a hot standby, a read-only role), storing the result is an
/// optimisation that cannot happen: `verify` and readiness's full check still answer, in
/// full, and nothing is stored; the next answer checks again rather than trusting a result
/// that is not there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_on_a_read_only_connection_answer_and_store_nothing() {
    let test_db = TestDb::fresh(flowkey::db::Engine::Postgres).await;
    let db = test_db.connect().await;
    upgrade_to(&db, "head").await;
    let separator = if test_db.url.contains('?') { '&' } else { '?' };
    let read_only_url = format!(
        "{}{separator}options=-c%20default_transaction_read_only%3Don",
        test_db.url
    );
    let read_only = flowkey::db::Db::connect(&read_only_url).await.unwrap();

    let report = verify_and_record(&read_only).await.unwrap();
    assert!(report.is_ok(), "{}", report.summary());
    let links = check_links_and_record(&read_only).await.unwrap();
    assert!(links.tables.iter().all(|table| table.wrong_flow == 0));
    let answer = readiness(&read_only).await.unwrap();
    assert_eq!(answer.checks.from, "checked", "{:?}", answer.checks);
    // flowkey creates its verifications table when it first stores one: none was stored.
    let fx = Fx::new(db).await;
    assert_eq!(
        fx.count("SELECT count(*) FROM pg_tables WHERE tablename = 'flowkey_verifications'")
            .await,
        0
    );
    read_only.close().await;
}
