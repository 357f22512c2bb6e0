//! SQLite's foreign key violations, counted so that a table rebuild can tell the violations
//! it would add from those the database already had. SQLite enforces foreign keys only on
//! connections that ask for it, so a legacy database written by an application that never
//! did can hold dangling references; they are the platform's, and a rebuild must neither
//! refuse to run because of them nor add any.

use std::collections::BTreeMap;

/// Violations per (child table, parent table), as `PRAGMA foreign_key_check` lists them. By
/// table and not by row: a rebuild copies a table's rows, and their rowids change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForeignKeyViolations(BTreeMap<(String, String), i64>);

impl ForeignKeyViolations {
    /// The violations of the database `conn` is connected to (inside its transaction, if any).
    pub async fn read(conn: &mut sqlx::SqliteConnection) -> Result<Self, sqlx::Error> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT \"table\", parent, count(*) FROM pragma_foreign_key_check \
             GROUP BY \"table\", parent ORDER BY \"table\", parent",
        )
        .fetch_all(conn)
        .await?;
        Ok(Self(
            rows.into_iter()
                .map(|(table, parent, count)| ((table, parent), count))
                .collect(),
        ))
    }

    /// What `self` has beyond `before`: per (child, parent), the violations added.
    pub fn added_since(&self, before: &Self) -> Vec<AddedViolations> {
        self.0
            .iter()
            .filter_map(|((table, parent), count)| {
                let added = count - before.0.get(&(table.clone(), parent.clone())).unwrap_or(&0);
                (added > 0).then(|| AddedViolations {
                    table: table.clone(),
                    parent: parent.clone(),
                    rows: added,
                })
            })
            .collect()
    }
}

/// Rows of `table` that reference a missing `parent` row, beyond those there were before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedViolations {
    pub table: String,
    pub parent: String,
    pub rows: i64,
}

/// The total of rows, and the first (child, parent) pair as "table -> parent", for messages.
pub fn describe(added: &[AddedViolations]) -> (i64, String) {
    let total = added.iter().map(|violation| violation.rows).sum();
    let first = added
        .first()
        .map(|violation| format!("{} -> {}", violation.table, violation.parent))
        .unwrap_or_default();
    (total, first)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn violations(pairs: &[(&str, &str, i64)]) -> ForeignKeyViolations {
        ForeignKeyViolations(
            pairs
                .iter()
                .map(|(table, parent, count)| (((*table).to_owned(), (*parent).to_owned()), *count))
                .collect(),
        )
    }

    #[test]
    fn only_violations_beyond_those_before_count() {
        let before = violations(&[("assets", "engagements", 2)]);
        let same = violations(&[("assets", "engagements", 2)]);
        assert_eq!(same.added_since(&before), vec![]);
        let after = violations(&[("assets", "engagements", 3), ("data_imports", "users", 1)]);
        let added = after.added_since(&before);
        assert_eq!(describe(&added), (2, "assets -> engagements".to_owned()));
    }
}
