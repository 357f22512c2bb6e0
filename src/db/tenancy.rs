//! The tenant rule, written once for every store, trigger, backfill and check.
//!
//! Legacy rows repeat the tenant (`client_account_id`, `engagement_id`) on many tables, and
//! some leave those columns NULL or, through old bugs, name another tenant than the row they
//! hang from. The rule everything in flowkey applies: **a row's own tenant columns, where set,
//! must name the tenant of the row it is linked to or read through** (a flow, a mapping, an
//! import, a session, the tenant asking). A NULL column says nothing; a column that names
//! another tenant disqualifies the row.
//!
//! The functions return SQL predicates over table aliases (or bind placeholders); they carry
//! no values, so no value is ever formatted into SQL.

/// The two tenant columns, as every tenant-carrying table names them.
pub const TENANT_COLUMNS: [&str; 2] = ["client_account_id", "engagement_id"];

/// `row`'s tenant columns, where set, equal `owner`'s (both are table aliases, or `NEW` in a
/// trigger).
pub fn agrees_with(row: &str, owner: &str) -> String {
    format!(
        "({row}.client_account_id IS NULL OR {row}.client_account_id = {owner}.client_account_id) \
         AND ({row}.engagement_id IS NULL OR {row}.engagement_id = {owner}.engagement_id)"
    )
}

/// `row`'s tenant columns, where set, equal the bound tenant (`client` and `engagement` are
/// placeholders such as `$1` and `$2`).
pub fn agrees_with_binds(row: &str, client: &str, engagement: &str) -> String {
    format!(
        "({row}.client_account_id IS NULL OR {row}.client_account_id = {client}) \
         AND ({row}.engagement_id IS NULL OR {row}.engagement_id = {engagement})"
    )
}

/// `row` names the bound tenant in both columns (the row's tenant is known and is that one).
pub fn names_binds(row: &str, client: &str, engagement: &str) -> String {
    format!("{row}.client_account_id = {client} AND {row}.engagement_id = {engagement}")
}

/// The parent row of `parent_table` whose `parent_key` equals `child_ref` (a column of the row
/// being read), where it exists, agrees with the bound tenant. The parent is reached through
/// an alias made from `child_ref`, so several parents can be checked in one predicate.
pub fn parent_agrees(
    parent_table: &str,
    parent_key: &str,
    child_ref: &str,
    client: &str,
    engagement: &str,
) -> String {
    let alias = format!("parent_{}", child_ref.replace('.', "_"));
    let agrees = agrees_with_binds(&alias, client, engagement);
    format!(
        "NOT EXISTS (SELECT 1 FROM {parent_table} {alias} \
         WHERE {alias}.{parent_key} = {child_ref} AND NOT ({agrees}))"
    )
}

/// **The visibility rule of the API**: the import `import` (an alias of `data_imports`) is
/// visible to the bound tenant only if its own tenant columns and those of the flow and the
/// session it hangs from, where set, all name that tenant, and at least one of them names it
/// in full (a legacy import whose columns are all NULL belongs to nobody unless its flow or
/// session says whose it is).
pub fn import_visible(import: &str, client: &str, engagement: &str) -> String {
    let own = agrees_with_binds(import, client, engagement);
    let flow_agrees = parent_agrees(
        "discovery_flows",
        "flow_id",
        &format!("{import}.flow_id"),
        client,
        engagement,
    );
    let session_agrees = parent_agrees(
        "data_import_sessions",
        "id",
        &format!("{import}.session_id"),
        client,
        engagement,
    );
    let flow = names_binds("tf", client, engagement);
    let session = names_binds("ts", client, engagement);
    format!(
        "{own} AND {flow_agrees} AND {session_agrees} \
         AND (({import}.client_account_id IS NOT NULL AND {import}.engagement_id IS NOT NULL) \
         OR EXISTS (SELECT 1 FROM discovery_flows tf WHERE tf.flow_id = {import}.flow_id AND {flow}) \
         OR EXISTS (SELECT 1 FROM data_import_sessions ts WHERE ts.id = {import}.session_id AND {session}))"
    )
}

/// A raw record `record` (an alias of `raw_import_records`) of a visible import is visible
/// only if its own tenant columns and those of the flow and session it names, where set, agree
/// with the bound tenant (the import itself is checked with [`import_visible`]).
pub fn record_visible(record: &str, client: &str, engagement: &str) -> String {
    let own = agrees_with_binds(record, client, engagement);
    let flow = parent_agrees(
        "discovery_flows",
        "flow_id",
        &format!("{record}.flow_id"),
        client,
        engagement,
    );
    let session = parent_agrees(
        "data_import_sessions",
        "id",
        &format!("{record}.session_id"),
        client,
        engagement,
    );
    format!("{own} AND {flow} AND {session}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_reads_the_same_for_aliases_and_binds() {
        assert_eq!(
            agrees_with("r", "m"),
            "(r.client_account_id IS NULL OR r.client_account_id = m.client_account_id) \
             AND (r.engagement_id IS NULL OR r.engagement_id = m.engagement_id)"
        );
        assert_eq!(
            agrees_with_binds("di", "$1", "$2"),
            "(di.client_account_id IS NULL OR di.client_account_id = $1) \
             AND (di.engagement_id IS NULL OR di.engagement_id = $2)"
        );
        assert_eq!(
            names_binds("f", "$2", "$3"),
            "f.client_account_id = $2 AND f.engagement_id = $3"
        );
    }
}
