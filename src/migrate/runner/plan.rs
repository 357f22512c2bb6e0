//! Where a run goes: the revision chain, the target grammar (`head`, `base`, `+N`, `-N`, a
//! revision id) and the path of revisions between the current one and the target.

use crate::migrate::offline::PlannedRevision;
use crate::migrate::{Direction, MigrateError, Revision, Step};

/// A revision chain, oldest first, and how targets resolve on it.
#[derive(Clone, Copy)]
pub(super) struct Chain(pub &'static [&'static Revision]);

impl Chain {
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.0.iter().position(|revision| revision.id == id)
    }

    /// `head`: the last revision that is not after it (the contract comes after head and
    /// runs only when named, see `revisions::AFTER_HEAD`).
    pub fn head(&self) -> Result<usize, MigrateError> {
        self.0
            .iter()
            .rposition(|revision| !crate::migrate::revisions::is_after_head(revision.id))
            .ok_or_else(|| self.unknown("head"))
    }

    pub fn unknown(&self, target: &str) -> MigrateError {
        let mut known: Vec<&str> = vec!["base", "head"];
        known.extend(self.0.iter().map(|revision| revision.id));
        MigrateError::UnknownTarget {
            target: target.into(),
            known: known.join(", "),
        }
    }

    /// The revision `stamp` and `--sql --from` name: `base` (`None`), `head` or an id.
    pub fn resolve_exact(&self, target: &str) -> Result<Option<usize>, MigrateError> {
        match target {
            "base" => Ok(None),
            "head" => self.head().map(Some),
            id => self.index_of(id).map(Some).ok_or_else(|| self.unknown(id)),
        }
    }

    /// The revision an upgrade to `target` ends at.
    pub fn resolve_up(
        &self,
        target: &str,
        current: Option<usize>,
    ) -> Result<Option<usize>, MigrateError> {
        let unreachable = |reason: String| MigrateError::UnreachableTarget {
            target: target.into(),
            direction: "upgrade",
            reason,
        };
        if target == "base" {
            return Err(unreachable("use `flowkey downgrade base`".into()));
        }
        if target == "head" {
            return self.head().map(Some);
        }
        if let Some(count) = target.strip_prefix('+') {
            let count: usize = count.parse().map_err(|_| self.unknown(target))?;
            let index = current.map_or(count.checked_sub(1), |at| Some(at + count));
            let head = self.head()?;
            return match index {
                Some(index) if index <= head => Ok(Some(index)),
                Some(_) => Err(unreachable(format!(
                    "only {} revisions are left before head (the contract after head runs only \
                     when named: `flowkey contract`)",
                    (head + 1).saturating_sub(current.map_or(0, |at| at + 1))
                ))),
                None => Ok(current),
            };
        }
        self.index_of(target)
            .map(Some)
            .ok_or_else(|| self.unknown(target))
    }

    /// The revision a downgrade to `target` ends at (`None`: base).
    pub fn resolve_down(
        &self,
        target: &str,
        current: Option<usize>,
    ) -> Result<Option<usize>, MigrateError> {
        let unreachable = |reason: String| MigrateError::UnreachableTarget {
            target: target.into(),
            direction: "downgrade",
            reason,
        };
        if target == "base" {
            return Ok(None);
        }
        if target == "head" {
            return Err(unreachable("use `flowkey upgrade head`".into()));
        }
        if let Some(count) = target.strip_prefix('-') {
            let count: usize = count.parse().map_err(|_| self.unknown(target))?;
            let Some(at) = current else {
                return Err(unreachable("the database is at base already".into()));
            };
            return match (at + 1).checked_sub(count) {
                Some(0) => Ok(None),
                Some(remaining) => Ok(Some(remaining - 1)),
                None => Err(unreachable(format!(
                    "only {} revisions are applied",
                    at + 1
                ))),
            };
        }
        let index = self.index_of(target).ok_or_else(|| self.unknown(target))?;
        if current.is_none_or(|at| index > at) {
            return Err(unreachable(format!(
                "it is not applied (the database is at {}); use `flowkey upgrade {target}`",
                current.map_or("base", |at| self.0[at].id)
            )));
        }
        Ok(Some(index))
    }

    /// The revisions between `current` and `target` in the order they run; the first starts
    /// at step `resume` when it is a dirty revision taken up again.
    pub fn plan_path(
        &self,
        current: Option<usize>,
        target: Option<usize>,
        direction: Direction,
        resume: Option<usize>,
    ) -> Vec<PlannedRevision> {
        let start = current.map_or(0, |at| at + 1);
        // An empty range where there is nothing to run (the target at or behind the start).
        let indexes: Vec<usize> = match direction {
            Direction::Up => target
                .into_iter()
                .flat_map(|target| start..=target)
                .collect(),
            Direction::Down => {
                let stop = target.map_or(0, |at| at + 1);
                current
                    .into_iter()
                    .flat_map(|at| (stop..=at).rev())
                    .collect()
            }
        };
        indexes
            .into_iter()
            .enumerate()
            .map(|(order, index)| PlannedRevision {
                revision: self.0[index],
                direction,
                first_step: if order == 0 { resume.unwrap_or(0) } else { 0 },
                resuming: order == 0 && resume.is_some(),
            })
            .collect()
    }
}

/// The steps a revision runs in `direction`.
pub(super) fn steps_of(revision: &Revision, direction: Direction) -> &'static [Step] {
    match direction {
        Direction::Up => revision.up,
        Direction::Down => revision.down,
    }
}
