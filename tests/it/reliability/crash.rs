//! Crash anywhere: `flowkey upgrade head` and `flowkey downgrade legacy`, run as child
//! processes on seeded data, are killed with SIGKILL at random moments (seeded, replayable
//! with FLOWKEY_RELIABILITY_SEED) and rerun until they complete; the result must equal an
//! uninterrupted run on an identical copy: introspected schema, schema text (triggers and
//! functions included), fingerprints of every legacy table, every `flow_id` of every table.
//!
//! CI runs a handful of kill points per engine; `FLOWKEY_KILL_POINTS=50` (see
//! reliability/crash.sh) runs the long version.

use flowkey::migrate::flow::{self, FingerprintScope};

use crate::both_engines;
use crate::reliability::concurrency::OldCode;
use crate::support::harness::TestDb;
use crate::support::reliability_support::{
    assert_same, kill_points_wanted, landing_summary, run_ok, run_with_kills, scenario_rng, seeded,
    small_seed, snapshot, KillPoint, DOWNGRADE_LEGACY, UPGRADE_HEAD,
};

/// Kill points per engine in CI (upgrade and downgrade together).
const CI_KILL_POINTS: usize = 6;
/// At most this many kills per run to completion, so that every cycle kills both directions.
const KILLS_PER_DIRECTION: usize = 4;

async fn upgrade_and_downgrade_killed_anywhere_end_like_uninterrupted_runs(killed_db: TestDb) {
    let engine = killed_db.engine;
    let clean_db = TestDb::fresh(engine).await;
    let config = small_seed();
    seeded(&killed_db, &config).await;
    seeded(&clean_db, &config).await;
    let (mut rng, seed) = scenario_rng(0x5EED_0001);

    let killed = killed_db.connect().await;
    let clean = clean_db.connect().await;
    let legacy = snapshot(&killed, FingerprintScope::AllRows).await;
    assert_same(
        &snapshot(&clean, FingerprintScope::AllRows).await,
        &legacy,
        "the two seeded copies",
    );

    // The uninterrupted runs, timed: kill moments are drawn over their duration.
    let upgrade_time = run_ok(&clean_db.url, UPGRADE_HEAD);
    let head = snapshot(&clean, FingerprintScope::WithoutMigrationFlows).await;
    assert!(flow::verify(&clean).await.unwrap().is_ok());
    let downgrade_time = run_ok(&clean_db.url, DOWNGRADE_LEGACY);
    assert_same(
        &snapshot(&clean, FingerprintScope::AllRows).await,
        &legacy,
        "an uninterrupted round trip",
    );

    let wanted = kill_points_wanted(CI_KILL_POINTS);
    let mut kills: Vec<KillPoint> = Vec::new();
    let mut cycles = 0;
    while kills.len() < wanted {
        cycles += 1;
        let context = format!("{engine:?} seed {seed} cycle {cycles}");
        let per_run = KILLS_PER_DIRECTION.min(wanted - kills.len()).max(1);
        let up = run_with_kills(
            &killed_db.url,
            UPGRADE_HEAD,
            &mut rng,
            upgrade_time,
            per_run,
        )
        .await;
        assert_same(
            &snapshot(&killed, FingerprintScope::WithoutMigrationFlows).await,
            &head,
            &format!(
                "{context}: upgrade after {} kills ({})",
                up.len(),
                landing_summary(&up)
            ),
        );
        let verified = flow::verify(&killed).await.unwrap();
        assert!(verified.is_ok(), "{context}: {verified}");
        kills.extend(up);

        let per_run = KILLS_PER_DIRECTION
            .min(wanted.saturating_sub(kills.len()))
            .max(1);
        let down = run_with_kills(
            &killed_db.url,
            DOWNGRADE_LEGACY,
            &mut rng,
            downgrade_time,
            per_run,
        )
        .await;
        assert_same(
            &snapshot(&killed, FingerprintScope::AllRows).await,
            &legacy,
            &format!(
                "{context}: downgrade after {} kills ({})",
                down.len(),
                landing_summary(&down)
            ),
        );
        kills.extend(down);
        assert!(
            cycles < 10 * wanted.max(1),
            "{context}: runs keep completing before any kill"
        );
    }
    eprintln!(
        "RELIABILITY crash engine={engine:?} seed={seed} kill_points={} cycles={cycles} \
         upgrade_ms={} downgrade_ms={} landed: {}",
        kills.len(),
        upgrade_time.as_millis(),
        downgrade_time.as_millis(),
        landing_summary(&kills)
    );
    assert!(kills.len() >= wanted);
}
both_engines!(
    upgrade_and_downgrade_killed_anywhere_end_like_uninterrupted_runs,
    upgrade_and_downgrade_killed_anywhere_end_like_uninterrupted_runs
);

/// SIGKILL during the upgrade while old code keeps writing by `session_id`: old code sees no
/// error, and once a rerun completes every row it wrote (before, during and between the
/// killed runs) is linked. PostgreSQL only in CI: on SQLite the upgrade fails under
/// concurrent writers (bug 1 of docs/reliability.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_killed_while_old_code_writes_end_with_every_row_linked_on_postgres() {
    let test_db = TestDb::fresh(flowkey::db::Engine::Postgres).await;
    seeded(&test_db, &small_seed()).await;
    let (mut rng, seed) = scenario_rng(0x5EED_0002);
    let db = test_db.connect().await;
    let old_code = OldCode::start(&db).await;
    // Roughly the uninterrupted duration on PostgreSQL at this size.
    let kills = run_with_kills(
        &test_db.url,
        UPGRADE_HEAD,
        &mut rng,
        std::time::Duration::from_millis(1500),
        kill_points_wanted(CI_KILL_POINTS).min(KILLS_PER_DIRECTION),
    )
    .await;
    let (writes, reads) = old_code.stop_and_check(&db).await;
    eprintln!(
        "RELIABILITY crash-with-writers engine=Postgres seed={seed} kill_points={} writes={writes} \
         reads={reads} errors=0 landed: {}",
        kills.len(),
        landing_summary(&kills)
    );
}

/// Rows written at `head` (by new code: a new flow with an import and a record keyed by
/// `flow_id` only; by old code: an import and a record keyed by `session_id` only), with
/// fixed ids and times so that two copies get identical rows.
async fn write_at_head(db: &flowkey::db::Db) {
    use flowkey::db::types::{DbTime, DbUuid};
    use sqlx::Row;
    let fixed = |n: u128| {
        DbUuid(uuid::Uuid::from_u128(
            0x0f10_0000_0000_4000_8000_0000_0000_0000 + n,
        ))
    };
    let at = DbTime::parse_text("2026-11-20T10:00:00.000Z").unwrap();
    let (session, client, engagement, user): (DbUuid, DbUuid, DbUuid, DbUuid) = flowkey::on_pool!(db, pool => {
        let row = sqlx::query(
            "SELECT m.session_id, m.client_account_id, m.engagement_id, s.created_by \
             FROM session_flow_mapping m JOIN data_import_sessions s ON s.id = m.session_id \
             WHERE NOT m.flow_created_by_migration AND m.rule = 'import_session_id' \
             ORDER BY m.session_id LIMIT 1",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        (row.get(0), row.get(1), row.get(2), row.get(3))
    });
    let new_flow = fixed(1);
    flowkey::on_pool!(db, pool => {
        sqlx::query(
            "INSERT INTO discovery_flows (id, flow_id, client_account_id, engagement_id, flow_name, created_at) \
             VALUES ($1, $2, $3, $4, 'written at head', $5)",
        )
        .bind(fixed(2)).bind(new_flow).bind(client).bind(engagement).bind(at)
        .execute(pool).await.unwrap();
        // New code: flow_id only.
        sqlx::query(
            "INSERT INTO data_imports (id, client_account_id, engagement_id, flow_id, import_name, \
             import_type, source_filename, imported_by, created_at) \
             VALUES ($1, $2, $3, $4, 'new code', 'csv', 'new.csv', $5, $6)",
        )
        .bind(fixed(3)).bind(client).bind(engagement).bind(new_flow).bind(user).bind(at)
        .execute(pool).await.unwrap();
        sqlx::query(
            "INSERT INTO raw_import_records (id, data_import_id, client_account_id, engagement_id, \
             flow_id, row_number, raw_data, created_at) \
             VALUES ($1, $2, $3, $4, $5, 1, '{\"new_code\": true}', $6)",
        )
        .bind(fixed(4)).bind(fixed(3)).bind(client).bind(engagement).bind(new_flow).bind(at)
        .execute(pool).await.unwrap();
        // Old code: session_id only.
        sqlx::query(
            "INSERT INTO data_imports (id, client_account_id, engagement_id, session_id, import_name, \
             import_type, source_filename, imported_by, created_at) \
             VALUES ($1, $2, $3, $4, 'old code', 'csv', 'old.csv', $5, $6)",
        )
        .bind(fixed(5)).bind(client).bind(engagement).bind(session).bind(user).bind(at)
        .execute(pool).await.unwrap();
        sqlx::query(
            "INSERT INTO raw_import_records (id, data_import_id, client_account_id, engagement_id, \
             session_id, row_number, raw_data, created_at) \
             VALUES ($1, $2, $3, $4, $5, 1, '{\"old_code\": true}', $6)",
        )
        .bind(fixed(6)).bind(fixed(5)).bind(client).bind(engagement).bind(session).bind(at)
        .execute(pool).await.unwrap();
    });
}

/// A downgrade after writes at head, killed anywhere, ends like an uninterrupted one (the new
/// flow gets a legacy session, every row survives), and upgrading again gives every row the
/// same `flow_id` on both copies.
async fn a_downgrade_after_writes_at_head_killed_anywhere_ends_like_an_uninterrupted_one(
    killed_db: TestDb,
) {
    let engine = killed_db.engine;
    let clean_db = TestDb::fresh(engine).await;
    let config = small_seed();
    let (mut rng, seed) = scenario_rng(0x5EED_0003);
    for test_db in [&killed_db, &clean_db] {
        seeded(test_db, &config).await;
        run_ok(&test_db.url, UPGRADE_HEAD);
        write_at_head(&test_db.connect().await).await;
    }
    let killed = killed_db.connect().await;
    let clean = clean_db.connect().await;
    assert_same(
        &snapshot(&killed, FingerprintScope::WithoutMigrationFlows).await,
        &snapshot(&clean, FingerprintScope::WithoutMigrationFlows).await,
        "the two copies after writes at head",
    );
    let downgrade_time = run_ok(&clean_db.url, DOWNGRADE_LEGACY);
    let legacy_after_writes = snapshot(&clean, FingerprintScope::AllRows).await;
    let kills = run_with_kills(
        &killed_db.url,
        DOWNGRADE_LEGACY,
        &mut rng,
        downgrade_time,
        kill_points_wanted(CI_KILL_POINTS).min(KILLS_PER_DIRECTION),
    )
    .await;
    assert_same(
        &snapshot(&killed, FingerprintScope::AllRows).await,
        &legacy_after_writes,
        &format!(
            "{engine:?} seed {seed}: downgrade after writes, {} kills ({})",
            kills.len(),
            landing_summary(&kills)
        ),
    );
    // The flow written at head got a legacy session (its own id), and its rows point to it.
    let restored: i64 = flowkey::on_pool!(&killed, pool => {
        sqlx::query_scalar(
            "SELECT count(*) FROM data_imports i JOIN data_import_sessions s ON s.id = i.session_id \
             WHERE i.import_name = 'new code' AND s.session_name IS NOT NULL",
        )
        .fetch_one(pool)
        .await
        .unwrap()
    });
    assert_eq!(
        restored, 1,
        "the new-code import has no legacy session after the downgrade"
    );
    run_ok(&clean_db.url, UPGRADE_HEAD);
    run_ok(&killed_db.url, UPGRADE_HEAD);
    assert_same(
        &snapshot(&killed, FingerprintScope::WithoutMigrationFlows).await,
        &snapshot(&clean, FingerprintScope::WithoutMigrationFlows).await,
        "upgrading again after the downgrades",
    );
    eprintln!(
        "RELIABILITY crash-downgrade-after-writes engine={engine:?} seed={seed} kill_points={} landed: {}",
        kills.len(),
        landing_summary(&kills)
    );
}
both_engines!(
    a_downgrade_after_writes_at_head_killed_anywhere_ends_like_an_uninterrupted_one,
    a_downgrade_after_writes_at_head_killed_anywhere_ends_like_an_uninterrupted_one
);

/// Many small batches, no progress bar, a patient deploy lock: what the contract's crash runs
/// add to their command.
const SMALL_BATCHES: [&str; 7] = [
    "--batch-target-ms",
    "1",
    "--initial-batch-size",
    "3",
    "--no-progress",
    "--lock-wait-secs",
    "120",
];

/// `command` followed by [`SMALL_BATCHES`].
fn with_small_batches<'a>(command: &[&'a str]) -> Vec<&'a str> {
    command.iter().copied().chain(SMALL_BATCHES).collect()
}

/// The contract and its downgrade killed anywhere: each ends like an uninterrupted run on an
/// identical copy (the contracted schema and every kept value and link; then head again,
/// every session key restored), and `downgrade legacy` gives the legacy data back exactly.
async fn a_contract_and_its_downgrade_killed_anywhere_end_like_uninterrupted_runs(
    killed_db: TestDb,
) {
    let engine = killed_db.engine;
    let clean_db = TestDb::fresh(engine).await;
    let config = small_seed();
    let (mut rng, seed) = scenario_rng(0x5EED_0004);
    for test_db in [&killed_db, &clean_db] {
        seeded(test_db, &config).await;
    }
    let killed = killed_db.connect().await;
    let clean = clean_db.connect().await;
    let legacy = snapshot(&killed, FingerprintScope::AllRows).await;
    for test_db in [&killed_db, &clean_db] {
        run_ok(&test_db.url, UPGRADE_HEAD);
        run_ok(
            &test_db.url,
            &["flag", "set", "enable_flow_id_primary", "on"],
        );
    }
    let head = snapshot(&clean, FingerprintScope::WithoutMigrationFlows).await;
    assert_same(
        &snapshot(&killed, FingerprintScope::WithoutMigrationFlows).await,
        &head,
        "the two copies at head",
    );

    // The quiet period is 0: the seed's own rows count as legacy writes just made.
    let contract = with_small_batches(&["contract", "--quiet-period", "0s"]);
    let contract_time = run_ok(&clean_db.url, &contract);
    let contracted = snapshot(&clean, FingerprintScope::WithoutMigrationFlows).await;
    let downgrade_time = run_ok(&clean_db.url, &with_small_batches(&["downgrade", "-1"]));
    // Back at head with every session key restored; the restored columns come last in their
    // tables (`downgrade legacy` rebuilds the legacy column order), so the reference is the
    // uninterrupted run's, not the head snapshot taken before the contract.
    let restored = snapshot(&clean, FingerprintScope::WithoutMigrationFlows).await;
    assert_eq!(
        restored.fingerprints, head.fingerprints,
        "an uninterrupted contract and downgrade changed a legacy value"
    );
    assert_eq!(
        restored.links, head.links,
        "an uninterrupted contract and downgrade changed a link"
    );

    let wanted = kill_points_wanted(CI_KILL_POINTS).min(2 * KILLS_PER_DIRECTION);
    let per_direction = wanted.div_ceil(2).max(1);
    let up = run_with_kills(
        &killed_db.url,
        &contract,
        &mut rng,
        contract_time,
        per_direction,
    )
    .await;
    assert_same(
        &snapshot(&killed, FingerprintScope::WithoutMigrationFlows).await,
        &contracted,
        &format!(
            "{engine:?} seed {seed}: contract after {} kills ({})",
            up.len(),
            landing_summary(&up)
        ),
    );
    // The killed copy names the revision `-1` reached on the clean one: a kill that lands
    // after the run recorded the contract reverted (but before the process exited) leaves the
    // database at head, and `-1` run again from there would revert head as well. That is what
    // a relative target means (the runner logs what it resolved to, for this case); an
    // operator resuming names the revision, and so does this test.
    let head = flowkey::migrate::revisions::head().id;
    let down = run_with_kills(
        &killed_db.url,
        &with_small_batches(&["downgrade", head]),
        &mut rng,
        downgrade_time,
        per_direction,
    )
    .await;
    assert_same(
        &snapshot(&killed, FingerprintScope::WithoutMigrationFlows).await,
        &restored,
        &format!(
            "{engine:?} seed {seed}: downgrade from the contract after {} kills ({})",
            down.len(),
            landing_summary(&down)
        ),
    );
    // Then `downgrade legacy` on both: the same schema as the uninterrupted copy, and every
    // legacy value exactly as seeded. (The session columns the contract's downgrade added back
    // come last in their tables, so the legacy column order is not the seeded one: see
    // BREAKING_CHANGES.md.)
    run_ok(&clean_db.url, DOWNGRADE_LEGACY);
    run_ok(&killed_db.url, DOWNGRADE_LEGACY);
    let back = snapshot(&killed, FingerprintScope::AllRows).await;
    assert_same(
        &back,
        &snapshot(&clean, FingerprintScope::AllRows).await,
        "downgrade legacy after the killed contract round trip",
    );
    assert_eq!(
        back.fingerprints, legacy.fingerprints,
        "downgrade legacy after the contract round trip changed a legacy value"
    );
    assert!(
        back.schema.diff(&legacy.schema).is_empty(),
        "downgrade legacy after the contract round trip: {:#?}",
        back.schema.diff(&legacy.schema)
    );
    let kills: Vec<_> = up.into_iter().chain(down).collect();
    eprintln!(
        "RELIABILITY crash-contract engine={engine:?} seed={seed} kill_points={} \
         contract_ms={} downgrade_ms={} landed: {}",
        kills.len(),
        contract_time.as_millis(),
        downgrade_time.as_millis(),
        landing_summary(&kills)
    );
}
both_engines!(
    a_contract_and_its_downgrade_killed_anywhere_end_like_uninterrupted_runs,
    a_contract_and_its_downgrade_killed_anywhere_end_like_uninterrupted_runs
);
