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

/// The import `import` (an alias of `data_imports`) is the bound tenant's. Legacy imports may
/// leave their tenant columns NULL: those set must agree, and the tenant must be known in full
/// from the import itself or from the flow or session it hangs from.
pub fn import_in_tenant(import: &str, client: &str, engagement: &str) -> String {
    let own = agrees_with_binds(import, client, engagement);
    let flow = names_binds("tf", client, engagement);
    let session = names_binds("ts", client, engagement);
    format!(
        "{own} AND (({import}.client_account_id IS NOT NULL AND {import}.engagement_id IS NOT NULL) \
         OR EXISTS (SELECT 1 FROM discovery_flows tf WHERE tf.flow_id = {import}.flow_id AND {flow}) \
         OR EXISTS (SELECT 1 FROM data_import_sessions ts WHERE ts.id = {import}.session_id AND {session}))"
    )
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
