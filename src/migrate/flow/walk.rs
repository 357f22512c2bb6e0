//! How the backfill walks a table in batches: by physical position, the order the table is
//! stored in: page ranges on PostgreSQL (TID range scans, PostgreSQL 14+), rowid ranges on
//! SQLite.
//!
//! The legacy primary keys are random UUIDs, so a batch of consecutive keys is scattered over
//! the whole table. Batches cut by primary key (the first version) read and rewrote about one
//! page per row: the online backfill ran at 0.43-0.47x the speed of one offline `UPDATE` on
//! PostgreSQL from 1M rows up, and a SQLite batch cost 4x per row what a rowid-range batch
//! costs. A batch of consecutive positions reads the table in order, as the offline `UPDATE`
//! does.
//!
//! Why walking positions misses no row: the walk covers every position the table had when the
//! run started. A row that existed then is at one of them unless something moved it. An
//! UPDATE moves a row on PostgreSQL (never on SQLite), and every UPDATE passes through the
//! dual-write trigger, which links the row as it moves; rows inserted later are linked by the
//! trigger too. What no trigger sees (`VACUUM FULL` or `CLUSTER` rewriting a PostgreSQL table
//! mid-walk, a SQLite `VACUUM` renumbering rowids) is caught by the closing sweep: each batch
//! statement once over the whole table, which links nothing when the walk was complete (the
//! backfill records how many rows it linked).

use crate::db::Db;

/// What a position is on this engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionKind {
    /// A PostgreSQL heap page.
    Page,
    /// A SQLite rowid.
    Rowid,
}

impl PositionKind {
    /// The prefix of a stored cursor (`page:<next>` / `rowid:<next>`).
    fn cursor_prefix(self) -> &'static str {
        match self {
            PositionKind::Page => "page:",
            PositionKind::Rowid => "rowid:",
        }
    }

    /// The batch predicate over alias `r`: positions `[$1, $2)`.
    fn predicate(self) -> &'static str {
        match self {
            PositionKind::Page => "r.ctid >= $1::tid AND r.ctid < $2::tid",
            PositionKind::Rowid => {
                "r.rowid >= CAST($1 AS INTEGER) AND r.rowid < CAST($2 AS INTEGER)"
            }
        }
    }

    fn bind(self, position: i64) -> String {
        match self {
            PositionKind::Page => format!("({position},0)"),
            PositionKind::Rowid => position.to_string(),
        }
    }
}

/// Where a table's walk stands: positions `[next, next + n)` per batch, up to `end` (one past
/// the table's last position when the run started).
#[derive(Debug, Clone)]
pub struct Walk {
    kind: PositionKind,
    next: i64,
    end: i64,
    rows_per_position: f64,
}

/// One batch: the predicate over alias `r` (with `$n` binds), the cursor to store once it is
/// committed, and about how many rows it walks over.
#[derive(Debug, Clone)]
pub struct Batch {
    pub predicate: String,
    pub binds: Vec<String>,
    pub cursor: String,
    pub rows: i64,
}

impl Walk {
    /// The walk for `table`, resumed from a stored cursor. A cursor of another kind (a
    /// primary key written by an older flowkey) restarts the walk from the beginning, which is
    /// only extra reading: batches touch rows whose `flow_id` is still NULL.
    pub async fn resume(
        db: &Db,
        table: &str,
        stored: Option<String>,
        total_rows: i64,
    ) -> Result<Walk, sqlx::Error> {
        let (kind, end) = match db {
            Db::Postgres(pool) => {
                let pages: i64 = sqlx::query_scalar(
                    "SELECT (pg_relation_size($1::regclass) / current_setting('block_size')::bigint)::bigint",
                )
                .bind(table)
                .fetch_one(pool)
                .await?;
                (PositionKind::Page, pages)
            }
            Db::Sqlite(pool) => {
                let last: Option<i64> =
                    sqlx::query_scalar(&format!("SELECT max(rowid) FROM {table}"))
                        .fetch_one(pool)
                        .await?;
                (PositionKind::Rowid, last.map_or(0, |last| last + 1))
            }
        };
        let next = stored
            .as_deref()
            .and_then(|cursor| cursor.strip_prefix(kind.cursor_prefix()))
            .and_then(|position| position.parse::<i64>().ok())
            .unwrap_or(0);
        Ok(Walk {
            kind,
            next,
            end,
            rows_per_position: total_rows.max(0) as f64 / end.max(1) as f64,
        })
    }

    /// The next batch of about `rows` rows, or `None` when the walk is over. Reads nothing:
    /// a batch of positions needs no lookup to find its end.
    pub fn next_batch(&self, rows: i64) -> Option<Batch> {
        if self.next >= self.end {
            return None;
        }
        let positions = position_count(rows, self.rows_per_position);
        let hi = self.next.saturating_add(positions);
        Some(Batch {
            predicate: self.kind.predicate().to_owned(),
            binds: vec![self.kind.bind(self.next), self.kind.bind(hi)],
            cursor: format!("{}{hi}", self.kind.cursor_prefix()),
            rows: ((hi.min(self.end) - self.next) as f64 * self.rows_per_position).round() as i64,
        })
    }

    /// Moves past a committed batch.
    pub fn advance(&mut self, batch: &Batch) {
        if let Some(position) = batch
            .cursor
            .strip_prefix(self.kind.cursor_prefix())
            .and_then(|position| position.parse().ok())
        {
            self.next = position;
        }
    }
}

/// Positions holding about `rows` rows: at least one.
fn position_count(rows: i64, rows_per_position: f64) -> i64 {
    if rows_per_position <= 0.0 {
        return rows.max(1);
    }
    ((rows as f64 / rows_per_position).ceil() as i64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(kind: PositionKind, next: i64, end: i64, rows_per_position: f64) -> Walk {
        Walk {
            kind,
            next,
            end,
            rows_per_position,
        }
    }

    #[test]
    fn a_batch_holds_about_the_asked_rows() {
        assert_eq!(position_count(1_000, 15.0), 67);
        assert_eq!(position_count(1, 15.0), 1);
        assert_eq!(position_count(1_000, 0.0), 1_000);
    }

    #[test]
    fn page_batches_cover_the_table_once_and_end() {
        let mut pages = walk(PositionKind::Page, 0, 10, 15.0);
        let mut covered = Vec::new();
        while let Some(batch) = pages.next_batch(45) {
            covered.push(batch.binds.clone());
            pages.advance(&batch);
        }
        assert_eq!(
            covered,
            vec![
                vec!["(0,0)".to_owned(), "(3,0)".to_owned()],
                vec!["(3,0)".to_owned(), "(6,0)".to_owned()],
                vec!["(6,0)".to_owned(), "(9,0)".to_owned()],
                vec!["(9,0)".to_owned(), "(12,0)".to_owned()],
            ]
        );
    }

    #[test]
    fn rowid_batches_resume_from_their_cursor() {
        let mut rows = walk(PositionKind::Rowid, 0, 100, 1.0);
        let batch = rows.next_batch(40).expect("a batch");
        assert_eq!(batch.cursor, "rowid:40");
        assert_eq!(batch.rows, 40);
        rows.advance(&batch);
        let last = rows.next_batch(80).expect("a batch");
        assert_eq!(last.binds, vec!["40".to_owned(), "120".to_owned()]);
        assert_eq!(last.rows, 60);
    }
}
