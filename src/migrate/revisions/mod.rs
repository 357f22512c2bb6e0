//! Every revision flowkey knows, oldest first. Append only: a revision, once released, is
//! never edited (the runner refuses a changed checksum), and a new change is a new revision.

pub mod flow_backfill;
pub mod flow_constraints;
pub mod flow_contract;
pub mod flow_expand;
pub mod flow_mapping;
pub mod legacy;
pub mod legacy_write_signal;
pub mod linking;
pub mod live_mapping;
pub mod service_state;
pub mod write_ledger;

use std::sync::LazyLock;

use crate::migrate::Revision;

/// The ordered chain of revisions; the first is `legacy`; the last ones may be contract
/// revisions, which come after `head` (see [`head`]).
pub fn all() -> &'static [&'static Revision] {
    static ALL: LazyLock<[&'static Revision; 10]> = LazyLock::new(|| {
        [
            &legacy::LEGACY,
            &flow_mapping::FLOW_MAPPING,
            &flow_expand::FLOW_EXPAND,
            &flow_backfill::FLOW_BACKFILL,
            &flow_constraints::FLOW_CONSTRAINTS,
            &service_state::SERVICE_STATE,
            &live_mapping::LIVE_MAPPING,
            &legacy_write_signal::LEGACY_WRITE_SIGNAL,
            &write_ledger::WRITE_LEDGER,
            &flow_contract::FLOW_CONTRACT,
        ]
    });
    &*ALL
}

/// Revisions that come after `head`: `upgrade head` stops before them, and only an explicit
/// target (`flowkey contract`, `flowkey upgrade flow_contract`) runs them.
pub const AFTER_HEAD: &[&str] = &[crate::migrate::flow::contract::CONTRACT_REVISION];

/// Whether `id` is a revision after `head` (the contract).
pub fn is_after_head(id: &str) -> bool {
    AFTER_HEAD.contains(&id)
}

/// `head`: the last revision of the chain that is not after it (the last expand revision).
pub fn head() -> &'static Revision {
    head_of(all()).expect("the chain has a head")
}

/// The head of any chain (tests build their own).
pub fn head_of(chain: &'static [&'static Revision]) -> Option<&'static Revision> {
    chain
        .iter()
        .rev()
        .find(|revision| !is_after_head(revision.id))
        .copied()
}

/// The checksum of every released revision, as this build computes it. A revision's checksum
/// covers every statement it runs on both engines (generated text and code steps' SQL
/// included), so editing a rule that a released revision uses (a linked table's link, a
/// trigger template, a batch statement) changes it, and this list stops matching: the change
/// must go into a new revision instead, and the released one must keep generating what it
/// generated. Only a change that keeps every generated statement identical may pass.
pub const RELEASED_CHECKSUMS: &[(&str, &str)] = &[
    (
        "legacy",
        "4bd04fcce3d7abbfa31abe4e03362365a8afabea16d9e3d6f68b2c4a9ed485f8",
    ),
    (
        "flow_mapping",
        "d50ba568333b9bd265e04f54c823d27ee606e5b5a7acec1e8c3721957a2f27ab",
    ),
    (
        "flow_expand",
        "a87d1eee89f4fe829482998e2aa1484662c87128de4a461739ec56e32edfcf8b",
    ),
    (
        "flow_backfill",
        "1359e58131e9222f78279a9f266614ac2adb9b4e36a9f34e8c8cacf409ac685c",
    ),
    (
        "flow_constraints",
        "385f01b668a3a4d13b928a32e219c803f9bd6f6f7b528a8af712748d45246e5c",
    ),
    (
        "service_state",
        "bc3f9b889a59a5458a5809e532740742771eedfce4cd0595d138ffb9262ed149",
    ),
    (
        "live_mapping",
        "c9f2e877b27dcf5a184a56882fc20caa063dbd9a672f58bd28a113470ed17278",
    ),
    (
        "legacy_write_signal",
        "2736a32abfcf5ad235279efec2e5508e3a5ed52728352acc23b0c734bd95013f",
    ),
    (
        "write_ledger",
        "c59518f3c224a21a0beaf1391e1db03f20f24b377a1a2c917eec83a01344875d",
    ),
    (
        "flow_contract",
        "0fee418185049e5fc6aa5af6726da8afe9cccc47144db8e52e8da1bacc5b19fd",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::checksum::checksum;

    #[test]
    fn released_revisions_keep_their_checksums() {
        let now: Vec<(&str, String)> = all()
            .iter()
            .map(|revision| (revision.id, checksum(revision)))
            .collect();
        for (id, released) in RELEASED_CHECKSUMS {
            let current = now.iter().find(|(known, _)| known == id);
            assert_eq!(
                current.map(|(_, checksum)| checksum.as_str()),
                Some(*released),
                "released revision {id} changed: what it runs must stay as released; \
                 put the change in a new revision (see ARCHITECTURE.md, \"Changing a rule\"); \
                 checksums now: {now:?}"
            );
        }
        let listed: Vec<&str> = RELEASED_CHECKSUMS.iter().map(|(id, _)| *id).collect();
        let ids: Vec<&str> = now.iter().map(|(id, _)| *id).collect();
        assert_eq!(
            listed, ids,
            "every revision is listed, in chain order: {now:?}"
        );
    }

    /// `--sql` prints a step's SQL for the database's engine, and a code step's described SQL
    /// where it has no runnable form: every step has its SQL written for both engines (a
    /// step whose text for one engine was left empty would print nothing there), and every
    /// runnable PostgreSQL form says something (the psql script must do the step's work).
    #[test]
    fn every_step_has_its_sql_for_both_engines() {
        use crate::db::Engine;
        use crate::migrate::Action;
        for revision in all() {
            for step in revision.up.iter().chain(revision.down) {
                let (described, runnable) = match &step.action {
                    Action::Sql(sql) | Action::OnlineDdl(sql) => (sql, None),
                    Action::Code { sql, offline, .. } | Action::Check { sql, offline, .. } => {
                        (sql, offline.as_ref())
                    }
                };
                for engine in [Engine::Sqlite, Engine::Postgres] {
                    assert!(
                        !described.for_engine(engine).trim().is_empty(),
                        "{} / {}: no SQL for {engine:?}",
                        revision.id,
                        step.name
                    );
                }
                if let Some(runnable) = runnable {
                    assert!(
                        !runnable.for_engine(Engine::Postgres).trim().is_empty(),
                        "{} / {}: an empty runnable form",
                        revision.id,
                        step.name
                    );
                    // SQLite's runnable forms may be empty: its script describes code steps.
                    runnable.for_engine(Engine::Sqlite);
                }
            }
        }
    }
}
