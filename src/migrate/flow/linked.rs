//! The linked tables: the legacy tables that get a `flow_id`, each described once.
//!
//! Everything the migration does per table is derived from [`LINKED_TABLES`] and the one
//! `match` in [`Link::rule`]: the `flow_id` columns and the dual-write triggers of
//! `flow_expand` (templates in [`crate::migrate::flow::triggers`]), the backfill's statements,
//! the flow `verify` expects, the report's reasons, the indexes and foreign keys of
//! `flow_constraints`, what a downgrade gives back, and the tables the server's schema check
//! probes. Adding a linked table is one entry here (and, for a new way of linking, one
//! variant and its arm in [`Link::rule`]; every generator matches the rule's parts
//! exhaustively, so a missed case does not compile).
//!
//! A released revision must keep generating what it generated (`released_revisions_keep_
//! their_checksums`): a new table or a changed rule goes into a new revision, with
//! [`LinkedTable::since`] naming the revision that links it.

use crate::db::tenancy;
use crate::db::Engine;

/// One legacy table that carries a `flow_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkedTable {
    pub name: &'static str,
    pub link: Link,
    /// The row repeats its tenant (`client_account_id`, `engagement_id`); a link must agree
    /// with it (the tenant rule of [`crate::db::tenancy`]).
    pub tenant: TenantColumns,
    /// `flow_id` references `discovery_flows(flow_id)`. Audit and log rows outlive their
    /// flows, so they get no foreign key.
    pub flow_foreign_key: FlowForeignKey,
    /// Indexes beyond the one on `flow_id` (name, columns).
    pub extra_indexes: &'static [(&'static str, &'static str)],
    /// The revision that adds this table's `flow_id`.
    pub since: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantColumns {
    OnTheRow,
    /// None of its own: it belongs to its import's tenant.
    ThroughItsImport,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowForeignKey {
    References,
    None,
}

/// How a row finds its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Through its `session_id` (a UUID) and `session_flow_mapping`.
    BySession,
    /// Through its free-text `session_id`, parsed like a client's id, and the mapping.
    ByParsedSession,
    /// Through its `session_id`; a row without one, through the earliest flow naming the row
    /// in `discovery_flows.data_import_id` or `import_session_id`.
    BySessionOrNamingFlow,
    /// Through its `session_id`; a row without one, through the flow of its import.
    BySessionOrImport,
    /// Through the flow of its import (`data_import_id`).
    ByImport,
}

/// The parts a link is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The session path: how the row names its session, if it does.
    pub session: Option<SessionKey>,
    /// What a row reaches its flow through when the session path does not apply (no
    /// session column, or a NULL session).
    pub fallback: Option<Fallback>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKey {
    /// `session_id` is a UUID with the canonical text of a session id.
    Uuid,
    /// `session_id` is free text in any client form (`disc_session_<uuid>`, ...).
    FreeText,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// The earliest flow (by `created_at`, then `flow_id`) whose `data_import_id` or
    /// `import_session_id` names the row.
    NamingFlow,
    /// The flow of the row's import.
    Import,
}

impl Link {
    /// The one place a link's rule is spelled out.
    pub const fn rule(self) -> Rule {
        match self {
            Link::BySession => Rule {
                session: Some(SessionKey::Uuid),
                fallback: None,
            },
            Link::ByParsedSession => Rule {
                session: Some(SessionKey::FreeText),
                fallback: None,
            },
            Link::BySessionOrNamingFlow => Rule {
                session: Some(SessionKey::Uuid),
                fallback: Some(Fallback::NamingFlow),
            },
            Link::BySessionOrImport => Rule {
                session: Some(SessionKey::Uuid),
                fallback: Some(Fallback::Import),
            },
            Link::ByImport => Rule {
                session: None,
                fallback: Some(Fallback::Import),
            },
        }
    }
}

/// The linked tables in backfill order: an import's flow is known before its raw records and
/// field mappings look it up.
pub const LINKED_TABLES: &[LinkedTable] = &[
    LinkedTable {
        name: "data_imports",
        link: Link::BySessionOrNamingFlow,
        tenant: TenantColumns::OnTheRow,
        flow_foreign_key: FlowForeignKey::References,
        extra_indexes: &[(
            "ix_data_imports_tenant_flow_id",
            "client_account_id, engagement_id, flow_id",
        )],
        since: "flow_expand",
    },
    LinkedTable {
        name: "raw_import_records",
        link: Link::BySessionOrImport,
        tenant: TenantColumns::OnTheRow,
        flow_foreign_key: FlowForeignKey::References,
        extra_indexes: &[],
        since: "flow_expand",
    },
    LinkedTable {
        name: "import_field_mappings",
        link: Link::ByImport,
        tenant: TenantColumns::ThroughItsImport,
        flow_foreign_key: FlowForeignKey::References,
        extra_indexes: &[],
        since: "flow_expand",
    },
    LinkedTable {
        name: "assets",
        link: Link::BySession,
        tenant: TenantColumns::OnTheRow,
        flow_foreign_key: FlowForeignKey::References,
        extra_indexes: &[],
        since: "flow_expand",
    },
    LinkedTable {
        name: "access_audit_log",
        link: Link::BySession,
        tenant: TenantColumns::OnTheRow,
        flow_foreign_key: FlowForeignKey::None,
        extra_indexes: &[],
        since: "flow_expand",
    },
    LinkedTable {
        name: "llm_usage_logs",
        link: Link::ByParsedSession,
        tenant: TenantColumns::OnTheRow,
        flow_foreign_key: FlowForeignKey::None,
        extra_indexes: &[],
        since: "flow_expand",
    },
];

/// The legacy table `flow_expand` also changes without linking it: its `session_id` becomes
/// nullable (a flow deleted at head may have no session), and its `flow_id` is legacy.
pub const DELETION_AUDIT_TABLE: &str = "flow_deletion_audit";

/// The placeholder tenant under which some legacy flows were created.
pub const PLACEHOLDER_CLIENT_ACCOUNT_ID: &str = "11111111-1111-1111-1111-111111111111";

/// The linked tables a revision adds, in backfill order.
pub fn linked_since(revision: &str) -> impl Iterator<Item = &'static LinkedTable> + Clone + '_ {
    LINKED_TABLES
        .iter()
        .filter(move |table| table.since == revision)
}

/// The linked tables of a database at `revision`: those whose [`LinkedTable::since`] is
/// `revision` or comes before it in the chain.
pub fn linked_up_to(revision: &str) -> impl Iterator<Item = &'static LinkedTable> + Clone {
    let chain = crate::migrate::revisions::all();
    let position = |id: &str| chain.iter().position(|known| known.id == id);
    let last = position(revision);
    LINKED_TABLES.iter().filter(
        move |table| matches!((position(table.since), last), (Some(at), Some(last)) if at <= last),
    )
}

/// The description of a linked table, by name.
pub fn linked_table(name: &str) -> Option<&'static LinkedTable> {
    LINKED_TABLES.iter().find(|table| table.name == name)
}

/// Whether `table.column` was added by the migration (and is therefore not a legacy column).
pub fn is_added_column(table: &str, column: &str) -> bool {
    column == "flow_id" && linked_table(table).is_some()
}

impl LinkedTable {
    pub fn rule(&self) -> Rule {
        self.link.rule()
    }

    /// The tenant rule between this table's row `row` and the row `owner` it links to, or
    /// `None` when the row has no tenant columns of its own.
    pub fn tenant_agrees(&self, row: &str, owner: &str) -> Option<String> {
        match self.tenant {
            TenantColumns::OnTheRow => Some(tenancy::agrees_with(row, owner)),
            TenantColumns::ThroughItsImport => None,
        }
    }

    /// `tenant_agrees` as a predicate, `TRUE`-free: joined with ` AND ` where there is one.
    pub fn and_tenant_agrees(&self, row: &str, owner: &str) -> String {
        self.tenant_agrees(row, owner)
            .map_or_else(String::new, |rule| format!(" AND {rule}"))
    }

    /// The session key of row `row` as the mapping's `session_id` compares with it (the
    /// parsed canonical id for free text), or `None` without a session path.
    pub fn session_key_sql(&self, engine: Engine, row: &str) -> Option<String> {
        self.rule().session.map(|key| match key {
            SessionKey::Uuid => format!("{row}.session_id"),
            SessionKey::FreeText => parse_session_sql(engine, &format!("{row}.session_id")),
        })
    }

    /// `session_flow_mapping.session_id` (alias `m`) as this table's `session_id` stores it.
    pub fn mapped_session_as_stored(&self, engine: Engine) -> String {
        match (self.rule().session, engine) {
            (Some(SessionKey::FreeText), Engine::Postgres) => "m.session_id::text".to_owned(),
            _ => "m.session_id".to_owned(),
        }
    }

    /// Rows written at head by new code (a flow, no session) get a legacy session on the way
    /// down when their flow is reached through a session: those not reached through their
    /// import, and, for a table linked by naming flows, only rows that no flow names. The
    /// predicate is over the table's own name; `None`: rows keep no session.
    pub fn restores_session_where(&self) -> Option<String> {
        let rule = self.rule();
        rule.session?;
        match rule.fallback {
            None => Some("1 = 1".to_owned()),
            Some(Fallback::NamingFlow) => Some(format!(
                "NOT EXISTS (SELECT 1 FROM discovery_flows g \
                 WHERE g.data_import_id = {t}.id OR g.import_session_id = {t}.id)",
                t = self.name
            )),
            Some(Fallback::Import) => None,
        }
    }

    /// The index on `flow_id` every linked table gets.
    pub fn flow_index_name(&self) -> String {
        format!("ix_{}_flow_id", self.name)
    }

    /// The foreign key constraint on `flow_id` (PostgreSQL name).
    pub fn flow_foreign_key_name(&self) -> Option<String> {
        match self.flow_foreign_key {
            FlowForeignKey::References => Some(format!("fk_{}_flow_id", self.name)),
            FlowForeignKey::None => None,
        }
    }
}

/// One way a row reaches its flow, as SQL over the row's alias (`r` in statements, `NEW` in
/// triggers). Every statement that links or checks a row is built from its table's paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path {
    pub applies: Applies,
    /// The FROM items the flow is found in (aliases `m` mapping, `d` import, `f` flow).
    pub source: &'static str,
    /// How the source joins the row, without the tenant rule.
    pub keys: String,
    /// The tenant rule between the row and the source row that carries a tenant (`None`:
    /// the row has no tenant columns of its own).
    pub tenant: Option<String>,
    /// The flow the path gives.
    pub flow: &'static str,
    /// Among several candidates the first in this order wins (`None`: at most one).
    pub order: Option<&'static str>,
    /// What an unlinked row of this path is reported as when no source row matches its
    /// keys at all.
    pub without_source: Unlinked,
}

/// Which rows a path is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applies {
    /// Rows with a session.
    WithSession,
    /// Rows without a session (the fallback of a table with a session path).
    WithoutSession,
    /// Every row (a table without a session column).
    Always,
}

/// Why a row is left without a flow (the report's columns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unlinked {
    /// Nothing names its flow: no session and no other way.
    NoSession,
    /// Its session has no mapping.
    DanglingSession,
}

impl Path {
    /// The SQL condition of [`Path::applies`] over `row`, or `None` for every row.
    pub fn applies_sql(&self, row: &str) -> Option<String> {
        match self.applies {
            Applies::WithSession => Some(format!("{row}.session_id IS NOT NULL")),
            Applies::WithoutSession => Some(format!("{row}.session_id IS NULL")),
            Applies::Always => None,
        }
    }

    /// `keys` and the tenant rule.
    pub fn matches(&self) -> String {
        match &self.tenant {
            Some(tenant) => format!("{} AND {tenant}", self.keys),
            None => self.keys.clone(),
        }
    }

    /// The path as a `LEFT JOIN` onto the row, the set-based form of
    /// [`Path::flow_subquery`]: its `flow` column is the path's flow for a row it applies to,
    /// NULL otherwise. `None` for a path with several candidates (`order`), which a join
    /// would turn into several rows.
    pub fn left_join(&self, row: &str) -> Option<String> {
        if self.order.is_some() {
            return None;
        }
        let applies = self
            .applies_sql(row)
            .map_or_else(String::new, |applies| format!("{applies} AND "));
        // A source that is itself a join joins the row as one parenthesized item, so its
        // inner join cannot drop the row.
        let source = if self.source.contains(" JOIN ") {
            format!("({})", self.source)
        } else {
            self.source.to_owned()
        };
        Some(format!("LEFT JOIN {source} ON {applies}{}", self.matches()))
    }

    /// The flow the path gives the row, as a scalar subquery (NULL when none).
    pub fn flow_subquery(&self) -> String {
        let order = self
            .order
            .map_or_else(String::new, |order| format!(" ORDER BY {order} LIMIT 1"));
        format!(
            "(SELECT {} FROM {} WHERE {}{order})",
            self.flow,
            self.source,
            self.matches()
        )
    }
}

impl LinkedTable {
    /// The paths of this table's rule, in the order they apply (the session first).
    pub fn paths(&self, engine: Engine, row: &str) -> Vec<Path> {
        let rule = self.rule();
        let mut paths = Vec::new();
        if rule.session.is_some() {
            let key = self.session_key_sql(engine, row).unwrap_or_default();
            paths.push(Path {
                applies: Applies::WithSession,
                source: "session_flow_mapping m",
                keys: format!("m.session_id = {key}"),
                tenant: self.tenant_agrees(row, "m"),
                flow: "m.flow_id",
                order: None,
                without_source: Unlinked::DanglingSession,
            });
        }
        let applies = if rule.session.is_some() {
            Applies::WithoutSession
        } else {
            Applies::Always
        };
        match rule.fallback {
            Some(Fallback::NamingFlow) => paths.push(Path {
                applies,
                source: "discovery_flows f",
                keys: format!("(f.data_import_id = {row}.id OR f.import_session_id = {row}.id)"),
                tenant: self.tenant_agrees(row, "f"),
                flow: "f.flow_id",
                order: Some("f.created_at, f.flow_id"),
                without_source: Unlinked::NoSession,
            }),
            Some(Fallback::Import) => paths.push(match self.tenant {
                TenantColumns::OnTheRow => Path {
                    applies,
                    source: "data_imports d JOIN discovery_flows f ON f.flow_id = d.flow_id",
                    keys: format!("d.id = {row}.data_import_id"),
                    tenant: self.tenant_agrees(row, "f"),
                    flow: "f.flow_id",
                    order: None,
                    without_source: Unlinked::NoSession,
                },
                TenantColumns::ThroughItsImport => Path {
                    applies,
                    source: "data_imports d",
                    keys: format!("d.id = {row}.data_import_id AND d.flow_id IS NOT NULL"),
                    tenant: None,
                    flow: "d.flow_id",
                    order: None,
                    without_source: Unlinked::NoSession,
                },
            }),
            None => {}
        }
        paths
    }

    /// The flow the rules give row `row`, as SQL (NULL when none): each path's flow under
    /// the condition it applies to.
    pub fn expected_flow_sql(&self, engine: Engine, row: &str) -> String {
        let paths = self.paths(engine, row);
        let mut arms = String::new();
        for path in &paths {
            let when = path.applies_sql(row).unwrap_or_else(|| "1 = 1".to_owned());
            arms.push_str(&format!(" WHEN {when} THEN {}", path.flow_subquery()));
        }
        format!("(CASE{arms} ELSE NULL END)")
    }
}

/// The flow the rules give a row, for a statement over a whole table: the joins to add after
/// the row's table and the expression over them (see [`LinkedTable::joined_expected_flow`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedFlow {
    /// `LEFT JOIN ...` items, one per path that has at most one candidate.
    pub joins: String,
    /// The flow, NULL when none: the same value as [`LinkedTable::expected_flow_sql`].
    pub expected: String,
    /// Whether `expected` holds a scalar subquery (a path with several candidates, whose
    /// first is looked up per row).
    pub per_row_lookup: bool,
}

impl LinkedTable {
    /// [`Self::expected_flow_sql`] as joins: each path with at most one candidate becomes a
    /// `LEFT JOIN` on its keys (hash joins on PostgreSQL, index lookups on SQLite, instead of
    /// a correlated subquery per row); a path with an `order` stays a scalar subquery. The
    /// path aliases (`m`, `d`, `f`) are taken; other joins over the row must use others.
    pub fn joined_expected_flow(&self, engine: Engine, row: &str) -> JoinedFlow {
        let mut joins = String::new();
        let mut arms = String::new();
        let mut per_row_lookup = false;
        for path in self.paths(engine, row) {
            let flow = match path.left_join(row) {
                Some(join) => {
                    joins.push_str(&format!(" {join}"));
                    path.flow.to_owned()
                }
                None => {
                    per_row_lookup = true;
                    path.flow_subquery()
                }
            };
            let when = path.applies_sql(row).unwrap_or_else(|| "1 = 1".to_owned());
            arms.push_str(&format!(" WHEN {when} THEN {flow}"));
        }
        JoinedFlow {
            joins,
            expected: format!("(CASE{arms} ELSE NULL END)"),
            per_row_lookup,
        }
    }
}

/// The SQLite text of [`crate::ids::SessionId::parse`] over a column (`$COL`): trim, strip a
/// `disc_session_` or `session-` prefix in any case, lowercase, require a hyphenated UUID.
/// On PostgreSQL the same is the function `flowkey_parse_session_id(text)`.
pub const SQLITE_PARSE_SESSION_TEMPLATE: &str =
    include_str!("../sql/flow_parse_session.sqlite.sql");

/// SQL giving the canonical session id named by a free-text column, or NULL.
pub fn parse_session_sql(engine: Engine, column: &str) -> String {
    match engine {
        Engine::Postgres => format!("flowkey_parse_session_id({column})"),
        Engine::Sqlite => SQLITE_PARSE_SESSION_TEMPLATE.trim().replace("$COL", column),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_linked_table_has_one_entry_and_a_known_revision() {
        let mut names: Vec<&str> = LINKED_TABLES.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), LINKED_TABLES.len());
        for table in LINKED_TABLES {
            assert!(
                crate::migrate::revisions::all()
                    .iter()
                    .any(|revision| revision.id == table.since),
                "{} names an unknown revision {}",
                table.name,
                table.since
            );
        }
    }

    #[test]
    fn only_flow_id_of_the_linked_tables_is_added() {
        assert!(is_added_column("assets", "flow_id"));
        assert!(!is_added_column(DELETION_AUDIT_TABLE, "flow_id"));
        assert!(!is_added_column("assets", "session_id"));
    }

    #[test]
    fn a_table_without_tenant_columns_has_no_tenant_rule() {
        let mappings = linked_table("import_field_mappings").expect("linked");
        assert_eq!(mappings.tenant_agrees("r", "f"), None);
        assert_eq!(mappings.and_tenant_agrees("r", "f"), "");
        let assets = linked_table("assets").expect("linked");
        assert!(assets
            .and_tenant_agrees("r", "m")
            .starts_with(" AND (r.client_account_id IS NULL"));
    }
}
