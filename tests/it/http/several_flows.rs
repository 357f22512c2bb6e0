//! One choice for a session several flows claim (issue 12, item 2): the v1 read under `off`
//! and `shadow`, the mapping (live and at the mapping step, after a downgrade and upgrade),
//! and `on` all mean the earliest flow of the session's tenant, ties broken by the smallest
//! `flow_id`. The flows are written as the old application writes them (plain SQL).

use axum::http::{Method, StatusCode};
use flowkey::db::types::{DbTime, DbUuid};
use flowkey::flags::{self, FlagScope, FlowIdPrimary};
use flowkey::ids::{SessionId, TenantId};
use flowkey::migrate::{Migrator, RunOptions};
use uuid::Uuid;

use crate::both_engines;
use crate::support::harness::TestDb;
use crate::support::service_support::*;

/// A flow the old application writes, naming `session`, created `seconds` after a fixed
/// instant.
async fn old_code_flow(
    db: &flowkey::db::Db,
    tenant: TenantId,
    flow_id: Uuid,
    session: SessionId,
    seconds: i64,
) {
    let created = DbTime(
        chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc)
            + chrono::Duration::seconds(seconds),
    );
    flowkey::on_pool!(db, pool => {
        sqlx::query("INSERT INTO discovery_flows (id, flow_id, client_account_id, engagement_id, import_session_id, flow_name, status, created_at) VALUES ($1, $2, $3, $4, $5, 'old flow', 'attribute_mapping', $6)")
            .bind(DbUuid::new_v4())
            .bind(DbUuid(flow_id))
            .bind(tenant.client_account_id)
            .bind(tenant.engagement_id)
            .bind(DbUuid(session.as_uuid()))
            .bind(created)
            .execute(pool)
            .await
            .unwrap();
    });
}

async fn mapped_flow(db: &flowkey::db::Db, session: SessionId) -> Option<Uuid> {
    flowkey::on_pool!(db, pool => {
        sqlx::query_scalar::<_, DbUuid>("SELECT flow_id FROM session_flow_mapping WHERE session_id = $1")
            .bind(session)
            .fetch_optional(pool)
            .await
            .unwrap()
            .map(|id| id.0)
    })
}

async fn the_earliest_claiming_flow_everywhere(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let other = insert_tenant(&db).await;
    let user = insert_user(&db).await;
    let session = insert_session(&db, tenant, user).await;
    // Of two flows at the same instant the smaller id wins; a later flow, and an earlier
    // flow of another tenant, do not.
    let smaller = Uuid::parse_str("00000000-0000-4000-8000-000000000001").unwrap();
    let larger = Uuid::parse_str("ffffffff-ffff-4fff-bfff-ffffffffffff").unwrap();
    old_code_flow(&db, other, Uuid::new_v4(), session, 0).await;
    old_code_flow(&db, tenant, larger, session, 10).await;
    old_code_flow(&db, tenant, Uuid::new_v4(), session, 20).await;
    old_code_flow(&db, tenant, smaller, session, 10).await;

    let state = state(&db);
    let route = "/api/v1/unified-discovery/flow/status/{session_id}";
    for mode in [FlowIdPrimary::Off, FlowIdPrimary::Shadow, FlowIdPrimary::On] {
        flags::set_flag(&db, FlagScope::Tenant(tenant), mode, "test")
            .await
            .expect("set");
        state.refresh_flags().await.expect("refresh");
        let answer = send(
            &state,
            request(
                Method::GET,
                &route.replace("{session_id}", &session.to_string()),
                tenant,
                None,
            ),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{mode}: {}", answer.text);
        assert_eq!(answer.data()["flow_id"], smaller.to_string(), "{mode}");
    }
    let metrics = state.compat.metrics();
    assert_eq!(
        metrics.shadow_mismatches.with_label_values(&[route]).get(),
        0
    );
    // The live mapping chose it too, and the mapping step chooses it again after a
    // downgrade to legacy and an upgrade.
    assert_eq!(mapped_flow(&db, session).await, Some(smaller));
    let migrator = Migrator::new(db.clone(), RunOptions::default());
    migrator.downgrade("legacy").await.expect("downgrade");
    migrator.upgrade("head").await.expect("upgrade");
    assert_eq!(mapped_flow(&db, session).await, Some(smaller));
}
both_engines!(
    a_session_claimed_by_several_flows_means_the_earliest_everywhere,
    the_earliest_claiming_flow_everywhere
);
