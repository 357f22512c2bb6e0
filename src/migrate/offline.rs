//! The SQL a run would issue, as text (`--sql`): nothing is executed. Also the statement
//! splitter the online DDL runner uses on PostgreSQL.

use std::fmt::Write as _;

use crate::db::Engine;
use crate::migrate::checksum::checksum;
use crate::migrate::{Action, Direction, Revision};

/// Splits a PostgreSQL script into statements: a statement ends with a `;` at the end of a
/// line outside a dollar-quoted (`$$ … $$`, `$tag$ … $tag$`) body. Comment-only chunks are
/// dropped.
pub fn split_statements(script: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut open_tag: Option<String> = None;
    for line in script.lines() {
        current.push_str(line);
        current.push('\n');
        for tag in dollar_tags(line) {
            match &open_tag {
                Some(open) if *open == tag => open_tag = None,
                Some(_) => {}
                None => open_tag = Some(tag),
            }
        }
        if open_tag.is_none() && line.trim_end().ends_with(';') {
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

/// The dollar-quote tags (`$$`, `$body$`) on a line, in order.
fn dollar_tags(line: &str) -> Vec<String> {
    let bytes = line.as_bytes();
    let mut tags = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'$' {
            let mut end = index + 1;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                end += 1;
            }
            let tag_is_identifier = end == index + 1 || !bytes[index + 1].is_ascii_digit();
            if end < bytes.len() && bytes[end] == b'$' && tag_is_identifier {
                tags.push(line[index..=end].to_owned());
                index = end + 1;
                continue;
            }
        }
        index += 1;
    }
    tags
}

/// One revision to render, in the direction it would run, from its first step not done.
pub(crate) struct PlannedRevision {
    pub revision: &'static Revision,
    pub direction: Direction,
    pub first_step: usize,
    /// True for a dirty revision taken up again.
    pub resuming: bool,
}

/// The script `upgrade --sql` / `downgrade --sql` prints.
pub(crate) fn render(
    engine: Engine,
    from: Option<&str>,
    to: Option<&str>,
    plan: &[PlannedRevision],
) -> String {
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
                Action::Sql(sql) => {
                    let _ = writeln!(out, "BEGIN;\n{}\nCOMMIT;", sql.for_engine(engine).trim());
                }
                Action::OnlineDdl(sql) if engine == Engine::Postgres => {
                    let _ = writeln!(
                        out,
                        "-- online DDL: each statement alone, outside a transaction, under lock_timeout with retries"
                    );
                    for statement in split_statements(&sql.for_engine(Engine::Postgres)) {
                        let _ = writeln!(out, "{statement}");
                    }
                }
                Action::OnlineDdl(sql) => {
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
    }
}
