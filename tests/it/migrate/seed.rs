//! `flowkey seed`: fills an empty or legacy database with reproducible legacy data, every
//! oddity of shared/legacy/README.md present (and absent when asked for clean data).

use flowkey::db::{Db, Engine};
use flowkey::migrate::revisions::legacy::{LEGACY_SQL, LEGACY_TABLES};
use flowkey::seed::{seed, Oddities, SeedConfig, SeedError, SeedSummary};

use crate::both_engines;
use crate::support::harness::TestDb;

async fn count(db: &Db, sql: &str) -> i64 {
    flowkey::on_pool!(db, pool => sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|err| panic!("{sql}: {err}")))
}

async fn table_count(db: &Db, table: &str) -> i64 {
    count(db, &format!("SELECT COUNT(*) FROM {table}")).await
}

/// Every row of every legacy table as text, ordered by primary key.
async fn dump(db: &Db) -> Vec<String> {
    let mut rows = Vec::new();
    for table in LEGACY_TABLES {
        let lines: Vec<String> = match db {
            Db::Postgres(pool) => {
                sqlx::query_scalar(&format!("SELECT t::text FROM {table} t ORDER BY id"))
                    .fetch_all(pool)
                    .await
                    .expect("dump postgres table")
            }
            Db::Sqlite(pool) => {
                let columns: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
                        .fetch_all(pool)
                        .await
                        .expect("columns");
                let quoted: Vec<String> = columns.iter().map(|c| format!("quote({c})")).collect();
                sqlx::query_scalar(&format!(
                    "SELECT {} FROM {table} ORDER BY id",
                    quoted.join(" || ',' || ")
                ))
                .fetch_all(pool)
                .await
                .expect("dump sqlite table")
            }
        };
        rows.extend(lines.into_iter().map(|line| format!("{table}: {line}")));
    }
    rows
}

async fn assert_foreign_keys_hold(db: &Db) {
    // PostgreSQL enforces them on insert; SQLite is asked to check every one.
    if let Db::Sqlite(pool) = db {
        let violations: Vec<(String,)> = sqlx::query_as("PRAGMA foreign_key_check")
            .fetch_all(pool)
            .await
            .expect("foreign key check");
        assert!(
            violations.is_empty(),
            "foreign key violations: {violations:?}"
        );
    }
}

fn assert_summary_matches(summary: &SeedSummary, config: &SeedConfig) {
    let tenants = u64::from(config.tenants);
    let imports = tenants * u64::from(config.imports_per_tenant);
    assert_eq!(summary.rows("client_accounts"), tenants);
    assert_eq!(summary.rows("engagements"), tenants);
    assert_eq!(summary.rows("users"), 3 * tenants);
    assert_eq!(summary.rows("data_imports"), imports);
    assert_eq!(
        summary.rows("raw_import_records"),
        imports * u64::from(config.rows_per_import)
    );
    assert_eq!(
        summary.rows("import_field_mappings"),
        imports * u64::from(config.field_mappings_per_import)
    );
    assert_eq!(summary.rows("flow_deletion_audit"), imports);
    assert_eq!(
        summary.rows("access_audit_log"),
        imports * u64::from(config.access_logs_per_import)
    );
    assert_eq!(
        summary.rows("llm_usage_logs"),
        imports * u64::from(config.llm_logs_per_import)
    );
}

async fn seed_fills_an_empty_database(test_db: TestDb) {
    let db = test_db.connect().await;
    let config = SeedConfig {
        rows_per_import: 25,
        ..SeedConfig::default()
    };
    let summary = seed(&db, &config).await.expect("seed");
    assert!(summary.created_schema);
    assert_eq!(summary.existing_sessions, 0);
    assert_summary_matches(&summary, &config);
    for table in LEGACY_TABLES {
        let rows = table_count(&db, table).await;
        assert!(rows > 0, "{table} is empty");
        assert_eq!(rows as u64, summary.rows(table), "{table}");
    }
    // One asset per 10 rows: rows 1, 11 and 21 of each import.
    assert_eq!(table_count(&db, "assets").await, 16 * 3);
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM raw_import_records WHERE row_number < 1 OR row_number > 25"
        )
        .await,
        0
    );
    assert_foreign_keys_hold(&db).await;
}
both_engines!(
    seed_fills_an_empty_legacy_database_with_the_configured_counts,
    seed_fills_an_empty_database
);

async fn same_seed_same_data(test_db: TestDb) {
    let other = TestDb::fresh(test_db.engine).await;
    let (first, second) = (test_db.connect().await, other.connect().await);
    let config = SeedConfig::default();
    seed(&first, &config).await.expect("first seed");
    seed(&second, &config).await.expect("second seed");
    let (one, two) = (dump(&first).await, dump(&second).await);
    assert!(one.len() > 600, "{}", one.len());
    assert_eq!(one, two);

    let third_db = TestDb::fresh(test_db.engine).await;
    let third = third_db.connect().await;
    seed(&third, &SeedConfig { seed: 7, ..config })
        .await
        .expect("other seed");
    assert_ne!(one, dump(&third).await, "another seed gives other data");
}
both_engines!(
    the_same_seed_on_two_empty_databases_gives_identical_data,
    same_seed_same_data
);

async fn seeding_adds_to_a_legacy_database(test_db: TestDb) {
    test_db
        .run_script(LEGACY_SQL.for_engine(test_db.engine))
        .await;
    let db = test_db.connect().await;
    let config = SeedConfig::default();
    let first = seed(&db, &config).await.expect("first seed");
    assert!(!first.created_schema);
    let after_first: Vec<i64> = counts(&db).await;
    // The same seed again: the existing sessions change the stream, so nothing collides.
    let second = seed(&db, &config).await.expect("second seed");
    assert_eq!(second.existing_sessions, first.rows("data_import_sessions"));
    let after_second = counts(&db).await;
    for ((table, once), twice) in LEGACY_TABLES.iter().zip(&after_first).zip(&after_second) {
        assert_eq!(*twice, once + second.rows(table) as i64, "{table}");
        assert!(twice > once, "{table} did not grow");
    }
    assert_eq!(
        count(&db, "SELECT COUNT(DISTINCT flow_id) FROM discovery_flows").await,
        after_second[8]
    );
    assert_foreign_keys_hold(&db).await;
}
both_engines!(
    seeding_a_legacy_database_adds_rows_without_collisions,
    seeding_adds_to_a_legacy_database
);

async fn counts(db: &Db) -> Vec<i64> {
    let mut out = Vec::new();
    for table in LEGACY_TABLES {
        out.push(table_count(db, table).await);
    }
    out
}

/// Each oddity of shared/legacy/README.md and a query counting its rows.
const ODDITIES: &[(&str, &str)] = &[
    (
        "flow import_session_id holds a data_imports.id",
        "SELECT COUNT(*) FROM discovery_flows f JOIN data_imports i ON i.id = f.import_session_id",
    ),
    (
        "flow import_session_id points nowhere",
        "SELECT COUNT(*) FROM discovery_flows f WHERE f.import_session_id IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM data_import_sessions s WHERE s.id = f.import_session_id) \
         AND NOT EXISTS (SELECT 1 FROM data_imports i WHERE i.id = f.import_session_id)",
    ),
    (
        "several flows of one tenant claim a session, at distinct times",
        "SELECT COUNT(*) FROM (SELECT f.import_session_id FROM discovery_flows f \
         JOIN data_import_sessions s ON s.id = f.import_session_id \
         AND s.client_account_id = f.client_account_id \
         GROUP BY f.import_session_id \
         HAVING COUNT(*) > 1 AND COUNT(DISTINCT f.created_at) > 1) claimed",
    ),
    (
        "two flows of one tenant claim a session with the same created_at",
        "SELECT COUNT(*) FROM discovery_flows a JOIN discovery_flows b \
         ON a.import_session_id = b.import_session_id AND a.created_at = b.created_at \
         AND a.client_account_id = b.client_account_id AND a.id < b.id",
    ),
    (
        "a session id is its own tenant's flow_id",
        "SELECT COUNT(*) FROM data_import_sessions s JOIN discovery_flows f \
         ON f.flow_id = s.id AND f.client_account_id = s.client_account_id",
    ),
    (
        "a session id is another tenant's flow_id",
        "SELECT COUNT(*) FROM data_import_sessions s JOIN discovery_flows f \
         ON f.flow_id = s.id AND f.client_account_id <> s.client_account_id",
    ),
    (
        "a flow of another tenant claims a session",
        "SELECT COUNT(*) FROM discovery_flows f JOIN data_import_sessions s \
         ON s.id = f.import_session_id AND f.client_account_id <> s.client_account_id \
         WHERE f.client_account_id <> '11111111-1111-1111-1111-111111111111'",
    ),
    (
        "a session with data has no flow",
        "SELECT COUNT(*) FROM data_import_sessions s \
         WHERE NOT EXISTS (SELECT 1 FROM discovery_flows f WHERE f.import_session_id = s.id) \
         AND EXISTS (SELECT 1 FROM data_imports i WHERE i.session_id = s.id)",
    ),
    (
        "a flow has neither session nor import",
        "SELECT COUNT(*) FROM discovery_flows WHERE import_session_id IS NULL AND data_import_id IS NULL",
    ),
    (
        "an import without session is reached by data_import_id",
        "SELECT COUNT(*) FROM data_imports i JOIN discovery_flows f ON f.data_import_id = i.id \
         WHERE i.session_id IS NULL",
    ),
    (
        "a raw record has no session while its import has one",
        "SELECT COUNT(*) FROM raw_import_records r JOIN data_imports i ON i.id = r.data_import_id \
         WHERE r.session_id IS NULL AND i.session_id IS NOT NULL",
    ),
    (
        "a flow under the placeholder tenant claims a real tenant's session",
        "SELECT COUNT(*) FROM discovery_flows f JOIN data_import_sessions s ON s.id = f.import_session_id \
         WHERE f.client_account_id = '11111111-1111-1111-1111-111111111111' \
         AND f.engagement_id = '11111111-1111-1111-1111-111111111111'",
    ),
    (
        "a raw record's tenant disagrees with its session's",
        "SELECT COUNT(*) FROM raw_import_records r JOIN data_import_sessions s ON s.id = r.session_id \
         WHERE r.client_account_id <> s.client_account_id",
    ),
    (
        "an import's tenant disagrees with its session's",
        "SELECT COUNT(*) FROM data_imports r JOIN data_import_sessions s ON s.id = r.session_id \
         WHERE r.client_account_id <> s.client_account_id",
    ),
    (
        "an access log row's tenant disagrees with its session's",
        "SELECT COUNT(*) FROM access_audit_log r JOIN data_import_sessions s ON s.id = r.session_id \
         WHERE r.client_account_id <> s.client_account_id",
    ),
    (
        "an llm log row's tenant disagrees with its session's",
        "SELECT COUNT(*) FROM llm_usage_logs r JOIN data_import_sessions s \
         ON CAST(s.id AS TEXT) = r.session_id WHERE r.client_account_id <> s.client_account_id",
    ),
    (
        "a raw record has NULL tenant columns",
        "SELECT COUNT(*) FROM raw_import_records WHERE client_account_id IS NULL AND engagement_id IS NULL",
    ),
    (
        "an import has NULL tenant columns",
        "SELECT COUNT(*) FROM data_imports WHERE client_account_id IS NULL AND engagement_id IS NULL",
    ),
    (
        "an access log row has NULL tenant columns",
        "SELECT COUNT(*) FROM access_audit_log WHERE client_account_id IS NULL AND engagement_id IS NULL",
    ),
    (
        "an llm log row has NULL tenant columns",
        "SELECT COUNT(*) FROM llm_usage_logs WHERE client_account_id IS NULL AND engagement_id IS NULL",
    ),
    (
        "a deletion audit row names a session that does not exist",
        "SELECT COUNT(*) FROM flow_deletion_audit d \
         WHERE NOT EXISTS (SELECT 1 FROM data_import_sessions s WHERE s.id = d.session_id)",
    ),
    (
        "an llm session id is disc_session_<uuid>",
        "SELECT COUNT(*) FROM llm_usage_logs WHERE LOWER(SUBSTR(session_id, 1, 13)) = 'disc_session_' \
         AND LENGTH(session_id) = 49",
    ),
    (
        "an llm session id is session-<uuid> in mixed case",
        "SELECT COUNT(*) FROM llm_usage_logs WHERE LOWER(SUBSTR(session_id, 1, 8)) = 'session-' \
         AND session_id <> LOWER(session_id) AND LENGTH(session_id) = 44",
    ),
    (
        "an llm session id is empty",
        "SELECT COUNT(*) FROM llm_usage_logs WHERE session_id = ''",
    ),
    (
        "an llm session id is garbage",
        "SELECT COUNT(*) FROM llm_usage_logs WHERE session_id <> '' AND LENGTH(session_id) < 36",
    ),
    (
        "an llm session id is NULL",
        "SELECT COUNT(*) FROM llm_usage_logs WHERE session_id IS NULL",
    ),
    (
        "an llm session id is a bare uuid naming no session",
        "SELECT COUNT(*) FROM llm_usage_logs l WHERE LENGTH(l.session_id) = 36 \
         AND NOT EXISTS (SELECT 1 FROM data_import_sessions s WHERE CAST(s.id AS TEXT) = l.session_id)",
    ),
    (
        "a flow status holds a phase name",
        "SELECT COUNT(*) FROM discovery_flows WHERE status IN ('data_import', 'field_mapping', \
         'attribute_mapping', 'data_cleansing', 'inventory', 'dependencies', 'tech_debt')",
    ),
    (
        "a flow state holds session_id",
        "SELECT COUNT(*) FROM discovery_flows WHERE crewai_state_data ->> 'session_id' IS NOT NULL",
    ),
    (
        "a flow state holds original_session_id",
        "SELECT COUNT(*) FROM discovery_flows WHERE crewai_state_data ->> 'original_session_id' IS NOT NULL",
    ),
    (
        "an import config holds validation_session_id",
        "SELECT COUNT(*) FROM data_imports WHERE import_config ->> 'validation_session_id' IS NOT NULL",
    ),
];

async fn every_oddity_is_present(test_db: TestDb) {
    let db = test_db.connect().await;
    seed(&db, &SeedConfig::default()).await.expect("seed");
    let mut absent = Vec::new();
    for (oddity, sql) in ODDITIES {
        if count(&db, sql).await == 0 {
            absent.push(*oddity);
        }
    }
    assert!(absent.is_empty(), "oddities missing: {absent:#?}");
    assert_foreign_keys_hold(&db).await;
}
both_engines!(
    every_legacy_oddity_is_present_at_the_default_rates,
    every_oddity_is_present
);

async fn clean_data_has_no_oddity(test_db: TestDb) {
    let db = test_db.connect().await;
    let config = SeedConfig {
        oddities: Oddities::none(),
        ..SeedConfig::default()
    };
    seed(&db, &config).await.expect("seed");
    let mut present = Vec::new();
    for (oddity, sql) in ODDITIES {
        let rows = count(&db, sql).await;
        if rows > 0 {
            present.push((*oddity, rows));
        }
    }
    assert!(present.is_empty(), "oddities in clean data: {present:#?}");
    // Clean data still has a flow for every session.
    assert_eq!(
        table_count(&db, "discovery_flows").await,
        table_count(&db, "data_import_sessions").await
    );
}
both_engines!(no_oddities_gives_clean_data, clean_data_has_no_oddity);

async fn a_rate_scales_its_oddity(test_db: TestDb) {
    let db = test_db.connect().await;
    let mut oddities = Oddities::none();
    oddities.flow_import_session_is_import_id = 0.5;
    oddities.raw_record_without_session = 0.25;
    let config = SeedConfig {
        tenants: 1,
        imports_per_tenant: 10,
        oddities,
        ..SeedConfig::default()
    };
    seed(&db, &config).await.expect("seed");
    assert_eq!(count(&db, ODDITIES[0].1).await, 5);
    assert_eq!(count(&db, ODDITIES[10].1).await, 50);
}
both_engines!(
    an_oddity_rate_is_the_proportion_of_its_candidates,
    a_rate_scales_its_oddity
);

async fn partial_legacy_database_is_refused(test_db: TestDb) {
    test_db
        .run_script(LEGACY_SQL.for_engine(test_db.engine))
        .await;
    let db = test_db.connect().await;
    db.execute_plain("DROP TABLE llm_usage_logs")
        .await
        .expect("drop");
    let err = seed(&db, &SeedConfig::default())
        .await
        .expect_err("a partial schema is refused");
    assert!(
        matches!(&err, SeedError::PartialLegacySchema { missing, .. } if missing == "llm_usage_logs"),
        "{err}"
    );
    assert_eq!(table_count(&db, "data_import_sessions").await, 0);
}
both_engines!(
    a_partial_legacy_database_is_refused,
    partial_legacy_database_is_refused
);

async fn invalid_rate_is_refused(test_db: TestDb) {
    let db = test_db.connect().await;
    let oddities = Oddities {
        child_tenant_null: 1.5,
        ..Oddities::default()
    };
    let err = seed(
        &db,
        &SeedConfig {
            oddities,
            ..SeedConfig::default()
        },
    )
    .await
    .expect_err("a rate above 1 is refused");
    assert!(
        matches!(
            err,
            SeedError::InvalidRate {
                name: "child_tenant_null",
                ..
            }
        ),
        "{err}"
    );
    if test_db.engine == Engine::Sqlite {
        assert_eq!(
            count(
                &db,
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
            )
            .await,
            0,
            "nothing is created before the config is checked"
        );
    }
}
both_engines!(an_oddity_rate_above_one_is_refused, invalid_rate_is_refused);

/// SHA-256 of [`dump`], one line per row.
async fn dump_digest(db: &Db) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for line in dump(db).await {
        hasher.update(line.as_bytes());
        hasher.update(b"\n");
    }
    hex::encode(hasher.finalize())
}

/// The seed's output is part of its contract (rehearsals and benchmarks compare runs made
/// by different builds): these digests were computed once, from the generator before the
/// oddities were declared in one table and `generate.rs` was split, and pinned. A change
/// to what a seed produces must be deliberate and update them.
async fn seeded_rows_are_pinned(test_db: TestDb) {
    let odd = SeedConfig {
        seed: 2024,
        tenants: 3,
        imports_per_tenant: 7,
        rows_per_import: 31,
        oddities: Oddities {
            import_without_session: 0.2,
            session_without_flow: 0.15,
            flow_under_placeholder_tenant: 0.3,
            session_claimed_by_foreign_flow: 0.3,
            child_tenant_mismatch: 0.25,
            llm_session_id_odd: 1.0,
            ..Oddities::default()
        },
        ..SeedConfig::default()
    };
    let expected: [(SeedConfig, &str, &str); 2] = [
        (
            SeedConfig::default(),
            "0aa6d7c672c21286a19a97407c0bab5f4652b900df212d01e0eb14a4d88b1842",
            "3247ad58997ee553746ac5c69f27a3229a6af19c0d182a007d825a6772f2fb98",
        ),
        (
            odd,
            "c6837d721c64036111d954719e4c918de1dc5d64133551630f5b4ba3a7c70766",
            "59769a9fdbde270a0a93b9aadfa5d6b961603eacd6496ea911684eaf27cea8e8",
        ),
    ];
    for (config, sqlite, postgres) in expected {
        let fresh = TestDb::fresh(test_db.engine).await;
        let db = fresh.connect().await;
        seed(&db, &config).await.expect("seed");
        let digest = dump_digest(&db).await;
        let pinned = match test_db.engine {
            Engine::Sqlite => sqlite,
            Engine::Postgres => postgres,
        };
        assert_eq!(digest, pinned, "seed {} changed its rows", config.seed);
    }
}
both_engines!(
    a_fixed_seed_gives_the_pinned_rows_on_both_engines,
    seeded_rows_are_pinned
);

async fn per_import_counts_shape_the_data(test_db: TestDb) {
    let db = test_db.connect().await;
    let config = SeedConfig {
        imports_per_tenant: 3,
        field_mappings_per_import: 30,
        access_logs_per_import: 5,
        llm_logs_per_import: 0,
        ..SeedConfig::default()
    };
    let summary = seed(&db, &config).await.expect("seed");
    assert_summary_matches(&summary, &config);
    assert_eq!(table_count(&db, "import_field_mappings").await, 6 * 30);
    assert_eq!(table_count(&db, "access_audit_log").await, 6 * 5);
    assert_eq!(table_count(&db, "llm_usage_logs").await, 0);
    // Past the 13 columns of the export, columns are mapped again under a numbered name.
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(DISTINCT source_field) FROM import_field_mappings"
        )
        .await,
        30
    );
    assert_eq!(summary.oddities, config.oddities);
    assert_foreign_keys_hold(&db).await;
}
both_engines!(
    per_import_counts_set_field_mappings_and_logs_per_import,
    per_import_counts_shape_the_data
);

/// `flowkey seed` with flags derived from the oddity declarations: a `--rate-*` flag sets its
/// oddity (on top of `--no-oddities`), the summary prints every rate, and a rate out of
/// range is refused with the oddity named and nothing written.
async fn rate_flags_reach_the_generator(test_db: TestDb) {
    let seed_cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_flowkey"))
            .env_remove("DATABASE_URL")
            .env_remove("RUST_LOG")
            .args(["--database-url", &test_db.url, "seed", "--no-progress"])
            .args(args)
            .output()
            .expect("flowkey runs")
    };
    let refused = seed_cli(&["--rate-child-tenant-null", "1.5"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("child_tenant_null is 1.5"), "{stderr}");

    let output = seed_cli(&[
        "--no-oddities",
        "--rate-session-without-flow",
        "1",
        "--imports",
        "4",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    for spec in &flowkey::seed::ODDITIES {
        assert!(stdout.contains(spec.name), "{} not in {stdout}", spec.name);
    }
    let db = test_db.connect().await;
    // Every session has data and no flow; no other oddity is present.
    assert_eq!(table_count(&db, "data_import_sessions").await, 8);
    assert_eq!(table_count(&db, "discovery_flows").await, 0);
    for (oddity, sql) in ODDITIES {
        let expected = if *oddity == "a session with data has no flow" {
            8
        } else {
            0
        };
        assert_eq!(count(&db, sql).await, expected, "{oddity}");
    }
}
both_engines!(
    oddity_rate_flags_set_their_oddity_and_out_of_range_is_refused,
    rate_flags_reach_the_generator
);
