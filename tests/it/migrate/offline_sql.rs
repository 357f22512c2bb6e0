//! Coverage of paths that need no database: the offline script of every revision in both
//! directions on both engines, every schema difference the comparison can find and how it
//! reads, and how refusals, verify and report failures read.

use std::collections::{BTreeMap, BTreeSet};

use flowkey::db::introspect::{Check, Column, ForeignKey, Index, Schema, Table};
use flowkey::db::Engine;
use flowkey::migrate::flow::rehearse::{RehearsalReport, RehearsalTimings};
use flowkey::migrate::flow::report::{MigrationReport, TableReport, UnlinkedReasons};
use flowkey::migrate::flow::verify::{
    FingerprintComparison, MappingVerification, OffendingRow, TableVerification, VerifyReport,
};
use flowkey::migrate::flow::FlowMigrationError;
use flowkey::migrate::revisions;
use flowkey::migrate::{offline_sql, Action, Direction, MigrateError};

const ENGINES: [Engine; 2] = [Engine::Sqlite, Engine::Postgres];

/// Each revision alone, up from the one before it and down to the one before it: the script
/// names the revision, every one of its steps, and carries its SQL or its code description.
#[test]
fn the_offline_script_of_every_revision_shows_every_step_both_ways() {
    let chain = revisions::all();
    for engine in ENGINES {
        for (index, revision) in chain.iter().enumerate() {
            let before = index.checked_sub(1).map(|i| chain[i].id);
            let up = offline_sql(chain, engine, before, revision.id, Direction::Up)
                .unwrap_or_else(|err| panic!("{} up on {engine}: {err}", revision.id));
            let down = offline_sql(
                chain,
                engine,
                Some(revision.id),
                before.unwrap_or("base"),
                Direction::Down,
            )
            .unwrap_or_else(|err| panic!("{} down on {engine}: {err}", revision.id));
            for (script, steps, recorded) in [
                (&up, revision.up, "applied"),
                (&down, revision.down, "reverted"),
            ] {
                assert!(
                    script.contains(&format!("-- revision {} (", revision.id)),
                    "{script}"
                );
                assert!(
                    script.contains(&format!(
                        "-- flowkey records revision {} as {recorded}",
                        revision.id
                    )),
                    "{script}"
                );
                for (number, step) in steps.iter().enumerate() {
                    let header = format!("-- step {}/{}: {}", number + 1, steps.len(), step.name);
                    assert!(script.contains(&header), "missing {header:?} in\n{script}");
                    // PostgreSQL's runnable script shows a code step or check as its plain-SQL
                    // form, or stops there; SQLite's describes it by the SQL it runs.
                    let body = match (&step.action, engine) {
                        (Action::Sql(sql) | Action::OnlineDdl(sql), _) => sql.for_engine(engine),
                        (
                            Action::Code { offline, .. } | Action::Check { offline, .. },
                            Engine::Postgres,
                        ) => match offline.map(|sql| sql.for_engine(engine)) {
                            Some(text) if !text.trim().is_empty() => text,
                            _ => "this step runs only in flowkey; what it runs:".into(),
                        },
                        (Action::Code { sql, .. } | Action::Check { sql, .. }, Engine::Sqlite) => {
                            sql.for_engine(engine)
                        }
                    };
                    let first_line = body
                        .lines()
                        .map(str::trim)
                        .find(|line| !line.is_empty())
                        .unwrap_or_default();
                    assert!(
                        script.contains(first_line),
                        "{} {}: {first_line:?} missing",
                        revision.id,
                        step.name
                    );
                }
            }
        }
    }
}

#[test]
fn online_ddl_is_shown_statement_by_statement_on_postgres_only() {
    let chain = revisions::all();
    let postgres = offline_sql(chain, Engine::Postgres, None, "head", Direction::Up).unwrap();
    let sqlite = offline_sql(chain, Engine::Sqlite, None, "head", Direction::Up).unwrap();
    let marker = "-- online DDL: each statement alone";
    let has_online_step = chain.iter().any(|revision| {
        revision
            .up
            .iter()
            .any(|step| matches!(step.action, Action::OnlineDdl(_)))
    });
    assert!(has_online_step, "the chain has online DDL");
    assert!(postgres.contains(marker), "{postgres}");
    assert!(!sqlite.contains(marker), "{sqlite}");
    assert!(postgres.contains("CONCURRENTLY"), "{postgres}");
}

#[test]
fn offline_scripts_from_head_and_to_the_same_place_say_so() {
    let chain = revisions::all();
    let head = revisions::head().id;
    let nothing = offline_sql(chain, Engine::Sqlite, Some("head"), "head", Direction::Up).unwrap();
    assert!(nothing.contains("-- nothing to do"), "{nothing}");
    assert!(
        nothing.contains(&format!("from {head} to {head}")),
        "{nothing}"
    );
    let all_down = offline_sql(
        chain,
        Engine::Postgres,
        Some("head"),
        "base",
        Direction::Down,
    )
    .unwrap();
    for revision in chain.iter().filter(|r| !revisions::is_after_head(r.id)) {
        assert!(
            all_down.contains(&format!(
                "-- flowkey records revision {} as reverted",
                revision.id
            )),
            "{all_down}"
        );
    }
    let one_down =
        offline_sql(chain, Engine::Postgres, Some("head"), "-1", Direction::Down).unwrap();
    assert_eq!(one_down.matches("as reverted").count(), 1, "{one_down}");
    let two_up = offline_sql(chain, Engine::Sqlite, Some("legacy"), "+2", Direction::Up).unwrap();
    assert_eq!(two_up.matches("as applied").count(), 2, "{two_up}");
    // Nothing planned: `+0`, or head from head; each engine's script says so and runs nothing.
    for engine in [Engine::Sqlite, Engine::Postgres] {
        for (from, target) in [(None, "+0"), (Some("head"), "head")] {
            let nothing = offline_sql(chain, engine, from, target, Direction::Up).unwrap();
            assert!(nothing.contains("-- nothing to do"), "{nothing}");
            assert!(!nothing.contains("as applied"), "{nothing}");
        }
    }
}

#[test]
fn offline_scripts_refuse_unknown_and_unreachable_places() {
    let chain = revisions::all();
    let unknown_from = offline_sql(
        chain,
        Engine::Sqlite,
        Some("nowhere"),
        "head",
        Direction::Up,
    )
    .expect_err("unknown start");
    assert!(
        matches!(&unknown_from, MigrateError::UnknownTarget { target, known } if target == "nowhere" && known.contains("legacy")),
        "{unknown_from}"
    );
    // Offline, an upgrade to a revision already passed plans nothing (the online runner
    // refuses it; see `the_real_chain_refuses_targets_it_cannot_reach`).
    let backwards =
        offline_sql(chain, Engine::Sqlite, Some("head"), "legacy", Direction::Up).unwrap();
    assert!(backwards.contains("-- nothing to do"), "{backwards}");
    let forwards = offline_sql(chain, Engine::Sqlite, None, "head", Direction::Down)
        .expect_err("downgrade forwards");
    assert!(
        forwards.to_string().starts_with("cannot downgrade"),
        "{forwards}"
    );
    let refused = [
        (None, "+99", Direction::Up),
        (None, "+x", Direction::Up),
        (None, "base", Direction::Up),
        (Some("head"), "-99", Direction::Down),
        (Some("head"), "-x", Direction::Down),
        (Some("head"), "head", Direction::Down),
        (None, "-1", Direction::Down),
        (Some("legacy"), "flow_expand", Direction::Down),
    ];
    for (from, target, direction) in refused {
        let err =
            offline_sql(chain, Engine::Postgres, from, target, direction).expect_err("refused");
        assert!(
            matches!(
                err,
                MigrateError::UnreachableTarget { .. } | MigrateError::UnknownTarget { .. }
            ),
            "{from:?} {target}: {err}"
        );
    }
}

fn column(data_type: &str, not_null: bool, default: Option<&str>) -> Column {
    Column {
        data_type: data_type.into(),
        not_null,
        default: default.map(Into::into),
    }
}

fn foreign_key(on_delete: &str, validated: bool) -> ForeignKey {
    ForeignKey {
        columns: vec!["flow_id".into()],
        references_table: "discovery_flows".into(),
        references_columns: vec!["flow_id".into()],
        on_delete: on_delete.into(),
        on_update: "NO ACTION".into(),
        validated,
    }
}

/// Two hand-made schemas that differ in every way the comparison knows.
fn every_kind_of_difference() -> (Schema, Schema) {
    let index = |columns: &[&str], unique: bool, predicate: Option<&str>, valid: bool| Index {
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        unique,
        predicate: predicate.map(Into::into),
        valid,
    };
    let check = |definition: &str, validated: bool| Check {
        definition: definition.into(),
        validated,
    };
    let database = Table {
        columns: BTreeMap::from([
            ("id".into(), column("uuid", true, None)),
            ("flow_id".into(), column("uuid", false, Some("gen()"))),
            ("extra".into(), column("text", false, None)),
        ]),
        primary_key: vec!["id".into()],
        unique_constraints: BTreeSet::from([vec!["id".into(), "flow_id".into()]]),
        foreign_keys: BTreeSet::from([foreign_key("CASCADE", false)]),
        indexes: BTreeMap::from([
            (
                "ix_same_name".into(),
                index(&["flow_id"], true, Some("flow_id IS NOT NULL"), false),
            ),
            (
                "ix_only_database".into(),
                index(&["extra"], false, None, true),
            ),
        ]),
        checks: BTreeMap::from([
            ("ck_same_name".into(), check("flow_id <> id", false)),
            ("ck_only_database".into(), check("extra <> ''", true)),
        ]),
        triggers: BTreeSet::from(["trg_only_database".into()]),
    };
    let expected = Table {
        columns: BTreeMap::from([
            ("id".into(), column("text", false, None)),
            ("flow_id".into(), column("uuid", false, None)),
            ("missing".into(), column("text", false, None)),
        ]),
        primary_key: vec!["id".into(), "flow_id".into()],
        unique_constraints: BTreeSet::from([vec!["missing".into()]]),
        foreign_keys: BTreeSet::from([foreign_key("NO ACTION", true)]),
        indexes: BTreeMap::from([
            (
                "ix_same_name".into(),
                index(&["flow_id"], false, None, true),
            ),
            (
                "ix_only_expected".into(),
                index(&["missing"], false, None, true),
            ),
        ]),
        checks: BTreeMap::from([
            ("ck_same_name".into(), check("flow_id IS NOT NULL", true)),
            ("ck_only_expected".into(), check("missing <> ''", true)),
        ]),
        triggers: BTreeSet::from(["trg_only_expected".into()]),
    };
    let schema = |shared: Table, own_table: &str, view: &str, function: &str| Schema {
        engine: Engine::Postgres,
        tables: BTreeMap::from([
            ("assets".into(), shared),
            (own_table.into(), Table::default()),
        ]),
        views: BTreeSet::from([view.into()]),
        functions: BTreeSet::from([function.into()]),
    };
    (
        schema(database, "only_database", "v_database", "f_database(uuid)"),
        schema(expected, "only_expected", "v_expected", "f_expected(text)"),
    )
}

#[test]
fn every_schema_difference_is_found_and_reads_as_one_line() {
    let (database, expected) = every_kind_of_difference();
    assert!(!database.is_empty());
    assert!(database.diff(&database).is_empty());
    let lines: Vec<String> = database
        .diff(&expected)
        .iter()
        .map(ToString::to_string)
        .collect();
    let wanted = [
        "table only_database exists only in the database",
        "table only_expected exists only in the expected schema",
        "view v_database exists only in the database",
        "view v_expected exists only in the expected schema",
        "function f_database(uuid) exists only in the database",
        "function f_expected(text) exists only in the expected schema",
        "table assets: column extra exists only in the database",
        "table assets: column missing exists only in the expected schema",
        "table assets: column id type is uuid in the database, text expected",
        "table assets: column id not null is true in the database, false expected",
        "table assets: column flow_id default is gen() in the database, none expected",
        "table assets: primary key is (id) in the database, (id, flow_id) expected",
        "table assets: unique constraint on (id, flow_id) exists only in the database",
        "table assets: unique constraint on (missing) exists only in the expected schema",
        "table assets: foreign key (flow_id) references discovery_flows(flow_id) on delete cascade not valid exists only in the database",
        "table assets: foreign key (flow_id) references discovery_flows(flow_id) on delete no action exists only in the expected schema",
        "table assets: index ix_only_database exists only in the database",
        "table assets: index ix_only_expected exists only in the expected schema",
        "table assets: index ix_same_name is unique (flow_id) where flow_id IS NOT NULL invalid in the database, (flow_id) expected",
        "table assets: check constraint ck_only_database exists only in the database",
        "table assets: check constraint ck_only_expected exists only in the expected schema",
        "table assets: check constraint ck_same_name is flow_id <> id not valid in the database, flow_id IS NOT NULL expected",
        "table assets: trigger trg_only_database exists only in the database",
        "table assets: trigger trg_only_expected exists only in the expected schema",
    ];
    for line in wanted {
        assert!(
            lines.iter().any(|found| found == line),
            "missing {line:?} in\n{}",
            lines.join("\n")
        );
    }
    assert_eq!(lines.len(), wanted.len(), "{}", lines.join("\n"));
    let refusal = MigrateError::ForeignSchema {
        revision: "legacy".into(),
        count: 1,
        differences: database.diff(&expected).into_iter().take(1).collect(),
    };
    assert!(
        refusal.to_string().starts_with(
            "the tables flowkey migrates are not what revision legacy needs (1 incompatible items): table"
        ),
        "{refusal}"
    );
}

#[test]
fn every_refusal_names_its_diagnosis_and_the_way_out() {
    let cases: Vec<(MigrateError, &str)> = vec![
        (
            MigrateError::StepFailed {
                revision: "flow_expand".into(),
                step: "add columns".into(),
                message: "boom".into(),
            },
            "step \"add columns\" of revision \"flow_expand\" failed: boom",
        ),
        (
            MigrateError::ChecksumMismatch {
                revision: "legacy".into(),
                in_database: "aaa".into(),
                in_flowkey: "bbb".into(),
            },
            "`flowkey stamp legacy --force`",
        ),
        (
            MigrateError::UnknownAppliedRevision {
                revision: "future".into(),
            },
            "the database records revision \"future\", which this flowkey does not know",
        ),
        (
            MigrateError::Dirty {
                revision: "flow_backfill".into(),
                direction: "up".into(),
                steps_done: 1,
                steps: 3,
                before: "flow_expand".into(),
                reason: "it does not follow".into(),
            },
            "`flowkey stamp flow_expand --force` if it is fully undone",
        ),
        (
            MigrateError::Locked {
                holder: "host pid 1".into(),
                since: "then".into(),
            },
            "the deploy lock is held by host pid 1 since then",
        ),
        (
            FlowMigrationError::LegacyTableTextMissing {
                table: "assets".into(),
            }
            .into(),
            "the legacy schema text has no CREATE TABLE for assets",
        ),
        (
            FlowMigrationError::RebuildBreaksForeignKeys {
                table: "assets".into(),
                violations: 2,
            }
            .into(),
            "rebuilding assets on sqlite would add 2 foreign key violations",
        ),
        (
            FlowMigrationError::NoFingerprint.into(),
            "no pre-migration fingerprint is stored",
        ),
        (
            FlowMigrationError::VerificationFailed {
                summary: "assets: 1 rows with wrong flow".into(),
            }
            .into(),
            "verification failed: assets: 1 rows with wrong flow",
        ),
        (
            FlowMigrationError::RestoredSessionClash {
                flow_id: "f".into(),
            }
            .into(),
            "a session with the id of flow f exists but maps to another flow",
        ),
        (
            FlowMigrationError::RehearsalCopy {
                reason: "busy".into(),
            }
            .into(),
            "cannot copy the database for a rehearsal: busy",
        ),
        (
            sqlx::Error::RowNotFound.into(),
            "no rows returned by a query that expected to return at least one row",
        ),
    ];
    for (error, wanted) in cases {
        let text = error.to_string();
        assert!(text.contains(wanted), "{text:?} lacks {wanted:?}");
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.ends_with('.'), "{text}");
    }
}

fn failing_verify_report() -> VerifyReport {
    VerifyReport {
        engine: Engine::Sqlite,
        fingerprints: vec![
            FingerprintComparison {
                table: "assets".into(),
                baseline_rows: 3,
                current_rows: 4,
                baseline_hash: "a".into(),
                current_hash: "b".into(),
                same: false,
            },
            FingerprintComparison {
                table: "client_accounts".into(),
                baseline_rows: 1,
                current_rows: 1,
                baseline_hash: "c".into(),
                current_hash: "c".into(),
                same: true,
            },
        ],
        tables: vec![TableVerification {
            table: "assets".into(),
            rows_checked: 4,
            wrong_flow: 1,
            crosses_tenant: 2,
            orphan_flow: 3,
        }],
        mapping: MappingVerification {
            rows: 5,
            orphan_flow: 1,
            tenant_differs_from_flow: 2,
            tenant_differs_from_session: 3,
            sessions_without_mapping: 0,
        },
        offending_rows: vec![OffendingRow {
            table: "assets".into(),
            id: "42".into(),
            problem: "wrong flow".into(),
        }],
        rows_checked: 9,
        elapsed_ms: 7,
        rows_per_second: 1285.7,
        ledger: None,
        online: false,
        backfill_unfinished: Vec::new(),
    }
}

#[test]
fn a_failing_verify_report_names_every_problem() {
    let report = failing_verify_report();
    assert!(!report.is_ok());
    assert!(!report.fingerprints_match());
    assert!(!report.links_are_sound());
    let summary = report.summary();
    for wanted in [
        "assets changed since the fingerprint (3 rows then, 4 now)",
        "assets: 1 rows with wrong flow",
        "assets: 2 rows with crossing tenants",
        "assets: 3 rows with orphan flow",
        "session_flow_mapping: 1 rows naming no flow",
        "session_flow_mapping: 2 rows in another tenant than their flow",
        "session_flow_mapping: 3 rows in another tenant than their session",
    ] {
        assert!(summary.contains(wanted), "{wanted:?} missing in {summary}");
    }
    let shown = report.to_string();
    assert!(shown.contains("CHANGED"), "{shown}");
    assert!(shown.contains("  assets 42: wrong flow"), "{shown}");
    let client_accounts = shown
        .lines()
        .find(|line| line.starts_with("client_accounts"))
        .expect("a line per fingerprinted table");
    assert!(client_accounts.contains(" - "), "{client_accounts}");
    assert!(client_accounts.ends_with("same"), "{client_accounts}");
    assert!(
        shown.contains("9 rows checked in 7 ms (1286 rows/s):"),
        "{shown}"
    );
}

#[test]
fn a_rehearsal_whose_downgrade_differs_says_what_differs() {
    let report = RehearsalReport {
        engine: Engine::Postgres,
        source: "postgres://u:***@h/db".into(),
        timings_ms: RehearsalTimings {
            copy: 1,
            upgrade: 2,
            verify: 3,
            downgrade: 4,
            final_check: 5,
        },
        verify: failing_verify_report(),
        report: MigrationReport {
            engine: Engine::Postgres,
            tables: vec![TableReport {
                table: "llm_usage_logs".into(),
                rows: 10,
                linked: 4,
                unlinked: UnlinkedReasons {
                    no_session: 1,
                    dangling_session: 2,
                    tenant_mismatch: 1,
                    unparseable_id: 2,
                },
            }],
            sessions_mapped: 6,
            ambiguous_sessions: 1,
            cross_tenant_conflicts: 2,
            flows_created: 3,
            not_migrated: Default::default(),
        },
        downgrade_exact: false,
        downgrade_differences: vec!["table assets exists only in the database".into()],
    };
    assert!(!report.is_ok());
    let shown = report.to_string();
    for wanted in [
        "rehearsal on a copy of postgres://u:***@h/db (postgres)",
        "sessions mapped: 6  ambiguous sessions: 1  cross-tenant conflicts: 2  flows created: 3",
        "verify: assets changed since the fingerprint",
        "timings: copy 1 ms, upgrade 2 ms, verify 3 ms, downgrade 4 ms, final check 5 ms",
        "downgrade: DIFFERS: table assets exists only in the database",
    ] {
        assert!(shown.contains(wanted), "{wanted:?} missing in\n{shown}");
    }
    let row = shown
        .lines()
        .find(|line| line.starts_with("llm_usage_logs"))
        .expect("a line per table");
    let numbers: Vec<&str> = row.split_whitespace().skip(1).collect();
    assert_eq!(numbers, ["10", "4", "1", "2", "1", "2"], "{row}");
}

/// The PostgreSQL script sets the runner's `lock_timeout` where the runner does, carries no
/// bind parameter of a batch, and says how to run it (that it runs: `offline_script.rs`).
#[test]
fn the_postgres_script_sets_lock_timeout_and_binds_nothing() {
    let chain = revisions::all();
    let up = offline_sql(
        chain,
        Engine::Postgres,
        Some("legacy"),
        "head",
        Direction::Up,
    )
    .unwrap();
    let down = offline_sql(
        chain,
        Engine::Postgres,
        Some("head"),
        "legacy",
        Direction::Down,
    )
    .unwrap();
    for script in [&up, &down] {
        assert!(script.contains("psql -v ON_ERROR_STOP=1"), "{script}");
        assert!(script.contains("SET lock_timeout = '100ms';"), "{script}");
        assert!(script.contains("RESET lock_timeout;"), "{script}");
        assert!(!script.contains("LIMIT $1"), "{script}");
        assert!(!script.contains("($1)"), "{script}");
    }
    assert!(up.contains("SET LOCAL lock_timeout = '100ms';"), "{up}");
    assert!(up.contains("CREATE INDEX CONCURRENTLY"), "{up}");
}
