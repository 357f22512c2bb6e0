//! The SQL a run would issue, as text (`--sql`): nothing is executed. Also the statement
//! splitter the online DDL runner uses on PostgreSQL.

use std::fmt::Write as _;

use crate::db::Engine;
use crate::migrate::checksum::checksum;
use crate::migrate::dollar_quotes::DollarQuotes;
use crate::migrate::{Action, Direction, Revision};

/// Splits a PostgreSQL script into statements: a statement ends with a `;` at the end of a
/// line outside a dollar-quoted (`$$ … $$`, `$tag$ … $tag$`) body. Comment-only chunks are
/// dropped.
pub fn split_statements(script: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut quotes = DollarQuotes::default();
    for line in script.lines() {
        current.push_str(line);
        current.push('\n');
        quotes.read(line);
        if !quotes.is_open() && line.trim_end().ends_with(';') {
            push_statement(&mut statements, &current);
            current.clear();
        }
    }
    push_statement(&mut statements, &current);
    statements
}

fn push_statement(statements: &mut Vec<String>, text: &str) {
    let meaningful = text
        .lines()
        .map(str::trim)
        .any(|line| !line.is_empty() && !line.starts_with("--"));
    if meaningful {
        statements.push(text.trim().to_owned());
    }
}

/// One revision to render, in the direction it would run, from its first step not done.
pub(crate) struct PlannedRevision {
    pub revision: &'static Revision,
    pub direction: Direction,
    pub first_step: usize,
    /// True for a dirty revision taken up again.
    pub resuming: bool,
}

/// The script `upgrade --sql` / `downgrade --sql` prints: on PostgreSQL a script that runs
/// as is in `psql` ([`render_postgres`]); on SQLite the statements with code steps described.
pub(crate) fn render(
    engine: Engine,
    chain: &[&'static Revision],
    from: Option<&str>,
    to: Option<&str>,
    plan: &[PlannedRevision],
) -> String {
    match engine {
        Engine::Postgres => render_postgres(chain, from, to, plan),
        Engine::Sqlite => render_described(from, to, plan),
    }
}

/// `lock_timeout` of every DDL statement, as the runner sets it by default
/// (`RunOptions::lock_timeout`).
fn lock_timeout() -> String {
    format!(
        "{}ms",
        crate::migrate::RunOptions::default()
            .lock_timeout
            .as_millis()
            .max(1)
    )
}

/// The run id the script records in `flowkey_versions` (the runner records its run's UUID).
const OFFLINE_RUN_ID: &str = "offline-script";

/// The runnable PostgreSQL script: `psql -v ON_ERROR_STOP=1 -f script.sql`, never
/// `--single-transaction` (online DDL runs outside any transaction block).
///
/// It ends where the runner ends and records what the runner records:
/// - first a guard that stops before any change unless the database is at `from` with no
///   dirty revision (a legacy database flowkey never touched counts as at `legacy`, and is
///   recorded `adopted` as the runner's adoption records it);
/// - each revision marked dirty, each step recorded done (in the step's own transaction
///   where it has one), the revision recorded applied or forgotten: a script stopped half
///   way leaves the book as a killed runner does, and `flowkey upgrade`/`downgrade` resumes
///   at the first step not done;
/// - `Sql` steps in one transaction under `SET LOCAL lock_timeout`; `OnlineDdl` statement by
///   statement outside a transaction block under `SET lock_timeout` (the runner retries a
///   lock timeout; the script stops, and the runner takes over);
/// - code steps as the set-based SQL they amount to ([`Action::Code`]'s `offline`), checks
///   as SQL that raises when the check fails, each in one transaction; a step without such
///   a form stops the script there, saying so.
fn render_postgres(
    chain: &[&'static Revision],
    from: Option<&str>,
    to: Option<&str>,
    plan: &[PlannedRevision],
) -> String {
    let engine = Engine::Postgres;
    let timeout = lock_timeout();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "-- flowkey {} script for postgres: from {} to {}",
        env!("CARGO_PKG_VERSION"),
        from.unwrap_or("base"),
        to.unwrap_or("base")
    );
    out.push_str(
        "-- Runs as is: psql -v ON_ERROR_STOP=1 -f <this file>. Not with --single-transaction:\n\
         -- online DDL (CREATE INDEX CONCURRENTLY) runs outside any transaction block, and each\n\
         -- step commits on its own. flowkey_versions is kept as the runner keeps it: if the\n\
         -- script stops (a lock timeout: flowkey would retry), `flowkey upgrade`/`downgrade`\n\
         -- resumes at the first step not done. flowkey_audit_log is not written.\n",
    );
    if plan.is_empty() {
        let _ = writeln!(out, "-- nothing to do");
        return out;
    }
    // Run without `-v ON_ERROR_STOP=1`, psql would go on past a failed step (the guard
    // included): the script says it itself.
    out.push_str("\\set ON_ERROR_STOP on\n");
    out.push_str(crate::migrate::runner::versions::CREATE_VERSIONS_POSTGRES);
    out.push_str(&guard(from));
    for planned in plan {
        let revision = planned.revision;
        let direction = planned.direction;
        let position = chain
            .iter()
            .position(|known| known.id == revision.id)
            .unwrap_or_default();
        let steps = match direction {
            Direction::Up => revision.up,
            Direction::Down => revision.down,
        };
        let id = revision.id;
        let _ = writeln!(
            out,
            "\n-- revision {id} ({direction}): {}\n-- checksum {}",
            revision.description,
            checksum(revision)
        );
        let _ = writeln!(
            out,
            "INSERT INTO flowkey_versions (revision, position, checksum, dirty, direction, steps_done, recorded_by, run_id, started_at, applied_at)\n\
             VALUES ('{id}', {position}, '{checksum}', true, '{direction}', 0, 'applied', '{OFFLINE_RUN_ID}', now(), NULL)\n\
             ON CONFLICT (revision) DO UPDATE SET dirty = excluded.dirty, checksum = excluded.checksum, direction = excluded.direction, steps_done = 0, run_id = excluded.run_id, started_at = excluded.started_at;",
            checksum = checksum(revision)
        );
        for (number, step) in steps.iter().enumerate().skip(planned.first_step) {
            let done = format!(
                "UPDATE flowkey_versions SET steps_done = {} WHERE revision = '{id}';",
                number + 1
            );
            let _ = writeln!(
                out,
                "\n-- step {}/{}: {}",
                number + 1,
                steps.len(),
                step.name
            );
            match &step.action {
                Action::Sql(sql) => {
                    let _ = writeln!(
                        out,
                        "BEGIN;\nSET LOCAL lock_timeout = '{timeout}';\n{}\n{done}\nCOMMIT;",
                        sql.for_engine(engine).trim()
                    );
                }
                Action::OnlineDdl(sql) => {
                    let _ = writeln!(
                        out,
                        "-- online DDL: each statement alone, outside a transaction block\n\
                         SET lock_timeout = '{timeout}';"
                    );
                    for statement in split_statements(&sql.for_engine(engine)) {
                        let _ = writeln!(out, "{statement}");
                    }
                    let _ = writeln!(out, "{done}\nRESET lock_timeout;");
                }
                Action::Code { offline, sql, .. } | Action::Check { offline, sql, .. } => {
                    let kind = if matches!(step.action, Action::Check { .. }) {
                        "check (raises when it fails)"
                    } else {
                        "code step, as the set-based SQL it amounts to"
                    };
                    let text = offline
                        .as_ref()
                        .map(|sql| sql.for_engine(engine).trim().to_owned())
                        .unwrap_or_default();
                    if text.is_empty() {
                        // What the step runs stays readable for a review (`flowkey contract
                        // --dry-run`), commented out: it is not plain SQL.
                        let _ = writeln!(out, "-- this step runs only in flowkey; what it runs:");
                        for line in sql.for_engine(engine).lines() {
                            let _ = writeln!(out, "--   {line}");
                        }
                        let _ = writeln!(
                            out,
                            "-- the script stops here\n\
                             DO $stop$ BEGIN RAISE EXCEPTION 'step \"{}\" of revision {id} runs only in flowkey: run flowkey {} to go on'; END $stop$;",
                            step.name.replace('\'', "''"),
                            match direction {
                                Direction::Up => "upgrade",
                                Direction::Down => "downgrade",
                            }
                        );
                    } else {
                        let _ = writeln!(out, "-- {kind}\nBEGIN;\n{text}\n{done}\nCOMMIT;");
                    }
                }
            }
        }
        let _ = writeln!(
            out,
            "-- flowkey records revision {id} as {}",
            match direction {
                Direction::Up => "applied",
                Direction::Down => "reverted",
            }
        );
        let _ = writeln!(
            out,
            "{}",
            match direction {
                Direction::Up => format!(
                    "UPDATE flowkey_versions SET dirty = false, applied_at = now(), recorded_by = 'applied' WHERE revision = '{id}';"
                ),
                Direction::Down => format!("DELETE FROM flowkey_versions WHERE revision = '{id}';"),
            }
        );
    }
    crate::migrate::lint::annotate(&out)
}

/// The guard at the top of the script: stops before any change unless the database is at
/// `from` with no dirty revision. A database without flowkey's book is at base, or at
/// `legacy` when its legacy tables exist (then recorded adopted, as the runner adopts it;
/// the runner also compares its schema with legacy's, which `flowkey stamp legacy` does).
fn guard(from: Option<&str>) -> String {
    let expected = from.unwrap_or("base");
    let adopt = if from == Some(crate::migrate::revisions::legacy::LEGACY.id) {
        format!(
            "INSERT INTO flowkey_versions (revision, position, checksum, dirty, direction, steps_done, recorded_by, run_id, started_at, applied_at)\n\
             SELECT 'legacy', 0, '{checksum}', false, 'up', {steps}, 'adopted', '{OFFLINE_RUN_ID}', now(), now()\n\
             WHERE NOT EXISTS (SELECT 1 FROM flowkey_versions)\n\
             AND to_regclass('data_import_sessions') IS NOT NULL;\n",
            checksum = checksum(&crate::migrate::revisions::legacy::LEGACY),
            steps = crate::migrate::revisions::legacy::LEGACY.up.len(),
        )
    } else {
        String::new()
    };
    format!(
        "{adopt}DO $guard$\n\
         DECLARE\n    at_revision text;\n    dirty_revision text;\n\
         BEGIN\n\
         SELECT revision INTO dirty_revision FROM flowkey_versions WHERE dirty LIMIT 1;\n\
         IF dirty_revision IS NOT NULL THEN\n\
         RAISE EXCEPTION 'revision % stopped half way: finish it with flowkey upgrade or downgrade first', dirty_revision;\n\
         END IF;\n\
         SELECT revision INTO at_revision FROM flowkey_versions ORDER BY position DESC LIMIT 1;\n\
         IF coalesce(at_revision, 'base') <> '{expected}' THEN\n\
         RAISE EXCEPTION 'this script starts at revision {expected}; the database is at %', coalesce(at_revision, 'base');\n\
         END IF;\n\
         END\n$guard$;\n"
    )
}

/// The statements with code steps described, for SQLite (its code steps read the catalog
/// and stream rows in the process, and have no plain-SQL form yet).
fn render_described(from: Option<&str>, to: Option<&str>, plan: &[PlannedRevision]) -> String {
    let engine = Engine::Sqlite;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "-- flowkey {} offline script for {engine}: from {} to {}",
        env!("CARGO_PKG_VERSION"),
        from.unwrap_or("base"),
        to.unwrap_or("base")
    );
    let _ = writeln!(
        out,
        "-- nothing was run; flowkey also records each step in flowkey_versions and flowkey_audit_log"
    );
    if plan.is_empty() {
        let _ = writeln!(out, "-- nothing to do");
    }
    for planned in plan {
        let revision = planned.revision;
        let steps = match planned.direction {
            Direction::Up => revision.up,
            Direction::Down => revision.down,
        };
        let _ = writeln!(
            out,
            "\n-- revision {} ({}): {}\n-- checksum {}",
            revision.id,
            planned.direction,
            revision.description,
            checksum(revision)
        );
        for (number, step) in steps.iter().enumerate().skip(planned.first_step) {
            let _ = writeln!(
                out,
                "\n-- step {}/{}: {}",
                number + 1,
                steps.len(),
                step.name
            );
            match &step.action {
                // SQLite runs online DDL in one transaction, like any SQL step.
                Action::Sql(sql) | Action::OnlineDdl(sql) => {
                    let _ = writeln!(out, "BEGIN;\n{}\nCOMMIT;", sql.for_engine(engine).trim());
                }
                Action::Code { sql, .. } | Action::Check { sql, .. } => {
                    let _ = writeln!(
                        out,
                        "-- code step (runs in flowkey, shown as the SQL it runs):"
                    );
                    let _ = writeln!(out, "{}", sql.for_engine(engine).trim());
                }
            }
        }
        let _ = writeln!(
            out,
            "-- flowkey records revision {} as {}",
            revision.id,
            match planned.direction {
                Direction::Up => "applied",
                Direction::Down => "reverted",
            }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A way down through a step that only flowkey runs: the PostgreSQL script stops there
    /// and says to go on with `flowkey downgrade` (an upgrade's says `flowkey upgrade`).
    #[test]
    fn a_script_stopped_on_the_way_down_names_the_downgrade() {
        use crate::migrate::{EngineSql, Step, StepSql};
        static UNDONE_IN_CODE: Revision = Revision {
            id: "undone_in_code",
            description: "a revision undone by code only",
            up: &[Step {
                name: "nothing",
                action: Action::Sql(StepSql::Fixed(EngineSql {
                    sqlite: "SELECT 1;\n",
                    postgres: "SELECT 1;\n",
                })),
            }],
            down: &[Step {
                name: "undo in code",
                action: Action::Code {
                    run: crate::migrate::flow::verify::verify_step,
                    sql: StepSql::Fixed(EngineSql {
                        sqlite: "SELECT 2;\n",
                        postgres: "SELECT 2;\n",
                    }),
                    offline: None,
                },
            }],
            earlier_checksums: &[],
        };
        static CHAIN: [&Revision; 2] =
            [&crate::migrate::revisions::legacy::LEGACY, &UNDONE_IN_CODE];
        let down = crate::migrate::runner::offline_sql(
            &CHAIN,
            Engine::Postgres,
            Some("undone_in_code"),
            "legacy",
            Direction::Down,
        )
        .unwrap();
        assert!(
            down.contains(
                "step \"undo in code\" of revision undone_in_code runs only in flowkey: run flowkey downgrade to go on"
            ),
            "{down}"
        );
        assert!(down.contains("--   SELECT 2;"), "{down}");
    }

    /// The steps that compute in the process on SQLite (hashes, rebuilds from the legacy
    /// text, bound per-session statements) have no plain-SQL form there: their runnable form
    /// is empty on SQLite, in the released chain and in a linking revision alike. The SQLite
    /// script describes every code step by what it runs; this list is what a plain-SQL
    /// SQLite script would have to learn to write.
    #[test]
    fn steps_without_a_plain_sqlite_form_are_the_ones_that_compute_in_the_process() {
        let linking =
            crate::migrate::revisions::linking::link_revision("flow_expand", "one by one");
        let chain = crate::migrate::revisions::all().iter().copied();
        let mut without = Vec::new();
        for revision in chain.chain([&linking]) {
            for step in revision.up.iter().chain(revision.down) {
                if let Action::Code {
                    offline: Some(offline),
                    ..
                }
                | Action::Check {
                    offline: Some(offline),
                    ..
                } = &step.action
                {
                    if offline.for_engine(Engine::Sqlite).is_empty() {
                        without.push(format!("{} {}", revision.id, step.name));
                    }
                }
            }
        }
        let mut expected: Vec<String> = [
            "flow_mapping fingerprint legacy tables",
            "flow_expand rebuild legacy tables (sqlite)",
            "flow_backfill give rows written at head a legacy session",
            "flow_constraints verify",
            "live_mapping catch up sessions created since the mapping step",
            "write_ledger store every legacy row's hash (the ledger's baseline)",
            "flow_expand verify",
        ]
        .map(str::to_owned)
        .to_vec();
        let linked: Vec<_> = crate::migrate::flow::linked::linked_since("flow_expand").collect();
        for table in linked.iter().rev() {
            let t = table.name;
            expected.push(format!(
                "flow_expand give rows of {t} written at head a legacy session"
            ));
            expected.push(format!("flow_expand rebuild {t} (sqlite)"));
        }
        assert_eq!(without, expected);
    }

    #[test]
    fn statements_split_at_line_ending_semicolons() {
        let script = "-- a comment\nCREATE TABLE a (x int);\nCREATE INDEX CONCURRENTLY ix\n  ON a (x);\n-- trailing\n";
        assert_eq!(
            split_statements(script),
            vec![
                "-- a comment\nCREATE TABLE a (x int);",
                "CREATE INDEX CONCURRENTLY ix\n  ON a (x);"
            ]
        );
    }

    #[test]
    fn dollar_quoted_bodies_stay_whole() {
        let script = "CREATE FUNCTION f() RETURNS trigger AS $$\nBEGIN\n  NEW.x := 1;\n  RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql;\nSELECT 1;\n";
        let statements = split_statements(script);
        assert_eq!(statements.len(), 2, "{statements:?}");
        assert!(statements[0].ends_with("LANGUAGE plpgsql;"));
        let tagged = "DO $body$ BEGIN\n PERFORM 1;\nEND $body$;\nSELECT $1;\n";
        assert_eq!(split_statements(tagged).len(), 2);
        // Inside a tagged body, another tag is text: only the body's own tag closes it.
        let nested = "DO $body$ BEGIN\n EXECUTE $$SELECT 1;$$;\nEND $body$;\nSELECT 2;\n";
        let statements = split_statements(nested);
        assert_eq!(statements.len(), 2, "{statements:?}");
        assert!(statements[0].ends_with("END $body$;"));
    }
}
