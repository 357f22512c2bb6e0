//! The dual-write triggers (docs/schema-head.md, "Dual write"), one template per engine,
//! instantiated for each linked table from its [`Rule`]: old code writing only `session_id`
//! and new code writing only `flow_id` both leave rows with both keys.
//!
//! What a trigger does, by the parts of the rule:
//! - session path: a row written with a session and no flow gets the flow its session maps
//!   to in its tenant; a row inserted with a flow and no session gets the smallest session
//!   mapped to that flow in its tenant (for a UUID session key, one that exists: the column
//!   references `data_import_sessions`); an UPDATE that changes the session and not the flow
//!   relinks the row (SQLite: and one that clears the session clears the flow).
//! - import fallback: a row with no session (or no session column) and no flow gets the flow
//!   of its import (in its tenant, where the row has tenant columns).
//! - naming-flow fallback: no trigger. The flow that names an import is written after the
//!   import; the backfill links such rows, and new code writes `flow_id` itself.

use std::fmt::Write as _;

use crate::db::Engine;
use crate::migrate::flow::linked::{Applies, Fallback, LinkedTable, Path, SessionKey};

/// The path a trigger follows for a row without a session (or without a session column),
/// if the rule gives one that a trigger can follow.
fn fallback_path(table: &LinkedTable, engine: Engine) -> Option<Path> {
    match table.rule().fallback? {
        Fallback::Import => table
            .paths(engine, "NEW")
            .into_iter()
            .find(|path| path.applies != Applies::WithSession),
        Fallback::NamingFlow => None,
    }
}

/// The session path of a table, over `NEW`.
fn session_path(table: &LinkedTable, engine: Engine) -> Option<Path> {
    table
        .paths(engine, "NEW")
        .into_iter()
        .find(|path| path.applies == Applies::WithSession)
}

/// The PostgreSQL trigger function and trigger of one table.
pub fn postgres_trigger(table: &LinkedTable) -> String {
    let t = table.name;
    let rule = table.rule();
    let tenant_m = table.and_tenant_agrees("NEW", "m");
    let mut body = String::new();
    if let (Some(key), Some(path)) = (rule.session, session_path(table, Engine::Postgres)) {
        let existing_session = match key {
            SessionKey::Uuid => {
                "\n          AND EXISTS (SELECT 1 FROM data_import_sessions s WHERE s.id = m.session_id)"
            }
            SessionKey::FreeText => "",
        };
        let _ = write!(
            body,
            "    IF TG_OP = 'UPDATE' AND NEW.session_id IS DISTINCT FROM OLD.session_id
       AND NEW.flow_id IS NOT DISTINCT FROM OLD.flow_id THEN
        NEW.flow_id := NULL;
    END IF;
    IF NEW.flow_id IS NULL AND NEW.session_id IS NOT NULL THEN
        SELECT {flow} INTO NEW.flow_id FROM {source}
        WHERE {matches};
    ELSIF TG_OP = 'INSERT' AND NEW.flow_id IS NOT NULL AND NEW.session_id IS NULL THEN
        SELECT {stored} INTO NEW.session_id FROM session_flow_mapping m
        WHERE m.flow_id = NEW.flow_id{tenant_m}{existing_session}
        ORDER BY m.session_id LIMIT 1;
    END IF;
",
            stored = table.mapped_session_as_stored(Engine::Postgres),
            flow = path.flow,
            source = path.source,
            matches = path.matches(),
        );
    }
    if let Some(path) = fallback_path(table, Engine::Postgres) {
        let condition = match path.applies_sql("NEW") {
            Some(applies) => format!("NEW.flow_id IS NULL AND {applies}"),
            None => "NEW.flow_id IS NULL".to_owned(),
        };
        let _ = write!(
            body,
            "    IF {condition} THEN
        SELECT {flow} INTO NEW.flow_id FROM {source}
        WHERE {matches};
    END IF;
",
            flow = path.flow,
            source = path.source,
            matches = path.matches(),
        );
    }
    // `SET search_path FROM CURRENT`: the body names tables unqualified, and a trigger runs
    // with the writing session's search_path; pinned to the schema flowkey migrated, a
    // session whose path names another schema (or none) still links within this one.
    format!(
        "CREATE OR REPLACE FUNCTION flowkey_dual_write_{t}() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
{body}    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS flowkey_dual_write ON {t};
CREATE TRIGGER flowkey_dual_write BEFORE INSERT OR UPDATE ON {t}
    FOR EACH ROW EXECUTE FUNCTION flowkey_dual_write_{t}();
"
    )
}

/// Drops the PostgreSQL trigger and its function.
pub fn postgres_drop_trigger(table: &LinkedTable) -> String {
    let t = table.name;
    format!(
        "DROP TRIGGER IF EXISTS flowkey_dual_write ON {t};\nDROP FUNCTION IF EXISTS flowkey_dual_write_{t}();\n"
    )
}

/// One SQLite trigger: its name suffix, event, condition and the UPDATE it runs.
struct SqliteTrigger {
    suffix: &'static str,
    event: &'static str,
    when: String,
    set: String,
}

/// The SQLite triggers of one table (SQLite has no BEFORE-row assignment: AFTER triggers
/// update the row they fire on).
fn sqlite_triggers(table: &LinkedTable) -> Vec<SqliteTrigger> {
    let rule = table.rule();
    let tenant_m = table.and_tenant_agrees("NEW", "m");
    let mut triggers = Vec::new();
    if let (Some(key), Some(path)) = (rule.session, session_path(table, Engine::Sqlite)) {
        let flow_of_session = format!("flow_id = {}", path.flow_subquery());
        let existing_session = match key {
            SessionKey::Uuid => {
                " AND EXISTS (SELECT 1 FROM data_import_sessions s WHERE s.id = m.session_id)"
            }
            SessionKey::FreeText => "",
        };
        triggers.push(SqliteTrigger {
            suffix: "flow_on_insert",
            event: "INSERT",
            when: "NEW.flow_id IS NULL AND NEW.session_id IS NOT NULL".to_owned(),
            set: flow_of_session.clone(),
        });
        triggers.push(SqliteTrigger {
            suffix: "session_on_insert",
            event: "INSERT",
            when: "NEW.flow_id IS NOT NULL AND NEW.session_id IS NULL".to_owned(),
            set: format!(
                "session_id = (SELECT m.session_id FROM session_flow_mapping m WHERE m.flow_id = NEW.flow_id{tenant_m}{existing_session} ORDER BY m.session_id LIMIT 1)"
            ),
        });
        triggers.push(SqliteTrigger {
            suffix: "flow_on_update",
            event: "UPDATE",
            when: "NEW.session_id IS NOT NULL AND (NEW.flow_id IS NULL OR (NEW.session_id IS NOT OLD.session_id AND NEW.flow_id IS OLD.flow_id))".to_owned(),
            set: flow_of_session,
        });
        triggers.push(SqliteTrigger {
            suffix: "flow_cleared_on_update",
            event: "UPDATE",
            when: "NEW.session_id IS NULL AND OLD.session_id IS NOT NULL AND NEW.flow_id IS OLD.flow_id AND NEW.flow_id IS NOT NULL".to_owned(),
            set: "flow_id = NULL".to_owned(),
        });
    }
    if let Some(path) = fallback_path(table, Engine::Sqlite) {
        let when = match path.applies_sql("NEW") {
            Some(applies) => format!("NEW.flow_id IS NULL AND {applies}"),
            None => "NEW.flow_id IS NULL".to_owned(),
        };
        let set = format!("flow_id = {}", path.flow_subquery());
        for (suffix, event) in [
            ("flow_from_import_on_insert", "INSERT"),
            ("flow_from_import_on_update", "UPDATE"),
        ] {
            triggers.push(SqliteTrigger {
                suffix,
                event,
                when: when.clone(),
                set: set.clone(),
            });
        }
    }
    triggers
}

/// The SQLite triggers of one table.
pub fn sqlite_trigger(table: &LinkedTable) -> String {
    let t = table.name;
    let mut out = String::new();
    for trigger in sqlite_triggers(table) {
        let _ = write!(
            out,
            "CREATE TRIGGER flowkey_dw_{t}_{suffix} AFTER {event} ON {t}
WHEN {when}
BEGIN
    UPDATE {t} SET {set} WHERE id = NEW.id; END;
",
            suffix = trigger.suffix,
            event = trigger.event,
            when = trigger.when,
            set = trigger.set,
        );
    }
    out
}

/// Drops the SQLite triggers of one table.
pub fn sqlite_drop_trigger(table: &LinkedTable) -> String {
    sqlite_triggers(table)
        .iter()
        .map(|trigger| {
            format!(
                "DROP TRIGGER IF EXISTS flowkey_dw_{}_{};\n",
                table.name, trigger.suffix
            )
        })
        .collect()
}
