//! The revision runner on both engines: legacy schema, round trip, checksums, dirty states,
//! adoption, the deploy lock, online DDL and offline SQL.

// The test bodies are async fns run by `both_engines!`, outside clippy's test detection; a
// panic there is the test failing.

use std::time::Duration;

use flowkey::db::introspect::{introspect, Schema};
use flowkey::db::{Db, Engine};
use flowkey::migrate::lock::DEPLOY_LOCK_KEY;
use flowkey::migrate::revisions::{self, legacy::LEGACY_TABLES};
use flowkey::migrate::{
    Action, AuditEntry, Direction, EngineSql, MigrateError, Migrator, Revision, RunOptions,
    StampMode, Step, StepContext, StepSql,
};
use futures::future::BoxFuture;

use crate::both_engines;
use crate::support::harness::TestDb;

const LEGACY_SQLITE: &str = include_str!("../../../src/migrate/sql/legacy.sqlite.sql");
const LEGACY_POSTGRES: &str = include_str!("../../../src/migrate/sql/legacy.postgres.sql");

fn legacy_script(engine: Engine) -> &'static str {
    match engine {
        Engine::Sqlite => LEGACY_SQLITE,
        Engine::Postgres => LEGACY_POSTGRES,
    }
}

// A small test chain: `t_one` (a table), then `t_two` (an online index), in two variants
// whose `t_two` differ, to prove edited revisions are refused.
const DROP_T_ONE: &str = "DROP TABLE t_one;\n";

static T_ONE: Revision = Revision {
    id: "t_one",
    description: "a test table",
    up: &[Step {
        name: "create t_one",
        action: Action::Sql(StepSql::Fixed(EngineSql {
            sqlite: "CREATE TABLE t_one (id INTEGER PRIMARY KEY, note TEXT);\n",
            postgres: "CREATE TABLE t_one (id integer PRIMARY KEY, note text);\n",
        })),
    }],
    down: &[Step {
        name: "drop t_one",
        action: Action::Sql(StepSql::Fixed(EngineSql {
            sqlite: DROP_T_ONE,
            postgres: DROP_T_ONE,
        })),
    }],
    earlier_checksums: &[],
};

static T_TWO_DOWN: &[Step] = &[Step {
    name: "drop the note index",
    action: Action::OnlineDdl(StepSql::Fixed(EngineSql {
        sqlite: "DROP INDEX IF EXISTS ix_t_one_note;\n",
        postgres: "DROP INDEX CONCURRENTLY IF EXISTS ix_t_one_note;\n",
    })),
}];

static T_TWO_A: Revision = Revision {
    id: "t_two",
    description: "an online index",
    up: &[Step {
        name: "index notes",
        action: Action::OnlineDdl(StepSql::Fixed(EngineSql {
            sqlite: "CREATE INDEX IF NOT EXISTS ix_t_one_note ON t_one (note);\n",
            postgres: "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_t_one_note ON t_one (note);\n",
        })),
    }],
    down: T_TWO_DOWN,
    earlier_checksums: &[],
};

static T_TWO_B: Revision = Revision {
    id: "t_two",
    description: "an online index",
    up: &[Step {
        name: "index notes",
        action: Action::OnlineDdl(StepSql::Fixed(EngineSql {
            sqlite: "CREATE INDEX IF NOT EXISTS ix_t_one_note ON t_one (note, id);\n",
            postgres:
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_t_one_note ON t_one (note, id);\n",
        })),
    }],
    down: T_TWO_DOWN,
    earlier_checksums: &[],
};

static CHAIN_A: [&Revision; 2] = [&T_ONE, &T_TWO_A];
static CHAIN_B: [&Revision; 2] = [&T_ONE, &T_TWO_B];
static ONLY_T_ONE: [&Revision; 1] = [&T_ONE];

// A revision whose code step fails until the database says "go"; its first step is not
// re-runnable on purpose, so a resume that ran it again would fail.
static RESUMABLE: Revision = Revision {
    id: "t_resumable",
    description: "stops half way until told to go",
    up: &[
        Step {
            name: "create t_resume",
            action: Action::Sql(StepSql::Fixed(EngineSql {
                sqlite: "CREATE TABLE t_resume (id INTEGER PRIMARY KEY, note TEXT NOT NULL);\n",
                postgres: "CREATE TABLE t_resume (id integer PRIMARY KEY, note text NOT NULL);\n",
            })),
        },
        Step {
            name: "wait for go",
            action: Action::Code {
                run: wait_for_go,
                sql: StepSql::Fixed(EngineSql {
                    sqlite: "-- fails until t_resume holds a row noted 'go'",
                    postgres: "-- fails until t_resume holds a row noted 'go'",
                }),
                offline: None,
            },
        },
        Step {
            name: "index t_resume",
            action: Action::Sql(StepSql::Fixed(EngineSql {
                sqlite: "CREATE INDEX ix_t_resume_note ON t_resume (note);\n",
                postgres: "CREATE INDEX ix_t_resume_note ON t_resume (note);\n",
            })),
        },
    ],
    down: &[
        Step {
            name: "wait for stop",
            action: Action::Code {
                run: wait_for_stop,
                sql: StepSql::Fixed(EngineSql {
                    sqlite: "-- fails until t_resume holds a row noted 'stop'",
                    postgres: "-- fails until t_resume holds a row noted 'stop'",
                }),
                offline: None,
            },
        },
        Step {
            name: "drop t_resume",
            action: Action::Sql(StepSql::Fixed(EngineSql {
                sqlite: "DROP TABLE t_resume;\n",
                postgres: "DROP TABLE t_resume;\n",
            })),
        },
    ],
    earlier_checksums: &[],
};

static RESUME_CHAIN: [&Revision; 2] = [&T_ONE, &RESUMABLE];

fn wait_for_go<'a>(context: &'a mut StepContext<'_>) -> BoxFuture<'a, Result<(), MigrateError>> {
    Box::pin(async move {
        let go: i64 = flowkey::on_pool!(context.db, pool => {
            sqlx::query_scalar("SELECT count(*) FROM t_resume WHERE note = 'go'")
                .fetch_one(pool)
                .await?
        });
        context
            .audit
            .record("go_checked", serde_json::json!({ "go": go }))
            .await?;
        if go == 0 {
            return Err(MigrateError::StepFailed {
                revision: context.revision.into(),
                step: context.step.into(),
                message: "not told to go yet".into(),
            });
        }
        Ok(())
    })
}

fn wait_for_stop<'a>(context: &'a mut StepContext<'_>) -> BoxFuture<'a, Result<(), MigrateError>> {
    Box::pin(async move {
        let stop: i64 = flowkey::on_pool!(context.db, pool => {
            sqlx::query_scalar("SELECT count(*) FROM t_resume WHERE note = 'stop'")
                .fetch_one(pool)
                .await?
        });
        if stop == 0 {
            return Err(MigrateError::StepFailed {
                revision: context.revision.into(),
                step: context.step.into(),
                message: "not told to stop yet".into(),
            });
        }
        Ok(())
    })
}

fn quick() -> RunOptions {
    RunOptions {
        lock_wait: Duration::from_secs(30),
        ..RunOptions::default()
    }
}

async fn schema_of(db: &Db) -> Schema {
    introspect(db).await.expect("introspects")
}

fn entries<'a>(log: &'a [AuditEntry], event: &'a str) -> impl Iterator<Item = &'a AuditEntry> + 'a {
    log.iter().filter(move |entry| entry.event == event)
}

async fn upgrade_legacy_matches_the_shared_legacy_schema(test_db: TestDb) {
    let by_script = TestDb::fresh(test_db.engine).await;
    by_script.run_script(legacy_script(test_db.engine)).await;
    let db = test_db.connect().await;
    let summary = Migrator::new(db.clone(), quick())
        .upgrade("legacy")
        .await
        .expect("upgrade legacy");
    assert_eq!(summary.to, Some("legacy"));
    let expected = schema_of(&by_script.connect().await).await;
    let actual = schema_of(&db).await;
    assert_eq!(actual.tables.len(), LEGACY_TABLES.len());
    let differences = actual.diff(&expected);
    assert!(differences.is_empty(), "{differences:#?}");
    assert_eq!(actual, expected);
}
both_engines!(
    upgrade_legacy_creates_exactly_the_shared_legacy_schema,
    upgrade_legacy_matches_the_shared_legacy_schema
);

async fn round_trip_leaves_only_flowkey_tables(test_db: TestDb) {
    let db = test_db.connect().await;
    let migrator = Migrator::new(db.clone(), quick());
    let up = migrator.upgrade("head").await.expect("upgrade head");
    assert_eq!(up.to, Some(revisions::head().id));
    assert_eq!(migrator.current().await.unwrap(), up.to);
    let down = migrator.downgrade("base").await.expect("downgrade base");
    assert_eq!(down.to, None);
    assert_eq!(migrator.current().await.unwrap(), None);
    let schema = schema_of(&db).await;
    assert!(schema.is_empty(), "left behind: {:?}", schema.tables.keys());

    // flowkey's own tables survive, and hold every step of both runs.
    let log = migrator.audit_log(10_000).await.unwrap();
    for revision in revisions::all()
        .iter()
        .filter(|revision| !revisions::is_after_head(revision.id))
    {
        for (direction, steps) in [("up", revision.up), ("down", revision.down)] {
            for step in steps {
                let found = entries(&log, "step").any(|entry| {
                    entry.revision.as_deref() == Some(revision.id)
                        && entry.direction.as_deref() == Some(direction)
                        && entry.step.as_deref() == Some(step.name)
                        && entry.outcome == "ok"
                        && entry.finished_at.is_some()
                        && entry.duration_ms.is_some()
                });
                assert!(
                    found,
                    "no audit row for {} {direction} {}",
                    revision.id, step.name
                );
            }
        }
    }
    let runs: Vec<_> = entries(&log, "run").collect();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|run| run.outcome == "ok"
        && !run.host.is_empty()
        && run.flowkey_version == env!("CARGO_PKG_VERSION")));
    let history = migrator.history().await.unwrap();
    assert!(history.iter().all(|entry| !entry.applied));
}
both_engines!(
    upgrade_head_then_downgrade_base_leaves_only_flowkey_tables,
    round_trip_leaves_only_flowkey_tables
);

async fn changed_revision_is_refused(test_db: TestDb) {
    let db = test_db.connect().await;
    Migrator::with_revisions(db.clone(), quick(), &CHAIN_A)
        .upgrade("head")
        .await
        .expect("first chain applies");
    let edited = Migrator::with_revisions(db.clone(), quick(), &CHAIN_B);
    let before = schema_of(&db).await;
    for result in [edited.upgrade("head").await, edited.downgrade("base").await] {
        let err = result.expect_err("an edited revision is refused");
        assert!(
            matches!(&err, MigrateError::ChecksumMismatch { revision, .. } if revision == "t_two"),
            "{err}"
        );
        let message = err.to_string();
        assert!(
            message.contains("revision t_two was changed after it was applied"),
            "{message}"
        );
    }
    assert_eq!(schema_of(&db).await, before);
    let history = edited.history().await.unwrap();
    assert_eq!(history[0].checksum_ok, Some(true));
    assert_eq!(history[1].checksum_ok, Some(false));
    // The original chain still runs.
    Migrator::with_revisions(db.clone(), quick(), &CHAIN_A)
        .downgrade("base")
        .await
        .expect("original chain downgrades");
}
both_engines!(
    an_applied_revision_that_changed_is_refused_by_name,
    changed_revision_is_refused
);

async fn dirty_revision_resumes(test_db: TestDb) {
    let db = test_db.connect().await;
    let migrator = Migrator::with_revisions(db.clone(), quick(), &RESUME_CHAIN);
    let err = migrator
        .upgrade("head")
        .await
        .expect_err("stops at the code step");
    assert!(matches!(err, MigrateError::StepFailed { .. }), "{err}");
    assert_eq!(migrator.current().await.unwrap(), Some("t_one"));
    let history = migrator.history().await.unwrap();
    let dirty = history[1].dirty.as_ref().expect("t_resumable is dirty");
    assert_eq!((dirty.direction.as_str(), dirty.steps_done), ("up", 1));

    flowkey::on_pool!(&db, pool => {
        sqlx::query("INSERT INTO t_resume (id, note) VALUES (1, 'go')")
            .execute(pool)
            .await
            .unwrap();
    });
    let summary = migrator.upgrade("head").await.expect("resumes");
    assert_eq!(summary.revisions.len(), 1);
    assert_eq!(summary.revisions[0].resumed_at_step, Some(1));
    let names: Vec<_> = summary.revisions[0]
        .steps
        .iter()
        .map(|step| step.name)
        .collect();
    assert_eq!(names, ["wait for go", "index t_resume"]);
    assert_eq!(migrator.current().await.unwrap(), Some("t_resumable"));
    let log = migrator.audit_log(1_000).await.unwrap();
    let resumed: Vec<_> = entries(&log, "resumed").collect();
    assert_eq!(resumed.len(), 1);
    assert_eq!(resumed[0].revision.as_deref(), Some("t_resumable"));
    // The failed attempt and the code step's own events are in the log too.
    assert!(entries(&log, "step").any(|entry| entry.outcome == "failed"
        && entry
            .error
            .as_deref()
            .is_some_and(|error| error.contains("not told to go yet"))));
    assert_eq!(entries(&log, "go_checked").count(), 2);
    assert!(schema_of(&db).await.tables["t_resume"]
        .indexes
        .contains_key("ix_t_resume_note"));

    // Dirty on the way down: an upgrade is refused, the downgrade resumes.
    migrator
        .downgrade("base")
        .await
        .expect_err("stops going down");
    let err = migrator
        .upgrade("head")
        .await
        .expect_err("dirty going down");
    assert!(
        matches!(&err, MigrateError::Dirty { direction, .. } if direction == "down"),
        "{err}"
    );
    assert!(err.to_string().contains("flowkey stamp"), "{err}");
    flowkey::on_pool!(&db, pool => {
        sqlx::query("INSERT INTO t_resume (id, note) VALUES (2, 'stop')")
            .execute(pool)
            .await
            .unwrap();
    });
    let down = migrator
        .downgrade("base")
        .await
        .expect("resumes going down");
    assert_eq!(down.revisions[0].resumed_at_step, Some(0));
    assert_eq!(down.to, None);
    assert!(schema_of(&db).await.is_empty());
    let log = migrator.audit_log(1_000).await.unwrap();
    assert_eq!(entries(&log, "resumed").count(), 2);
}
both_engines!(
    a_dirty_revision_resumes_at_its_first_step_not_done,
    dirty_revision_resumes
);

async fn dirty_state_that_cannot_resume_is_refused(test_db: TestDb) {
    let db = test_db.connect().await;
    let migrator = Migrator::with_revisions(db.clone(), quick(), &RESUME_CHAIN);
    migrator.upgrade("head").await.expect_err("stops half way");

    // Dirty while going up, now asked to go down.
    let err = migrator.downgrade("base").await.expect_err("refused");
    assert!(matches!(err, MigrateError::Dirty { .. }), "{err}");
    let message = err.to_string();
    assert!(message.contains("t_resumable is dirty"), "{message}");
    assert!(
        message.contains("`flowkey stamp t_resumable --force` if the revision is fully applied"),
        "{message}"
    );
    assert!(
        message.contains("`flowkey stamp t_one --force` if it is fully undone"),
        "{message}"
    );
    assert_eq!(migrator.current().await.unwrap(), Some("t_one"));

    // A flowkey that does not know the dirty revision refuses too.
    let older = Migrator::with_revisions(db.clone(), quick(), &ONLY_T_ONE);
    let err = older
        .upgrade("head")
        .await
        .expect_err("unknown revision refused");
    assert!(
        matches!(&err, MigrateError::UnknownAppliedRevision { revision } if revision == "t_resumable"),
        "{err}"
    );
    assert!(err.to_string().contains("--force"), "{err}");

    // The way out: record by hand where the database is, then carry on.
    migrator
        .stamp("t_resumable", StampMode::Force)
        .await
        .expect("forced stamp");
    assert_eq!(migrator.current().await.unwrap(), Some("t_resumable"));
    assert!(migrator
        .history()
        .await
        .unwrap()
        .iter()
        .all(|entry| entry.dirty.is_none()));
    let log = migrator.audit_log(1_000).await.unwrap();
    assert!(
        entries(&log, "stamped").any(|entry| entry.details.as_ref().is_some_and(|details| details
            ["mode"]
            == "force"
            && details["previous"]
                .as_array()
                .is_some_and(|rows| rows.len() == 2)))
    );
    assert!(entries(&log, "run").any(|entry| entry.outcome == "refused"));
}
both_engines!(
    a_dirty_state_that_cannot_be_resumed_is_refused_with_the_way_out,
    dirty_state_that_cannot_resume_is_refused
);

async fn legacy_database_is_adopted_by_upgrade(test_db: TestDb) {
    test_db.run_script(legacy_script(test_db.engine)).await;
    let db = test_db.connect().await;
    let before = schema_of(&db).await;
    let migrator = Migrator::new(db.clone(), quick());
    let summary = migrator.upgrade("legacy").await.expect("adopted");
    assert_eq!(summary.adopted, Some("legacy"));
    assert!(
        summary.revisions.is_empty(),
        "the legacy revision is not run again"
    );
    assert_eq!(migrator.current().await.unwrap(), Some("legacy"));
    assert_eq!(schema_of(&db).await, before);
    let history = migrator.history().await.unwrap();
    assert_eq!(history[0].recorded_by.as_deref(), Some("adopted"));
    let log = migrator.audit_log(100).await.unwrap();
    assert_eq!(entries(&log, "adopted").count(), 1);
}
both_engines!(
    an_existing_legacy_database_is_adopted_by_upgrade,
    legacy_database_is_adopted_by_upgrade
);

/// A runner over a chain with no revision (a program embedding the runner with its own,
/// empty, chain) on a database that holds tables and no recorded revision: nothing to adopt,
/// no head to reach; `upgrade head` is refused as an unknown target and the schema is left
/// as it was.
async fn an_empty_chain_adopts_nothing(test_db: TestDb) {
    test_db.run_script(legacy_script(test_db.engine)).await;
    let db = test_db.connect().await;
    let before = schema_of(&db).await;
    let migrator = Migrator::with_revisions(db.clone(), quick(), &[]);
    let err = migrator.upgrade("head").await.expect_err("no head");
    assert!(
        matches!(&err, MigrateError::UnknownTarget { target, known } if target == "head" && known == "base, head"),
        "{err}"
    );
    assert_eq!(migrator.current().await.unwrap(), None);
    // The runner's own bookkeeping tables may now exist; nothing else changed.
    let mut after = schema_of(&db).await;
    after.tables.retain(|name, _| !name.starts_with("flowkey_"));
    assert_eq!(after, before);
}
both_engines!(
    a_runner_over_an_empty_chain_adopts_nothing_and_has_no_head,
    an_empty_chain_adopts_nothing
);

async fn legacy_database_is_adopted_by_stamp(test_db: TestDb) {
    test_db.run_script(legacy_script(test_db.engine)).await;
    let db = test_db.connect().await;
    let migrator = Migrator::new(db.clone(), quick());
    let summary = migrator
        .stamp("legacy", StampMode::Checked)
        .await
        .expect("stamped");
    assert_eq!(summary.adopted, Some("legacy"));
    assert_eq!(migrator.current().await.unwrap(), Some("legacy"));
    // An empty database is not at legacy.
    let empty = TestDb::fresh(test_db.engine).await;
    let err = Migrator::new(empty.connect().await, quick())
        .stamp("legacy", StampMode::Checked)
        .await
        .expect_err("empty database is not legacy");
    assert!(matches!(err, MigrateError::ForeignSchema { .. }), "{err}");
}
both_engines!(
    an_existing_legacy_database_is_adopted_by_stamp_legacy,
    legacy_database_is_adopted_by_stamp
);

async fn foreign_database_is_refused(test_db: TestDb) {
    test_db.run_script(legacy_script(test_db.engine)).await;
    test_db
        .run_script(
            "ALTER TABLE assets DROP COLUMN current_phase;\n\
             CREATE TABLE extra_things (id integer PRIMARY KEY);\n\
             CREATE INDEX ix_users_created_at ON users (created_at);\n",
        )
        .await;
    let db = test_db.connect().await;
    let before = schema_of(&db).await;
    let migrator = Migrator::new(db.clone(), quick());
    for result in [
        migrator.upgrade("head").await,
        migrator.stamp("legacy", StampMode::Checked).await,
    ] {
        let err = result.expect_err("a foreign schema is refused");
        let MigrateError::ForeignSchema { differences, .. } = &err else {
            panic!("unexpected error {err}");
        };
        let lines: Vec<String> = differences.iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            // The extra table and index are the platform's: tolerated, not named.
            ["table assets: column current_phase exists only in the expected schema"],
        );
        assert!(!err.to_string().contains('\n'));
    }
    assert_eq!(schema_of(&db).await, before);
    assert_eq!(migrator.current().await.unwrap(), None);
}
both_engines!(
    a_foreign_database_is_refused_with_its_differences_and_left_unchanged,
    foreign_database_is_refused
);

/// Holds the deploy lock the way another runner would, until dropped or released.
enum ForeignHolder {
    Postgres(sqlx::PgConnection),
    Sqlite(Db),
}

impl ForeignHolder {
    async fn take(test_db: &TestDb, db: &Db) -> ForeignHolder {
        match test_db.engine {
            Engine::Postgres => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&test_db.url).await.unwrap();
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(DEPLOY_LOCK_KEY)
                    .fetch_one(&mut conn)
                    .await
                    .unwrap();
                assert!(got);
                ForeignHolder::Postgres(conn)
            }
            Engine::Sqlite => {
                let Db::Sqlite(pool) = db else { unreachable!() };
                sqlx::query(
                    "INSERT INTO flowkey_deploy_lock (id, run_id, holder, pid, host, acquired_at) \
                     VALUES (1, 'other-run', 'deployer@elsewhere pid 1', $1, $2, '2026-01-01T00:00:00.000Z')",
                )
                .bind(i64::from(std::process::id()))
                .bind(gethostname::gethostname().to_string_lossy().into_owned())
                .execute(pool)
                .await
                .unwrap();
                ForeignHolder::Sqlite(db.clone())
            }
        }
    }

    async fn release(self) {
        match self {
            ForeignHolder::Postgres(mut conn) => {
                sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(DEPLOY_LOCK_KEY)
                    .execute(&mut conn)
                    .await
                    .unwrap();
            }
            ForeignHolder::Sqlite(Db::Sqlite(pool)) => {
                sqlx::query("DELETE FROM flowkey_deploy_lock WHERE run_id = 'other-run'")
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            ForeignHolder::Sqlite(_) => unreachable!(),
        }
    }
}

async fn held_lock_makes_a_runner_give_up(test_db: TestDb) {
    let db = test_db.connect().await;
    let options = RunOptions {
        lock_wait: Duration::ZERO,
        ..RunOptions::default()
    };
    let migrator = Migrator::with_revisions(db.clone(), options, &CHAIN_A);
    migrator
        .upgrade("t_one")
        .await
        .expect("nobody holds the lock");
    let holder = ForeignHolder::take(&test_db, &db).await;
    let err = migrator.upgrade("head").await.expect_err("lock is held");
    let MigrateError::Locked { holder: name, .. } = &err else {
        panic!("unexpected error {err}");
    };
    match test_db.engine {
        Engine::Sqlite => assert!(name.contains("deployer@elsewhere"), "{name}"),
        Engine::Postgres => assert!(name.contains("PostgreSQL backend pid"), "{name}"),
    }
    assert!(err.to_string().contains("held by"), "{err}");
    assert_eq!(migrator.current().await.unwrap(), Some("t_one"));
    holder.release().await;
    migrator.upgrade("head").await.expect("lock is free again");
}
both_engines!(
    a_runner_gives_up_with_locked_when_the_deploy_lock_is_held,
    held_lock_makes_a_runner_give_up
);

async fn waiting_runner_runs_after_release(test_db: TestDb) {
    let db = test_db.connect().await;
    let migrator = Migrator::with_revisions(db.clone(), quick(), &CHAIN_A);
    migrator
        .upgrade("t_one")
        .await
        .expect("nobody holds the lock");
    let holder = ForeignHolder::take(&test_db, &db).await;
    let release = async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        holder.release().await;
    };
    let (summary, ()) = tokio::join!(migrator.upgrade("head"), release);
    let summary = summary.expect("runs once the lock is free");
    assert_eq!(summary.to, Some("t_two"));
    assert_eq!(summary.revisions.len(), 1);
}
both_engines!(
    a_waiting_runner_runs_after_the_deploy_lock_is_released,
    waiting_runner_runs_after_release
);

async fn concurrent_runners_apply_each_step_once(test_db: TestDb) {
    let first = Migrator::new(test_db.connect().await, quick());
    let second = Migrator::new(test_db.connect().await, quick());
    let (a, b) = tokio::join!(first.upgrade("head"), second.upgrade("head"));
    let (a, b) = (a.expect("first runner"), b.expect("second runner"));
    let applied = a.revisions.len() + b.revisions.len();
    let below_head = revisions::all()
        .iter()
        .filter(|revision| !revisions::is_after_head(revision.id));
    assert_eq!(applied, below_head.clone().count(), "{a:?} {b:?}");
    assert!(a.revisions.is_empty() || b.revisions.is_empty());
    let log = first.audit_log(10_000).await.unwrap();
    let up_steps: usize = below_head.map(|revision| revision.up.len()).sum();
    assert_eq!(entries(&log, "step").count(), up_steps);
    // The runs did not overlap: one finished before the other started its steps.
    let runs: Vec<_> = entries(&log, "run").collect();
    assert_eq!(runs.len(), 2);
    let first_finished = runs[0].finished_at.expect("finished");
    assert!(
        runs[1].started_at >= first_finished
            || runs[0].started_at >= runs[1].finished_at.expect("finished")
    );
}
both_engines!(
    two_runners_at_once_apply_each_step_exactly_once,
    concurrent_runners_apply_each_step_once
);

#[tokio::test]
async fn sqlite_lock_left_by_a_dead_process_is_taken_over() {
    let test_db = TestDb::fresh(Engine::Sqlite).await;
    let db = test_db.connect().await;
    let options = RunOptions {
        lock_wait: Duration::ZERO,
        ..RunOptions::default()
    };
    let migrator = Migrator::with_revisions(db.clone(), options, &CHAIN_A);
    migrator.upgrade("t_one").await.unwrap();
    let Db::Sqlite(pool) = &db else {
        unreachable!()
    };
    // No process has this pid (above Linux's pid_max).
    sqlx::query(
        "INSERT INTO flowkey_deploy_lock (id, run_id, holder, pid, host, acquired_at) \
         VALUES (1, 'crashed-run', 'crashed@here', 2147483000, $1, '2026-01-01T00:00:00.000Z')",
    )
    .bind(gethostname::gethostname().to_string_lossy().into_owned())
    .execute(pool)
    .await
    .unwrap();
    migrator
        .upgrade("head")
        .await
        .expect("stale lock taken over");
    let log = migrator.audit_log(100).await.unwrap();
    let taken: Vec<_> = entries(&log, "lock_taken_over").collect();
    assert_eq!(taken.len(), 1);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM flowkey_deploy_lock")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "the lock is released after the run");
}

async fn offline_sql_runs_nothing(test_db: TestDb) {
    let db = test_db.connect().await;
    let migrator = Migrator::new(db.clone(), quick());
    let script = migrator
        .offline_sql(test_db.engine, None, "head", Direction::Up)
        .expect("offline sql");
    for table in LEGACY_TABLES {
        assert!(
            script.contains(&format!("CREATE TABLE {table} (")),
            "{table}"
        );
    }
    let down = migrator
        .offline_sql(test_db.engine, Some("legacy"), "base", Direction::Down)
        .expect("offline downgrade");
    assert!(down.contains("DROP TABLE client_accounts;"));
    assert!(schema_of(&db).await.is_empty());
    assert_eq!(migrator.current().await.unwrap(), None);
    assert!(migrator.audit_log(10).await.unwrap().is_empty());
    let err = migrator
        .offline_sql(test_db.engine, None, "nowhere", Direction::Up)
        .expect_err("unknown target");
    assert!(matches!(err, MigrateError::UnknownTarget { .. }));
}
both_engines!(
    offline_sql_prints_the_legacy_tables_and_runs_nothing,
    offline_sql_runs_nothing
);

async fn bad_targets_change_nothing(test_db: TestDb) {
    let db = test_db.connect().await;
    let migrator = Migrator::with_revisions(db.clone(), quick(), &CHAIN_A);
    migrator.upgrade("t_one").await.unwrap();
    for (result, what) in [
        (migrator.upgrade("nope").await, "unknown"),
        (migrator.upgrade("+5").await, "too far"),
        (migrator.downgrade("t_two").await, "not applied"),
        (migrator.downgrade("-3").await, "too far back"),
    ] {
        let err = result.expect_err(what);
        assert!(
            matches!(
                err,
                MigrateError::UnknownTarget { .. } | MigrateError::UnreachableTarget { .. }
            ),
            "{what}: {err}"
        );
    }
    assert_eq!(migrator.current().await.unwrap(), Some("t_one"));
    assert_eq!(migrator.upgrade("+1").await.unwrap().to, Some("t_two"));
    assert_eq!(migrator.downgrade("-1").await.unwrap().to, Some("t_one"));
    assert_eq!(migrator.downgrade("-1").await.unwrap().to, None);
}
both_engines!(
    bad_targets_are_refused_and_relative_targets_move_one_revision,
    bad_targets_change_nothing
);

#[tokio::test]
async fn postgres_online_ddl_rebuilds_an_invalid_leftover_index() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    let db = test_db.connect().await;
    let migrator = Migrator::with_revisions(db.clone(), quick(), &CHAIN_A);
    migrator.upgrade("t_one").await.unwrap();
    // A concurrent unique build that fails on duplicates leaves an INVALID index behind.
    db.execute_plain("INSERT INTO t_one (id, note) VALUES (1, 'same'), (2, 'same')")
        .await
        .unwrap();
    db.execute_plain("CREATE UNIQUE INDEX CONCURRENTLY ix_t_one_note ON t_one (note)")
        .await
        .expect_err("duplicates");
    let index = &schema_of(&db).await.tables["t_one"].indexes["ix_t_one_note"];
    assert!(!index.valid && index.unique);

    migrator.upgrade("head").await.expect("rebuilds the index");
    let index = &schema_of(&db).await.tables["t_one"].indexes["ix_t_one_note"];
    assert!(index.valid && !index.unique, "{index:?}");
    let log = migrator.audit_log(100).await.unwrap();
    assert_eq!(entries(&log, "invalid_index_dropped").count(), 1);
}

#[tokio::test]
async fn postgres_online_ddl_retries_after_lock_timeouts() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    let db = test_db.connect().await;
    let options = RunOptions {
        lock_timeout: Duration::from_millis(50),
        ddl_retries: 50,
        ..quick()
    };
    let migrator = Migrator::with_revisions(db.clone(), options, &CHAIN_A);
    migrator.upgrade("t_one").await.unwrap();
    use sqlx::Connection;
    let mut blocker = sqlx::PgConnection::connect(&test_db.url).await.unwrap();
    for statement in ["BEGIN", "LOCK TABLE t_one IN ACCESS EXCLUSIVE MODE"] {
        sqlx::query(statement).execute(&mut blocker).await.unwrap();
    }
    let release = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();
    };
    let (upgraded, ()) = tokio::join!(migrator.upgrade("head"), release);
    upgraded.expect("succeeds after retries");
    let log = migrator.audit_log(100).await.unwrap();
    let statement = entries(&log, "statement")
        .find(|entry| entry.revision.as_deref() == Some("t_two"))
        .expect("statement row");
    let details = statement.details.as_ref().expect("details");
    assert!(details["attempts"].as_u64().unwrap() > 1, "{details}");
    assert!(details["lock_wait_ms"].as_u64().unwrap() > 0, "{details}");
    assert_eq!(statement.outcome, "ok");
}

static PARENTS: Revision = Revision {
    id: "t_parents",
    description: "parents and cascading children",
    up: &[Step {
        name: "create parents and children",
        action: Action::Sql(StepSql::Fixed(EngineSql {
            sqlite: "CREATE TABLE t_parent (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n\
                     CREATE TABLE t_child (id INTEGER PRIMARY KEY, \
                     parent_id INTEGER NOT NULL REFERENCES t_parent(id) ON DELETE CASCADE);\n",
            postgres: "SELECT 1;\n",
        })),
    }],
    down: &[],
    earlier_checksums: &[],
};

const REBUILD_UP: &str = "\
PRAGMA foreign_keys = OFF;
CREATE TABLE t_parent_new (id INTEGER PRIMARY KEY, name TEXT);
INSERT INTO t_parent_new (id, name) SELECT id, name FROM t_parent;
DROP TABLE t_parent;
ALTER TABLE t_parent_new RENAME TO t_parent;
";

static REBUILD: Revision = Revision {
    id: "t_rebuild",
    description: "rebuilds the parent table the SQLite way",
    up: &[Step {
        name: "make parent names nullable",
        action: Action::Sql(StepSql::Fixed(EngineSql {
            sqlite: REBUILD_UP,
            postgres: "SELECT 1;\n",
        })),
    }],
    down: &[],
    earlier_checksums: &[],
};

static BAD_REBUILD: Revision = Revision {
    id: "t_rebuild",
    description: "a rebuild that loses a parent",
    up: &[Step {
        name: "lose a parent",
        action: Action::Sql(StepSql::Fixed(EngineSql {
            sqlite: "PRAGMA foreign_keys = OFF;\nDELETE FROM t_parent WHERE id = 1;\n",
            postgres: "SELECT 1;\n",
        })),
    }],
    down: &[],
    earlier_checksums: &[],
};

static REBUILD_CHAIN: [&Revision; 2] = [&PARENTS, &REBUILD];
static BAD_REBUILD_CHAIN: [&Revision; 2] = [&PARENTS, &BAD_REBUILD];

#[tokio::test]
async fn sqlite_table_rebuild_keeps_children_and_checks_foreign_keys() {
    let test_db = TestDb::fresh(Engine::Sqlite).await;
    let db = test_db.connect().await;
    let migrator = Migrator::with_revisions(db.clone(), quick(), &REBUILD_CHAIN);
    migrator.upgrade("t_parents").await.unwrap();
    db.execute_plain("INSERT INTO t_parent VALUES (1, 'p'); INSERT INTO t_child VALUES (10, 1);")
        .await
        .unwrap();
    // A child the application left dangling with foreign keys off: the platform's, not a
    // rebuild's, so it stops neither rebuild and stays as it is.
    db.execute_plain(
        "PRAGMA foreign_keys = OFF; INSERT INTO t_child VALUES (11, 99); PRAGMA foreign_keys = ON;",
    )
    .await
    .unwrap();

    let bad = Migrator::with_revisions(db.clone(), quick(), &BAD_REBUILD_CHAIN);
    let err = bad.upgrade("head").await.expect_err("orphans are refused");
    assert!(
        err.to_string().contains(
            "the step would leave 1 more rows violating foreign keys (first: t_child -> t_parent)"
        ),
        "{err}"
    );
    // The failed revision stays dirty, but its first step was rolled back whole, so the
    // fixed revision (another checksum) may run in its place.

    migrator.upgrade("head").await.expect("rebuild");
    let Db::Sqlite(pool) = &db else {
        unreachable!()
    };
    let children: i64 = sqlx::query_scalar("SELECT count(*) FROM t_child")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(children, 2, "DROP TABLE did not cascade to the children");
    let parents: i64 = sqlx::query_scalar("SELECT count(*) FROM t_parent")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(parents, 1, "the failed rebuild was rolled back");
    assert!(!schema_of(&db).await.tables["t_parent"].columns["name"].not_null);
    // Every pooled connection still enforces foreign keys.
    for _ in 0..4 {
        let on: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(on, 1);
    }
}

#[tokio::test]
async fn postgres_sql_steps_retry_after_lock_timeouts() {
    let test_db = TestDb::fresh(Engine::Postgres).await;
    let db = test_db.connect().await;
    let options = RunOptions {
        lock_timeout: Duration::from_millis(50),
        ddl_retries: 50,
        ..quick()
    };
    let migrator = Migrator::with_revisions(db.clone(), options, &ONLY_T_ONE);
    migrator.upgrade("head").await.unwrap();
    use sqlx::Connection;
    let mut reader = sqlx::PgConnection::connect(&test_db.url).await.unwrap();
    for statement in ["BEGIN", "SELECT count(*) FROM t_one"] {
        sqlx::query(statement).execute(&mut reader).await.unwrap();
    }
    let release = async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        sqlx::query("ROLLBACK").execute(&mut reader).await.unwrap();
    };
    let (downgraded, ()) = tokio::join!(migrator.downgrade("base"), release);
    downgraded.expect("succeeds after retries");
    let log = migrator.audit_log(100).await.unwrap();
    let step = entries(&log, "step")
        .find(|entry| entry.step.as_deref() == Some("drop t_one"))
        .expect("step row");
    let details = step.details.as_ref().expect("details");
    assert!(details["attempts"].as_u64().unwrap() > 1, "{details}");
}

async fn introspection_names_each_difference(test_db: TestDb) {
    let reference = TestDb::fresh(test_db.engine).await;
    reference.run_script(legacy_script(test_db.engine)).await;
    test_db.run_script(legacy_script(test_db.engine)).await;
    let common = "\
ALTER TABLE data_imports ADD COLUMN flow_id TEXT REFERENCES discovery_flows(flow_id);
CREATE INDEX ix_data_imports_flow_id ON data_imports (flow_id);
DROP INDEX ix_assets_session_id;
ALTER TABLE assets ADD COLUMN note TEXT NOT NULL DEFAULT 'none';
";
    let flow_type = match test_db.engine {
        Engine::Sqlite => "TEXT",
        Engine::Postgres => "uuid",
    };
    test_db
        .run_script(&common.replace("TEXT REFERENCES", &format!("{flow_type} REFERENCES")))
        .await;
    let mut expected = vec![
        "table assets: column note exists only in the database".to_owned(),
        "table assets: index ix_assets_session_id exists only in the expected schema".to_owned(),
        "table data_imports: column flow_id exists only in the database".to_owned(),
        "table data_imports: foreign key (flow_id) references discovery_flows(flow_id) on delete no action exists only in the database".to_owned(),
        "table data_imports: index ix_data_imports_flow_id exists only in the database".to_owned(),
    ];
    if test_db.engine == Engine::Postgres {
        test_db
            .run_script(
                "ALTER TABLE flow_deletion_audit ALTER COLUMN session_id DROP NOT NULL;\n\
                 ALTER TABLE users ALTER COLUMN email TYPE text;\n\
                 ALTER TABLE llm_usage_logs ALTER COLUMN input_tokens SET DEFAULT 1;\n\
                 ALTER TABLE engagements ADD CONSTRAINT ck_name CHECK (name <> '') NOT VALID;\n",
            )
            .await;
        expected.extend([
            "table engagements: check constraint ck_name exists only in the database".to_owned(),
            "table flow_deletion_audit: column session_id not null is false in the database, true expected".to_owned(),
            "table llm_usage_logs: column input_tokens default is 1 in the database, 0 expected".to_owned(),
            "table users: column email type is text in the database, character varying(255) expected".to_owned(),
        ]);
    }
    let actual = schema_of(&test_db.connect().await).await;
    let wanted = schema_of(&reference.connect().await).await;
    let mut lines: Vec<String> = actual
        .diff(&wanted)
        .iter()
        .map(ToString::to_string)
        .collect();
    lines.sort();
    expected.sort();
    assert_eq!(lines, expected);
    assert!(wanted.diff(&wanted).is_empty());
}
both_engines!(
    introspection_names_each_difference_between_two_schemas,
    introspection_names_each_difference
);

async fn stamp_checks_later_revisions(test_db: TestDb) {
    let (create, index) = match test_db.engine {
        Engine::Sqlite => (
            "CREATE TABLE t_one (id INTEGER PRIMARY KEY, note TEXT);",
            "CREATE INDEX ix_t_one_note ON t_one (note);",
        ),
        Engine::Postgres => (
            "CREATE TABLE t_one (id integer PRIMARY KEY, note text);",
            "CREATE INDEX ix_t_one_note ON t_one (note);",
        ),
    };
    test_db.run_script(create).await;
    test_db.run_script(index).await;
    let db = test_db.connect().await;
    let migrator = Migrator::with_revisions(db.clone(), quick(), &CHAIN_A);
    let err = migrator
        .stamp("t_one", StampMode::Checked)
        .await
        .expect_err("the index is one a later revision creates");
    assert!(
        err.to_string()
            .contains("table t_one: index ix_t_one_note already exists; flowkey creates it itself"),
        "{err}"
    );
    let summary = migrator
        .stamp("t_two", StampMode::Checked)
        .await
        .expect("schema is exactly t_one + t_two");
    assert_eq!(summary.to, Some("t_two"));
    let history = migrator.history().await.unwrap();
    assert!(history.iter().all(|entry| entry.applied));
    assert_eq!(history[1].recorded_by.as_deref(), Some("stamped"));
    // Recorded correctly: the chain downgrades from there.
    migrator.downgrade("base").await.expect("downgrade");
    assert!(schema_of(&db).await.is_empty());
}
both_engines!(
    stamp_adopts_a_later_revision_only_when_the_schema_matches,
    stamp_checks_later_revisions
);
