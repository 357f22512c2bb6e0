//! A revision's fingerprint: applied revisions are never edited, and the runner proves it by
//! comparing the checksum stored when a revision was applied with the one it computes now.

use sha2::{Digest, Sha256};

use crate::db::Engine;
use crate::migrate::{Action, Revision, Step, StepSql};

/// SHA-256 (hex) over the revision id and, for each step up then down, its name and its SQL
/// for both engines: fixed or generated text, and for a code step the SQL the code runs.
pub fn checksum(revision: &Revision) -> String {
    let mut hasher = Sha256::new();
    field(&mut hasher, "id", revision.id);
    for (direction, steps) in [("up", revision.up), ("down", revision.down)] {
        for step in steps {
            field(&mut hasher, "direction", direction);
            hash_step(&mut hasher, step);
        }
    }
    hex::encode(hasher.finalize())
}

fn hash_step(hasher: &mut Sha256, step: &Step) {
    field(hasher, "step", step.name);
    let (kind, sql) = match &step.action {
        Action::Sql(sql) => ("sql", sql),
        Action::OnlineDdl(sql) => ("online", sql),
        Action::Code { sql, .. } => ("code", sql),
        // A check writes only flowkey's bookkeeping: its name and kind are part of the
        // revision, its SQL is not (see `Action::Check`).
        Action::Check { .. } => {
            field(hasher, "check", "reads only");
            return;
        }
    };
    hash_sql(hasher, kind, sql);
}

fn hash_sql(hasher: &mut Sha256, kind: &str, sql: &StepSql) {
    field(
        hasher,
        &format!("{kind}.sqlite"),
        &sql.for_engine(Engine::Sqlite),
    );
    field(
        hasher,
        &format!("{kind}.postgres"),
        &sql.for_engine(Engine::Postgres),
    );
}

/// Whether `recorded` (a checksum stored in `flowkey_versions`) records `revision`: its
/// checksum now, or one it had in an earlier build with the same behaviour.
pub fn matches(revision: &Revision, recorded: &str) -> bool {
    recorded == checksum(revision) || revision.earlier_checksums.contains(&recorded)
}

/// Length-prefixed, so that moving text from one field to the next changes the checksum.
fn field(hasher: &mut Sha256, tag: &str, value: &str) {
    hasher.update(tag.as_bytes());
    hasher.update((value.len() as u64).to_le_bytes());
    hasher.update(value.as_bytes());
}

/// The first characters of a checksum, for messages.
pub fn short(checksum: &str) -> &str {
    checksum.get(..12).unwrap_or(checksum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::revisions::legacy::LEGACY;

    fn rule_a(_: Engine) -> String {
        "UPDATE t SET flow_id = m.flow_id FROM m WHERE m.session_id = t.session_id".to_owned()
    }

    fn rule_b(_: Engine) -> String {
        "UPDATE t SET flow_id = m.flow_id FROM m WHERE m.session_id = t.other_key".to_owned()
    }

    fn code_revision(
        sql: StepSql,
        kind: fn(crate::migrate::CodeFn, StepSql) -> Action,
    ) -> Revision {
        Revision {
            id: "r",
            description: "",
            up: crate::migrate::revision::leak_steps(vec![Step {
                name: "s",
                // Checksums never run a step: any code step stands in.
                action: kind(crate::migrate::flow::verify::verify_step, sql),
            }]),
            down: &[],
            earlier_checksums: &[],
        }
    }

    #[test]
    fn a_code_steps_checksum_covers_the_sql_it_generates() {
        let code = |run, sql| Action::Code {
            run,
            sql,
            offline: None,
        };
        let a = code_revision(StepSql::Generated(rule_a), code);
        let b = code_revision(StepSql::Generated(rule_b), code);
        assert_ne!(checksum(&a), checksum(&b));
        // A check writes only flowkey's bookkeeping: its SQL is not part of the checksum.
        let check = |run, sql| Action::Check {
            run,
            sql,
            offline: None,
        };
        let a = code_revision(StepSql::Generated(rule_a), check);
        let b = code_revision(StepSql::Generated(rule_b), check);
        assert_eq!(checksum(&a), checksum(&b));
    }

    #[test]
    fn an_earlier_checksum_is_accepted_only_where_listed() {
        let revision = Revision {
            earlier_checksums: &["abc"],
            ..code_revision(StepSql::Generated(rule_a), |run, sql| Action::Code {
                run,
                sql,
                offline: None,
            })
        };
        assert!(matches(&revision, &checksum(&revision)));
        assert!(matches(&revision, "abc"));
        assert!(!matches(&revision, "abd"));
    }

    #[test]
    fn checksum_is_stable_and_hex() {
        let first = checksum(&LEGACY);
        assert_eq!(first, checksum(&LEGACY));
        assert_eq!(first.len(), 64);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
