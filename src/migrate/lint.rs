//! The deliberate exceptions to squawk's rules (https://squawkhq.com, the linter for
//! PostgreSQL migrations) in the runnable PostgreSQL script, written into it as comments: a
//! line saying why, then `-- squawk-ignore <rule>` on the line before the statement or column
//! it excuses. `scripts/lint-sql.sh` fails on any finding not excused here.
//!
//! Each exception names the objects it covers (flowkey's own columns, constraints, functions,
//! tables; the legacy schema verbatim), so a new statement that breaks a rule is not excused
//! by accident. The revisions' text is left as released (their checksums cover it): the
//! comments are added to the printed script only, never inside a dollar-quoted body.

use crate::migrate::dollar_quotes::DollarQuotes;
use crate::migrate::flow::contract::SESSION_COLUMNS;
use crate::migrate::revisions::legacy::LEGACY_TABLES;

/// Excused for the whole script (the reason, then the rule).
pub(crate) const FILE_EXCEPTIONS: &[(&str, &str)] = &[(
    "flowkey bounds lock waits (lock_timeout), not work: a statement_timeout would cancel a \
     CREATE INDEX CONCURRENTLY or a backfill statement midway on a large table",
    "require-statement-timeout",
)];

/// One exception: the rule, why, and the lines (trimmed, outside any dollar-quoted body, in
/// the `CREATE TABLE` named, if any) it applies to.
struct Exception {
    rule: &'static str,
    reason: &'static str,
    applies: fn(line: &str, table: Option<&str>) -> bool,
}

fn is_legacy(table: Option<&str>) -> bool {
    table.is_some_and(|table| LEGACY_TABLES.contains(&table))
}

/// flowkey's own tables: its bookkeeping (`flowkey_*`) and the session→flow mapping.
fn is_flowkeys(table: Option<&str>) -> bool {
    table.is_some_and(|table| table.starts_with("flowkey_") || table == "session_flow_mapping")
}

/// A session-key column the contract drops (or its way down adds back), as `<table> <verb>
/// COLUMN [IF [NOT] EXISTS] <column>`.
fn is_contract_column(line: &str, verb: &str) -> bool {
    SESSION_COLUMNS.iter().any(|column| {
        let exists = if verb == "DROP" {
            "IF EXISTS"
        } else {
            "IF NOT EXISTS"
        };
        line.starts_with(&format!(
            "ALTER TABLE {} {verb} COLUMN {exists} {} ",
            column.table, column.column
        )) || line
            == format!(
                "ALTER TABLE {} {verb} COLUMN {exists} {};",
                column.table, column.column
            )
    })
}

const EXCEPTIONS: &[Exception] = &[
    Exception {
        rule: "ban-drop-column",
        reason: "the contract drops the session keys only past its gate (no legacy writes), after archiving every value the mapping cannot give back; `downgrade -1` restores them",
        applies: |line, _| is_contract_column(line, "DROP"),
    },
    Exception {
        rule: "prefer-text-field",
        reason: "the contract's way down adds the legacy column back exactly as the legacy schema has it",
        applies: |line, _| is_contract_column(line, "ADD") && line.contains("varchar("),
    },
    Exception {
        rule: "prefer-text-field",
        reason: "the platform's legacy schema, verbatim (shared/legacy): flowkey reproduces it, it does not redesign it",
        applies: |line, table| is_legacy(table) && line.contains("varchar("),
    },
    Exception {
        rule: "prefer-bigint-over-int",
        reason: "the platform's legacy schema, verbatim (shared/legacy): flowkey reproduces it, it does not redesign it",
        applies: |line, table| {
            is_legacy(table) && (line.contains(" integer") || line.contains(" int "))
        },
    },
    Exception {
        rule: "prefer-text-field",
        reason: "flowkey's own bookkeeping table, written only by flowkey with bounded values; its types are part of a released revision",
        applies: |line, table| is_flowkeys(table) && line.contains("varchar("),
    },
    Exception {
        rule: "prefer-identity",
        reason: "flowkey's own log table as released (live_mapping); nothing but flowkey writes it",
        applies: |line, table| is_flowkeys(table) && line.contains("bigserial"),
    },
    Exception {
        rule: "ban-drop-not-null",
        reason: "deliberate: new code writes deletion audit rows with a flow and no session; the downgrade gives each a session and sets NOT NULL back through a validated check",
        applies: |line, _| {
            line == "ALTER TABLE flow_deletion_audit ALTER COLUMN session_id DROP NOT NULL;"
        },
    },
    Exception {
        rule: "prefer-robust-stmts",
        reason: "online DDL runs each statement alone, outside a transaction block, so that it holds its lock briefly; the statement is idempotent, so rerunning the step after a stop is safe",
        applies: |line, _| {
            (line.starts_with("ALTER TABLE ") && line.contains(" VALIDATE CONSTRAINT "))
                || line == "ALTER TABLE flow_deletion_audit ALTER COLUMN session_id DROP NOT NULL;"
                || line == "ALTER TABLE flow_deletion_audit ALTER COLUMN session_id SET NOT NULL;"
        },
    },
    Exception {
        rule: "prefer-robust-stmts",
        reason: "the check was added three statements above in this step: if it is gone, something else dropped it, and the script must stop",
        applies: |line, _| {
            line == "ALTER TABLE flow_deletion_audit DROP CONSTRAINT flowkey_deletion_audit_session_not_null;"
        },
    },
    Exception {
        rule: "ban-drop-function",
        reason: "flowkey's own trigger function, created by the upgrade and called only by flowkey's triggers (dropped before it)",
        applies: |line, _| line.starts_with("DROP FUNCTION IF EXISTS flowkey_"),
    },
    Exception {
        rule: "ban-drop-constraint",
        reason: "flowkey's own constraint on its flow_id column or check, added by the upgrade: the downgrade gives back the legacy schema exactly",
        applies: |line, _| {
            line.starts_with("ALTER TABLE ")
                && (line.contains(" DROP CONSTRAINT IF EXISTS fk_") && line.ends_with("_flow_id;")
                    || line.contains(" DROP CONSTRAINT flowkey_")
                    || line.contains(" DROP CONSTRAINT IF EXISTS flowkey_"))
        },
    },
    Exception {
        rule: "ban-drop-column",
        reason: "flowkey's own flow_id column, added by the upgrade and never read by legacy code: the downgrade gives back the legacy schema exactly (rows written at head got a session first)",
        applies: |line, _| {
            line.starts_with("ALTER TABLE ") && line.ends_with(" DROP COLUMN IF EXISTS flow_id;")
        },
    },
    Exception {
        rule: "ban-drop-table",
        reason: "flowkey's own mapping table, created by the upgrade: the downgrade gives back the legacy schema exactly",
        applies: |line, _| line == "DROP TABLE IF EXISTS session_flow_mapping;",
    },
    Exception {
        rule: "ban-drop-table",
        reason: "`downgrade base` removes the legacy schema itself: only for a database flowkey created (tests, seeds), never a platform's",
        applies: |line, _| {
            line.strip_prefix("DROP TABLE ")
                .and_then(|rest| rest.strip_suffix(';'))
                .is_some_and(|table| LEGACY_TABLES.contains(&table))
        },
    },
];

/// `script` with every exception written in before the line it excuses, and the file-wide
/// ones at the top.
pub(crate) fn annotate(script: &str) -> String {
    let mut out = String::with_capacity(script.len() * 2);
    for (reason, rule) in FILE_EXCEPTIONS {
        out.push_str(&format!("-- {reason}\n-- squawk-ignore-file {rule}\n"));
    }
    let mut quotes = DollarQuotes::default();
    let mut table: Option<String> = None;
    for line in script.lines() {
        let trimmed = line.trim();
        if !quotes.is_open() {
            if let Some(rest) = trimmed.strip_prefix("CREATE TABLE ") {
                let name = rest
                    .trim_start_matches("IF NOT EXISTS ")
                    .split(|c: char| c.is_whitespace() || c == '(')
                    .next()
                    .unwrap_or_default();
                table = Some(name.to_owned());
            }
            let excused: Vec<&Exception> = EXCEPTIONS
                .iter()
                .filter(|exception| (exception.applies)(trimmed, table.as_deref()))
                .collect();
            let indent = &line[..line.len() - line.trim_start().len()];
            for exception in &excused {
                out.push_str(&format!("{indent}-- {}\n", exception.reason));
            }
            if !excused.is_empty() {
                let rules: Vec<&str> = excused.iter().map(|exception| exception.rule).collect();
                out.push_str(&format!("{indent}-- squawk-ignore {}\n", rules.join(", ")));
            }
            if trimmed.ends_with(';') {
                table = None;
            }
        }
        quotes.read(line);
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exception_names_its_rule_on_the_line_before_and_never_enters_a_body() {
        let script = "CREATE TABLE IF NOT EXISTS flowkey_flags (\n    name varchar(64) NOT NULL\n);\n\
                      CREATE FUNCTION f() RETURNS trigger AS $$\nBEGIN\n  DROP FUNCTION IF EXISTS flowkey_x();\nEND;\n$$ LANGUAGE plpgsql;\n\
                      ALTER TABLE assets DROP COLUMN IF EXISTS flow_id;\nALTER TABLE assets DROP COLUMN IF EXISTS name;\n";
        let annotated = annotate(script);
        assert!(
            annotated.contains("-- squawk-ignore prefer-text-field\n    name varchar(64)"),
            "{annotated}"
        );
        assert!(
            annotated.contains("-- squawk-ignore ban-drop-column\nALTER TABLE assets DROP COLUMN IF EXISTS flow_id;"),
            "{annotated}"
        );
        assert!(
            annotated.contains("BEGIN\n  DROP FUNCTION IF EXISTS flowkey_x();"),
            "a body is left as it is: {annotated}"
        );
        assert!(
            annotated.contains("flow_id;\nALTER TABLE assets DROP COLUMN IF EXISTS name;"),
            "a column not flowkey's is not excused: {annotated}"
        );
    }
}
