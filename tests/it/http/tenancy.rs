//! One visibility rule for every route and every flag mode: a row is visible to a tenant
//! only if every tenant column on the row and on the parents it is reached through (import,
//! session, flow), where set, names that tenant. Tested on legacy rows whose own tenant
//! columns disagree with their parents (denormalised columns that name another tenant, or
//! nothing).

use axum::http::{Method, StatusCode};
use flowkey::db::types::{DbTime, DbUuid};
use flowkey::db::{on_pool, Db};
use flowkey::flags::FlowIdPrimary;
use flowkey::http::{AppState, ServiceConfig};
use flowkey::ids::{FlowId, ImportId, SessionId, TenantId};
use serde_json::json;
use uuid::Uuid;

use crate::both_engines;
use crate::support::harness::TestDb;
use crate::support::service_support::*;

/// A raw record of `import`, its own tenant columns as given (`None`: NULL).
async fn insert_record(
    db: &Db,
    import: ImportId,
    own: Option<TenantId>,
    session: Option<SessionId>,
    flow: Option<FlowId>,
    row_number: i32,
) {
    on_pool!(db, pool => {
        sqlx::query("INSERT INTO raw_import_records (id, data_import_id, client_account_id, engagement_id, session_id, flow_id, row_number, raw_data, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(DbUuid::new_v4())
            .bind(import)
            .bind(own.map(|t| t.client_account_id))
            .bind(own.map(|t| t.engagement_id))
            .bind(session)
            .bind(flow)
            .bind(row_number)
            .bind(sqlx::types::Json(json!({ "row": row_number })))
            .bind(DbTime::now())
            .execute(pool)
            .await
            .expect("record");
    });
}

/// A field mapping id of an import (the first by id).
async fn mapping_of(db: &Db, import: ImportId) -> Uuid {
    let id: DbUuid = on_pool!(db, pool => {
        sqlx::query_scalar("SELECT id FROM import_field_mappings WHERE data_import_id = $1 ORDER BY id LIMIT 1")
            .bind(import)
            .fetch_one(pool)
            .await
            .expect("mapping id")
    });
    id.0
}

fn rows_of(answer: &Answer) -> Vec<i64> {
    let mut rows: Vec<i64> = answer.data()["items"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|r| r["raw_data"]["row"].as_i64().unwrap_or(-1))
        .collect();
    rows.sort_unstable();
    rows
}

fn ids_of(answer: &Answer, key: &str) -> Vec<String> {
    answer.data()["items"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|item| item[key].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn every_route_applies_the_rule(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant_a = insert_tenant(&db).await;
    let tenant_b = insert_tenant(&db).await;
    let a = migrated_session(&db, tenant_a).await;
    let user = insert_user(&db).await;

    // Records of A's import: own columns naming A, NULL, B, and one naming A but the flow
    // of another tenant.
    let flow_b = FlowId::new_v4();
    insert_flow(&db, tenant_b, flow_b, None).await;
    insert_record(
        &db,
        a.import_id,
        Some(tenant_a),
        Some(a.session),
        Some(a.flow_id),
        1,
    )
    .await;
    insert_record(&db, a.import_id, None, Some(a.session), Some(a.flow_id), 2).await;
    insert_record(
        &db,
        a.import_id,
        Some(tenant_b),
        Some(a.session),
        Some(a.flow_id),
        3,
    )
    .await;
    insert_record(
        &db,
        a.import_id,
        Some(tenant_a),
        Some(a.session),
        Some(flow_b),
        4,
    )
    .await;

    // An import whose own columns name B, under A's session and flow (with its own records
    // and mappings naming B): B must not reach it through A's session, A must not see it.
    let crossed = insert_import(&db, tenant_b, user, Some(a.session), Some(a.flow_id)).await;
    insert_field_mapping(&db, crossed, Some(a.flow_id), "Crossed").await;
    insert_record(
        &db,
        crossed,
        Some(tenant_b),
        Some(a.session),
        Some(a.flow_id),
        9,
    )
    .await;
    let crossed_mapping = mapping_of(&db, crossed).await;
    // A flow of B that names A's session in `import_session_id`.
    insert_flow(&db, tenant_b, FlowId::new_v4(), Some(a.session.as_uuid())).await;

    let visible_records = vec![1, 2];
    for mode in [FlowIdPrimary::Off, FlowIdPrimary::Shadow, FlowIdPrimary::On] {
        let config = ServiceConfig {
            flag_default: mode,
            ..config()
        };
        let state = AppState::new(db.clone(), config).expect("state");
        let get = |uri: String, tenant: TenantId| {
            let state = state.clone();
            async move { send(&state, request(Method::GET, &uri, tenant, None)).await }
        };

        // v3 records of A's import: only the rows whose own columns and parents agree.
        let records = get(
            format!("/api/v3/data-import/imports/{}/records", a.import_id),
            tenant_a,
        )
        .await;
        assert_eq!(records.status, StatusCode::OK, "{mode}: {}", records.text);
        assert_eq!(rows_of(&records), visible_records, "{mode}: v3 records");

        // The crossed import: visible to nobody, listed for nobody.
        for tenant in [tenant_a, tenant_b] {
            for uri in [
                format!("/api/v3/data-import/imports/{crossed}"),
                format!("/api/v3/data-import/imports/{crossed}/records"),
            ] {
                let answer = get(uri.clone(), tenant).await;
                assert_eq!(answer.status, StatusCode::NOT_FOUND, "{mode}: {uri}");
            }
            let listed = get("/api/v3/data-import/imports".to_owned(), tenant).await;
            assert!(
                !ids_of(&listed, "import_id").contains(&crossed.to_string()),
                "{mode}: crossed import listed"
            );
            for (method, uri, body) in [
                (
                    Method::PUT,
                    format!("/api/v3/field-mapping/mappings/{crossed_mapping}"),
                    Some(json!({"target_field": "x"})),
                ),
                (
                    Method::POST,
                    format!("/api/v3/field-mapping/mappings/{crossed_mapping}/approve"),
                    None,
                ),
                (
                    Method::POST,
                    format!("/api/v3/field-mapping/mappings/{crossed_mapping}/reject"),
                    None,
                ),
                (
                    Method::DELETE,
                    format!("/api/v3/data-import/imports/{crossed}"),
                    None,
                ),
            ] {
                let answer = send(&state, request(method.clone(), &uri, tenant, body)).await;
                assert_eq!(
                    answer.status,
                    StatusCode::NOT_FOUND,
                    "{mode}: {method} {uri}"
                );
            }
        }
        // A's flow lists A's mappings, not the crossed import's.
        let mappings = get(
            format!("/api/v3/field-mapping/mappings/{}", a.flow_id),
            tenant_a,
        )
        .await;
        assert_eq!(mappings.status, StatusCode::OK, "{mode}: {}", mappings.text);
        assert!(
            !ids_of(&mappings, "mapping_id").contains(&crossed_mapping.to_string()),
            "{mode}: crossed mapping listed"
        );
        assert_eq!(ids_of(&mappings, "mapping_id").len(), 2, "{mode}");

        // v1, as A: the newest import is A's own (not the crossed one, written later), its
        // records and mappings are A's.
        let session = a.session;
        let import = get(format!("/api/v1/data-import/import/{session}"), tenant_a).await;
        assert_eq!(import.status, StatusCode::OK, "{mode}: {}", import.text);
        assert_eq!(
            import.data()["import_id"],
            a.import_id.to_string(),
            "{mode}"
        );
        let records = get(
            format!("/api/v1/data-import/import/{session}/records"),
            tenant_a,
        )
        .await;
        assert_eq!(rows_of(&records), visible_records, "{mode}: v1 records");
        let mappings = get(
            format!("/api/v1/data-import/validation-session/{session}"),
            tenant_a,
        )
        .await;
        assert_eq!(
            ids_of(&mappings, "mapping_id").len(),
            2,
            "{mode}: v1 mappings"
        );
        assert!(!ids_of(&mappings, "mapping_id").contains(&crossed_mapping.to_string()));
        let flow = get(
            format!("/api/v1/unified-discovery/flow/status/{session}"),
            tenant_a,
        )
        .await;
        assert_eq!(flow.data()["flow_id"], a.flow_id.to_string(), "{mode}");

        // v1, as B naming A's session: nothing, on every route, in every mode.
        for route in [
            format!("/api/v1/data-import/import/{session}"),
            format!("/api/v1/data-import/import/{session}/records"),
            format!("/api/v1/data-import/processing-status/{session}"),
            format!("/api/v1/data-import/validation-session/{session}"),
            format!("/api/v1/unified-discovery/flow/status/{session}"),
        ] {
            let answer = get(route.clone(), tenant_b).await;
            assert_eq!(
                answer.status,
                StatusCode::NOT_FOUND,
                "{mode}: {route} as B: {}",
                answer.text
            );
        }
        let stored = send(
            &state,
            request(
                Method::POST,
                "/api/v1/data-import/store-import",
                tenant_b,
                Some(json!({
                    "file_data": [{"a": 1}],
                    "upload_context": {"validation_session_id": session.to_string()},
                })),
            ),
        )
        .await;
        assert_eq!(
            stored.status,
            StatusCode::NOT_FOUND,
            "{mode}: {}",
            stored.text
        );
    }
}
both_engines!(
    a_row_is_visible_only_when_it_and_its_parents_name_the_tenant_on_every_route_and_mode,
    every_route_applies_the_rule
);
