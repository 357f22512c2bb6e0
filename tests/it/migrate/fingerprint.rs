//! Fingerprints of the legacy tables: computed where the data is, read-only, and in the
//! format of the stored baseline (an upgrade started by an earlier build still verifies).

use flowkey::db::{Db, Engine};
use flowkey::migrate::flow::fingerprint::{
    fingerprint_database, fingerprint_like_baseline, fingerprint_sql, fingerprint_table_as,
    load_baseline, store_baseline, FingerprintFormat, FingerprintScope, TableFingerprint,
};
use flowkey::migrate::flow::tables::legacy_columns;
use flowkey::migrate::revisions::legacy::LEGACY_TABLES;
use flowkey::seed::{seed, SeedConfig};
use sha2::{Digest, Sha256};

use crate::both_engines;
use crate::support::harness::TestDb;

async fn seeded(test_db: &TestDb) -> Db {
    let db = test_db.connect().await;
    seed(&db, &SeedConfig::default()).await.expect("seed");
    db
}

/// The first builds' fingerprint of one table, as they computed it: every row's canonical
/// text fetched to the client, the first 8 bytes (little endian) of each text's SHA-256
/// summed. Kept here, independent of the library, as the reference V1 must reproduce.
async fn earlier_build_fingerprint(
    db: &Db,
    table: &str,
    scope: FingerprintScope,
) -> TableFingerprint {
    let columns = legacy_columns(db, table).await.expect("columns");
    let parts: Vec<String> = columns
        .iter()
        .map(|column| match db.engine() {
            Engine::Postgres => format!("coalesce(quote_nullable({column}), 'NULL')"),
            Engine::Sqlite => format!(
                "(CASE typeof({column}) WHEN 'real' THEN printf('R%.17g', {column}) ELSE quote({column}) END)"
            ),
        })
        .collect();
    let filter = if scope == FingerprintScope::WithoutMigrationFlows && table == "discovery_flows" {
        " WHERE flow_id NOT IN (SELECT flow_id FROM flowkey_remembered_flows)"
    } else {
        ""
    };
    let sql = format!("SELECT {} FROM {table}{filter}", parts.join(" || ',' || "));
    let texts: Vec<String> = flowkey::on_pool!(db, pool => sqlx::query_scalar(&sql)
        .fetch_all(pool)
        .await
        .expect("row texts"));
    let mut sum = 0u64;
    for text in &texts {
        let digest = Sha256::digest(text.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        sum = sum.wrapping_add(u64::from_le_bytes(first));
    }
    TableFingerprint {
        table: table.to_owned(),
        rows: texts.len() as i64,
        hash: format!("{sum:016x}"),
    }
}

async fn v1_reproduces_the_earlier_builds_value(test_db: TestDb) {
    let db = seeded(&test_db).await;
    for table in LEGACY_TABLES {
        let earlier = earlier_build_fingerprint(&db, table, FingerprintScope::AllRows).await;
        let now =
            fingerprint_table_as(&db, table, FingerprintScope::AllRows, FingerprintFormat::V1)
                .await
                .expect("fingerprint");
        assert!(earlier.rows > 0, "{table} is empty");
        assert_eq!(now, earlier, "{table}");
    }
}
both_engines!(
    the_v1_format_gives_the_value_earlier_builds_stored,
    v1_reproduces_the_earlier_builds_value
);

async fn a_v1_baseline_is_compared_in_v1(test_db: TestDb) {
    let db = seeded(&test_db).await;
    flowkey::migrate::Migrator::new(db.clone(), flowkey::migrate::RunOptions::default())
        .upgrade("flow_mapping")
        .await
        .expect("upgrade to flow_mapping");
    let fresh = load_baseline(&db).await.expect("baseline");
    assert!(
        fresh.iter().all(|t| t.hash.starts_with("v2:")),
        "new baselines are v2: {fresh:?}"
    );
    // A baseline as an earlier build stored it.
    let mut earlier = Vec::new();
    for table in LEGACY_TABLES {
        earlier.push(
            earlier_build_fingerprint(&db, table, FingerprintScope::WithoutMigrationFlows).await,
        );
    }
    store_baseline(&db, &earlier).await.expect("store");
    let baseline = load_baseline(&db).await.expect("baseline");
    let now = fingerprint_like_baseline(&db, FingerprintScope::WithoutMigrationFlows, &baseline)
        .await
        .expect("fingerprint");
    for then in &baseline {
        let same = now.iter().find(|t| t.table == then.table);
        assert_eq!(same, Some(then), "{}", then.table);
    }
    // A v2 baseline is compared in v2.
    let current = fingerprint_database(&db, FingerprintScope::WithoutMigrationFlows)
        .await
        .expect("fingerprint");
    let like = fingerprint_like_baseline(&db, FingerprintScope::WithoutMigrationFlows, &current)
        .await
        .expect("fingerprint");
    assert_eq!(like, current);
    let mut current = current;
    current.sort_by(|a, b| a.table.cmp(&b.table));
    assert_eq!(
        current, fresh,
        "nothing changed since the upgrade's baseline"
    );
}
both_engines!(
    a_baseline_stored_by_an_earlier_build_is_compared_in_its_own_format,
    a_v1_baseline_is_compared_in_v1
);

/// Each change is caught, in the table it was made in and no other.
async fn every_change_is_caught_and_named(test_db: TestDb) {
    let db = seeded(&test_db).await;
    let before = fingerprint_database(&db, FingerprintScope::AllRows)
        .await
        .expect("fingerprint");
    assert_eq!(
        fingerprint_database(&db, FingerprintScope::AllRows)
            .await
            .expect("again"),
        before,
        "stable"
    );
    let first_id = |table: &str| format!("(SELECT id FROM {table} ORDER BY id LIMIT 1)");
    let changes = [
        (
            "raw_import_records",
            // A NULL becomes an empty string: the text form must tell them apart.
            "UPDATE raw_import_records SET processing_notes = '' \
             WHERE id = (SELECT id FROM raw_import_records \
             WHERE processing_notes IS NULL ORDER BY id LIMIT 1)"
                .to_owned(),
        ),
        (
            "llm_usage_logs",
            format!(
                "DELETE FROM llm_usage_logs WHERE id = {}",
                first_id("llm_usage_logs")
            ),
        ),
        (
            "client_accounts",
            "INSERT INTO client_accounts (id, name, created_at) VALUES \
             ('00000000-0000-4000-8000-000000000001', 'extra', '2024-01-01T00:00:00Z')"
                .to_owned(),
        ),
        (
            "import_field_mappings",
            // A value with the characters a row's text form quotes.
            format!(
                "UPDATE import_field_mappings SET source_field = source_field || ',\"() ' \
                 WHERE id = {}",
                first_id("import_field_mappings")
            ),
        ),
        (
            "assets",
            // The last digit a float8 can hold.
            format!(
                "UPDATE assets SET memory_gb = memory_gb + memory_gb * 1e-15 WHERE id = {}",
                first_id("assets")
            ),
        ),
    ];
    let mut changes = changes.to_vec();
    if test_db.engine == Engine::Postgres {
        // Values a type's own hash equates: -0 and 0 (SQLite stores both as the integer 0).
        for value in ["0", "'-0'::float8"] {
            changes.push((
                "assets",
                format!(
                    "UPDATE assets SET storage_gb = {value} WHERE id = {}",
                    first_id("assets")
                ),
            ));
        }
    }
    let mut previous = before;
    for (table, sql) in changes {
        db.execute_plain(&sql).await.expect("change");
        let after = fingerprint_database(&db, FingerprintScope::AllRows)
            .await
            .expect("fingerprint");
        let changed: Vec<&str> = previous
            .iter()
            .zip(&after)
            .filter(|(then, now)| then != now)
            .map(|(then, _)| then.table.as_str())
            .collect();
        assert_eq!(changed, [table], "{sql}");
        previous = after;
    }
}
both_engines!(
    a_changed_value_a_missing_and_an_extra_row_change_their_tables_fingerprint,
    every_change_is_caught_and_named
);

/// The fingerprint takes no write lock: it completes while another connection holds an open
/// write transaction (on SQLite a `BEGIN IMMEDIATE` per batch would wait for it).
async fn fingerprinting_does_not_wait_for_writers(test_db: TestDb) {
    let db = seeded(&test_db).await;
    let writer = test_db.connect().await;
    let mut tx = writer.begin_write().await.expect("writer");
    flowkey::on_tx!(&mut tx, conn => {
        sqlx::query("UPDATE users SET email = email || 'x' WHERE id = (SELECT id FROM users ORDER BY id LIMIT 1)")
            .execute(&mut **conn)
            .await
            .expect("uncommitted write");
    });
    let started = std::time::Instant::now();
    let during = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        fingerprint_database(&db, FingerprintScope::AllRows),
    )
    .await
    .expect("the fingerprint does not wait for the writer")
    .expect("fingerprint");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    tx.rollback().await.expect("rollback");
    let after = fingerprint_database(&db, FingerprintScope::AllRows)
        .await
        .expect("fingerprint");
    assert_eq!(during, after, "the uncommitted write was not seen");
}
both_engines!(
    a_fingerprint_runs_beside_an_open_write_transaction,
    fingerprinting_does_not_wait_for_writers
);

/// What `--sql` shows is what runs: the declared legacy columns are the catalog's.
async fn the_printed_statements_name_the_catalog_columns(test_db: TestDb) {
    let db = seeded(&test_db).await;
    let sql = fingerprint_sql(db.engine());
    for table in LEGACY_TABLES {
        let columns = legacy_columns(&db, table).await.expect("columns");
        let line = sql
            .lines()
            .find(|line| line.contains(&format!("FROM {table}")))
            .unwrap_or_else(|| panic!("no statement for {table}"));
        let mut at = 0;
        for column in &columns {
            let found = find_word(&line[at..], column)
                .unwrap_or_else(|| panic!("{table}.{column} missing or out of order: {line}"));
            at += found + column.len();
        }
        // The printed statement runs (discovery_flows' filter names flowkey's own table,
        // which a legacy database does not have yet).
        if *table != "discovery_flows" {
            let statement = line.trim_end_matches(';');
            flowkey::on_pool!(&db, pool => sqlx::query(statement)
                .fetch_all(pool)
                .await
                .map(|rows| rows.len())
                .unwrap_or_else(|err| panic!("{statement}: {err}")));
        }
    }
}
both_engines!(
    the_fingerprint_sql_is_the_statements_that_run,
    the_printed_statements_name_the_catalog_columns
);

/// Where `word` first stands on its own in `text` (not inside a longer identifier).
fn find_word(text: &str, word: &str) -> Option<usize> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).map(|(at, _)| at).find(|&at| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    })
}

/// The same rows give the same fingerprint in another database: on PostgreSQL a second
/// database seeded alike; on SQLite an in-memory one, which is read through the pool instead
/// of a connection of the fingerprint's own.
async fn the_same_rows_give_the_same_fingerprint_elsewhere(test_db: TestDb) {
    let db = seeded(&test_db).await;
    let (other, _keep) = match test_db.engine {
        Engine::Sqlite => (
            Db::connect("sqlite://:memory:").await.expect("in-memory"),
            None,
        ),
        Engine::Postgres => {
            let fresh = TestDb::fresh(Engine::Postgres).await;
            (fresh.connect().await, Some(fresh))
        }
    };
    seed(&other, &SeedConfig::default()).await.expect("seed");
    for format in [FingerprintFormat::V1, FingerprintFormat::V2] {
        for table in LEGACY_TABLES {
            let here = fingerprint_table_as(&db, table, FingerprintScope::AllRows, format)
                .await
                .expect("fingerprint");
            let there = fingerprint_table_as(&other, table, FingerprintScope::AllRows, format)
                .await
                .expect("fingerprint");
            assert_eq!(here, there, "{table} {format:?}");
        }
    }
}
both_engines!(
    the_same_rows_give_the_same_fingerprint_in_another_database,
    the_same_rows_give_the_same_fingerprint_elsewhere
);

/// The benchmark's baselines: the fingerprint timed against counts of the same tables (every
/// table measured, rows as counted), and the naive offline migration, which links what a
/// plain `UPDATE ... FROM` per table links, in one transaction.
async fn the_benchmark_baselines_measure_the_same_rows(test_db: TestDb) {
    let db = seeded(&test_db).await;
    let speed = flowkey::migrate::flow::fingerprint::fingerprint_against_scan(&db, 1)
        .await
        .expect("speed");
    assert_eq!(speed.tables.len(), LEGACY_TABLES.len());
    for table in &speed.tables {
        let rows: i64 = flowkey::on_pool!(&db, pool => sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {}",
            table.table
        ))
        .fetch_one(pool)
        .await
        .expect("count"));
        assert_eq!(table.rows, rows, "{}", table.table);
        assert!(table.fingerprint_seconds > 0.0 && table.count_seconds > 0.0);
    }
    assert!(speed.ratio > 0.0 && speed.ratio_to_table_scan > 0.0);

    let naive = flowkey::migrate::flow::baseline::naive_offline_migration(&db)
        .await
        .expect("naive migration");
    let phases: Vec<&str> = naive.phases.iter().map(|p| p.phase.as_str()).collect();
    assert_eq!(&phases[..4], ["mapping", "add column", "update", "index"]);
    let unlinked: i64 = flowkey::on_pool!(&db, pool => sqlx::query_scalar(
        "SELECT count(*) FROM raw_import_records r JOIN session_flow_mapping m \
         ON m.session_id = r.session_id WHERE r.flow_id IS NULL OR r.flow_id <> m.flow_id"
    )
    .fetch_one(pool)
    .await
    .expect("count"));
    assert_eq!(unlinked, 0);
    let linked: i64 = flowkey::on_pool!(&db, pool => sqlx::query_scalar(
        "SELECT count(*) FROM import_field_mappings WHERE flow_id IS NOT NULL"
    )
    .fetch_one(pool)
    .await
    .expect("count"));
    assert!(linked > 0);
}
both_engines!(
    the_benchmark_baselines_measure_the_same_rows_and_link_them,
    the_benchmark_baselines_measure_the_same_rows
);
