//! SQL for `import_field_mappings`. The table has no tenant columns: a mapping belongs to the
//! tenant of its import or its flow (`db::tenancy`). `$1`/`$2` are the tenant.

use serde_json::Value;
use sqlx::types::Json;

use crate::db::tenancy;
use crate::db::types::{DbTime, DbUuid};
use crate::db::{on_tx, KeyColumns, Tx};
use crate::field_mappings::{
    ImportFieldMapping, MappingDecision, MappingId, MappingsError, SuggestedMapping,
};
use crate::ids::{FlowId, ImportId, SessionId, TenantId};
use crate::migrate::flow::contract;
use crate::paging::{Cursor, Page, PageRequest};

const MAPPING_COLUMNS: &str = "m.id, m.data_import_id, m.flow_id, m.source_field, m.target_field, \
     m.mapping_type, m.confidence_score, m.is_user_defined, m.is_validated, m.status, \
     m.original_ai_suggestion, m.sample_values, m.suggested_by, m.created_at, m.validated_at";

/// Longest target name the column holds.
const MAX_TARGET_LEN: usize = 255;

/// Writes one suggested mapping per column of a new import. It takes no tenant: the import
/// was written under the tenant by the same transaction, and the table has no tenant columns.
pub async fn insert_suggestions(
    tx: &mut Tx<'_>,
    import_id: ImportId,
    flow_id: FlowId,
    suggestions: &[SuggestedMapping],
) -> Result<u64, MappingsError> {
    let now = DbTime::now();
    let mut written = 0;
    for suggestion in suggestions {
        let samples = Value::from(suggestion.sample_values.clone());
        written += on_tx!(tx, conn => {
            sqlx::query(
                "INSERT INTO import_field_mappings (id, data_import_id, flow_id, source_field, \
                 target_field, mapping_type, confidence_score, is_user_defined, is_validated, \
                 status, original_ai_suggestion, sample_values, suggested_by, created_at) \
                 VALUES ($1, $2, $3, $4, $5, 'direct', $6, $7, $7, 'suggested', $5, $8, 'flowkey', $9)",
            )
            .bind(DbUuid::new_v4())
            .bind(import_id)
            .bind(flow_id)
            .bind(&suggestion.source_field)
            .bind(&suggestion.target_field)
            .bind(suggestion.confidence)
            .bind(false)
            .bind(Json(&samples))
            .bind(now)
            .execute(&mut **conn)
            .await?
            .rows_affected()
        });
    }
    Ok(written)
}

/// A flow's mappings (read through `flow_id`), by id.
pub async fn list_for_flow(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    flow_id: FlowId,
    page: &PageRequest,
) -> Result<Page<ImportFieldMapping>, MappingsError> {
    let flow_in_tenant = tenancy::names_binds("f", "$1", "$2");
    let import_visible = tenancy::import_visible("di", "$1", "$2");
    let imports = contract::served_table(keys, tx.engine(), "data_imports");
    let sql = format!(
        "SELECT {MAPPING_COLUMNS} FROM import_field_mappings m \
         WHERE m.flow_id = $3 AND m.id > $4 AND EXISTS (SELECT 1 FROM discovery_flows f \
           WHERE f.flow_id = m.flow_id AND {flow_in_tenant}) \
         AND EXISTS (SELECT 1 FROM {imports} di WHERE di.id = m.data_import_id \
           AND {import_visible}) \
         ORDER BY m.id LIMIT $5"
    );
    let (_, after) = page.after_key();
    let rows: Vec<ImportFieldMapping> = on_tx!(tx, conn => {
        sqlx::query_as(&sql)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .bind(flow_id)
            .bind(DbUuid(after))
            .bind(page.fetch_limit())
            .fetch_all(&mut **conn)
            .await?
    });
    Ok(Page::from_rows(rows, page, mapping_cursor))
}

/// A legacy session's mappings (read through its imports' `session_id`), by id.
pub async fn list_for_session(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    session_id: SessionId,
    page: &PageRequest,
) -> Result<Page<ImportFieldMapping>, MappingsError> {
    let in_tenant = tenancy::import_visible("di", "$1", "$2");
    let flow_agrees = tenancy::parent_agrees("discovery_flows", "flow_id", "m.flow_id", "$1", "$2");
    let imports = contract::served_table(keys, tx.engine(), "data_imports");
    let sql = format!(
        "SELECT {MAPPING_COLUMNS} FROM import_field_mappings m \
         JOIN {imports} di ON di.id = m.data_import_id \
         WHERE di.session_id = $3 AND m.id > $4 AND {in_tenant} AND {flow_agrees} \
         ORDER BY m.id LIMIT $5"
    );
    let (_, after) = page.after_key();
    let rows: Vec<ImportFieldMapping> = on_tx!(tx, conn => {
        sqlx::query_as(&sql)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .bind(session_id)
            .bind(DbUuid(after))
            .bind(page.fetch_limit())
            .fetch_all(&mut **conn)
            .await?
    });
    Ok(Page::from_rows(rows, page, mapping_cursor))
}

pub async fn get(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    mapping_id: MappingId,
) -> Result<ImportFieldMapping, MappingsError> {
    let in_tenant = tenancy::import_visible("di", "$1", "$2");
    let flow_agrees = tenancy::parent_agrees("discovery_flows", "flow_id", "m.flow_id", "$1", "$2");
    let imports = contract::served_table(keys, tx.engine(), "data_imports");
    let sql = format!(
        "SELECT {MAPPING_COLUMNS} FROM import_field_mappings m \
         JOIN {imports} di ON di.id = m.data_import_id \
         WHERE m.id = $3 AND {in_tenant} AND {flow_agrees}"
    );
    let found: Option<ImportFieldMapping> = on_tx!(tx, conn => {
        sqlx::query_as(&sql)
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .bind(mapping_id.db())
            .fetch_optional(&mut **conn)
            .await?
    });
    found.ok_or(MappingsError::NotFound { mapping_id })
}

/// Changes a mapping's target, keeping the first suggestion in `original_ai_suggestion`.
pub async fn set_target(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    mapping_id: MappingId,
    target: &str,
) -> Result<ImportFieldMapping, MappingsError> {
    let target = validate_target(target)?;
    get(tx, keys, tenant, mapping_id).await?;
    on_tx!(tx, conn => {
        sqlx::query(
            "UPDATE import_field_mappings SET \
             original_ai_suggestion = COALESCE(original_ai_suggestion, target_field), \
             target_field = $2, is_user_defined = $3, status = 'suggested', is_validated = $4, \
             validated_at = NULL WHERE id = $1",
        )
        .bind(mapping_id.db())
        .bind(target)
        .bind(true)
        .bind(false)
        .execute(&mut **conn)
        .await?
        .rows_affected()
    });
    get(tx, keys, tenant, mapping_id).await
}

/// Approves or rejects a mapping.
pub async fn decide(
    tx: &mut Tx<'_>,
    keys: KeyColumns,
    tenant: TenantId,
    mapping_id: MappingId,
    decision: MappingDecision,
) -> Result<ImportFieldMapping, MappingsError> {
    get(tx, keys, tenant, mapping_id).await?;
    on_tx!(tx, conn => {
        sqlx::query(
            "UPDATE import_field_mappings SET status = $2, is_validated = $3, \
             validation_method = 'manual', validated_at = $4 WHERE id = $1",
        )
        .bind(mapping_id.db())
        .bind(decision.status())
        .bind(decision == MappingDecision::Approve)
        .bind(DbTime::now())
        .execute(&mut **conn)
        .await?
        .rows_affected()
    });
    get(tx, keys, tenant, mapping_id).await
}

/// A target as the API documents it: at most 255 characters, no control character, not
/// only whitespace; stored without its surrounding whitespace.
fn validate_target(target: &str) -> Result<&str, MappingsError> {
    let trimmed = target.trim();
    let invalid = |reason| MappingsError::InvalidTarget {
        target: trimmed.chars().take(80).collect(),
        reason,
    };
    if trimmed.is_empty() {
        return Err(invalid("it is empty"));
    }
    if target.chars().count() > MAX_TARGET_LEN {
        return Err(invalid("it is longer than 255 characters"));
    }
    if target.chars().any(char::is_control) {
        return Err(invalid("it contains control characters"));
    }
    Ok(trimmed)
}

fn mapping_cursor(row: &ImportFieldMapping) -> Cursor {
    Cursor {
        rank: 0,
        id: row.id,
    }
}
