//! How the backfill walks a table in batches: by primary key on SQLite, by physical page on
//! PostgreSQL.
//!
//! The legacy primary keys are random UUIDs, so a batch of consecutive keys is scattered over
//! the whole heap: on PostgreSQL each batch of N rows read and rewrote about N different
//! pages, and the online backfill ran at 0.43-0.47x the speed of one offline `UPDATE` from
//! 1M rows up. A batch of consecutive pages (a TID range scan, PostgreSQL 14+) reads the heap
//! in order, as the offline `UPDATE` does.
//!
//! Why walking pages misses no row: the walk covers every page the table had when the run
//! started; a row that existed then is on one of them unless an UPDATE moved it, and every
//! UPDATE passes through the dual-write trigger, which links the row as it moves. What the
//! trigger cannot see (a `VACUUM FULL` or `CLUSTER` rewriting the table mid-walk) is caught by
//! the closing sweep: each batch statement once over the whole table, which links nothing when
//! the walk was complete (the backfill records how many rows it linked).

use crate::db::{Db, Tx};
use crate::migrate::flow::tables::{next_bound, Key, KeyRange};

/// The prefix of a stored page cursor (`page:<next page>`); a stored primary key has none.
const PAGE_CURSOR_PREFIX: &str = "page:";

/// Where a table's walk stands.
#[derive(Debug, Clone)]
pub enum Walk {
    /// `(cursor, next key]` per batch, through the primary key index.
    Keys { cursor: Option<Key> },
    /// Pages `[next, next + n)` per batch, up to `end` (the table's size when the run
    /// started).
    Pages {
        next: i64,
        end: i64,
        rows_per_page: f64,
    },
}

/// One batch: the predicate over alias `r` (with `$n` binds), the cursor to store once it is
/// committed, and how many rows it walks over (an estimate when walking pages).
#[derive(Debug, Clone)]
pub struct Batch {
    pub predicate: String,
    pub binds: Vec<String>,
    pub cursor: String,
    pub rows: i64,
}

impl Walk {
    /// The walk for `table` on this engine, resumed from a stored cursor. A cursor of the
    /// other kind (written by an older flowkey) restarts the walk from the beginning, which
    /// is only extra reading: batches touch rows whose `flow_id` is still NULL.
    pub async fn resume(
        db: &Db,
        table: &str,
        stored: Option<String>,
        total_rows: i64,
    ) -> Result<Walk, sqlx::Error> {
        match db {
            Db::Sqlite(_) => Ok(Walk::Keys {
                cursor: stored.filter(|key| !key.starts_with(PAGE_CURSOR_PREFIX)),
            }),
            Db::Postgres(pool) => {
                let end: i64 = sqlx::query_scalar(
                    "SELECT (pg_relation_size($1::regclass) / current_setting('block_size')::bigint)::bigint",
                )
                .bind(table)
                .fetch_one(pool)
                .await?;
                let next = stored
                    .as_deref()
                    .and_then(|key| key.strip_prefix(PAGE_CURSOR_PREFIX))
                    .and_then(|page| page.parse::<i64>().ok())
                    .unwrap_or(0);
                Ok(Walk::Pages {
                    next,
                    end,
                    rows_per_page: total_rows.max(0) as f64 / end.max(1) as f64,
                })
            }
        }
    }

    /// The next batch of about `rows` rows, or `None` when the walk is over.
    pub async fn next_batch(
        &self,
        tx: &mut Tx<'_>,
        table: &str,
        rows: i64,
    ) -> Result<Option<Batch>, sqlx::Error> {
        match self {
            Walk::Keys { cursor } => {
                let Some((hi, n)) = next_bound(tx, table, cursor.as_ref(), rows).await? else {
                    return Ok(None);
                };
                let range = KeyRange {
                    lo: cursor.clone(),
                    hi: hi.clone(),
                };
                let (predicate, binds) = range.predicate(tx.engine(), "r");
                Ok(Some(Batch {
                    predicate,
                    binds,
                    cursor: hi,
                    rows: n,
                }))
            }
            Walk::Pages {
                next,
                end,
                rows_per_page,
            } => {
                if next >= end {
                    return Ok(None);
                }
                let pages = page_count(rows, *rows_per_page);
                let hi = next.saturating_add(pages);
                Ok(Some(Batch {
                    predicate: "r.ctid >= $1::tid AND r.ctid < $2::tid".to_owned(),
                    binds: vec![format!("({next},0)"), format!("({hi},0)")],
                    cursor: format!("{PAGE_CURSOR_PREFIX}{hi}"),
                    rows: ((hi.min(*end) - next) as f64 * rows_per_page).round() as i64,
                }))
            }
        }
    }

    /// Moves past a committed batch.
    pub fn advance(&mut self, batch: &Batch) {
        match self {
            Walk::Keys { cursor } => *cursor = Some(batch.cursor.clone()),
            Walk::Pages { next, .. } => {
                if let Some(page) = batch
                    .cursor
                    .strip_prefix(PAGE_CURSOR_PREFIX)
                    .and_then(|page| page.parse().ok())
                {
                    *next = page;
                }
            }
        }
    }

    /// Whether the walk ends with the closing sweep (see the module documentation).
    pub fn needs_sweep(&self) -> bool {
        matches!(self, Walk::Pages { .. })
    }
}

/// Pages holding about `rows` rows: at least one.
fn page_count(rows: i64, rows_per_page: f64) -> i64 {
    if rows_per_page <= 0.0 {
        return rows.max(1);
    }
    ((rows as f64 / rows_per_page).ceil() as i64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_batch_holds_about_the_asked_rows() {
        assert_eq!(page_count(1_000, 15.0), 67);
        assert_eq!(page_count(1, 15.0), 1);
        assert_eq!(page_count(1_000, 0.0), 1_000);
    }

    #[test]
    fn advancing_a_page_walk_moves_to_the_batch_end() {
        let mut walk = Walk::Pages {
            next: 0,
            end: 100,
            rows_per_page: 10.0,
        };
        let batch = Batch {
            predicate: String::new(),
            binds: vec![],
            cursor: "page:40".to_owned(),
            rows: 400,
        };
        walk.advance(&batch);
        assert!(matches!(walk, Walk::Pages { next: 40, .. }));
    }
}
