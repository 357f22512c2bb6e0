//! Store modules on both engines: an import is created whole in one transaction, reads are
//! tenant-scoped, lists page by cursor.

// Test bodies are plain async fns run by `both_engines!`, so clippy does not see them as
// tests: allow the unwraps it allows in tests.

use flowkey::db::KeyColumns;
use flowkey::imports::{self, ImportFilter, ImportSource, ImportsError, NewImportRequest};
use flowkey::paging::PageRequest;

use crate::both_engines;
use crate::support::harness::TestDb;
use crate::support::service_support::*;

fn json_request(tenant: flowkey::ids::TenantId, rows: usize) -> NewImportRequest {
    let file_data = cmdb_rows(rows);
    NewImportRequest {
        tenant,
        rows: imports::rows_from_json(file_data.as_array().expect("array")).expect("rows"),
        source: ImportSource::JsonRows,
        source_filename: "cmdb.json".into(),
        file_size_bytes: None,
        file_type: None,
        import_type: "cmdb".into(),
        import_name: None,
        description: None,
        user_id: None,
        legacy_session: None,
    }
}

async fn creating_an_import_writes_every_part(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let created = imports::create_import(&db, KeyColumns::Expanded, json_request(tenant, 7))
        .await
        .expect("created");
    assert_eq!(created.record_count, 7);
    assert_eq!(created.field_mapping_count, 4);
    assert_eq!(count_rows(&db, "raw_import_records").await, 7);
    assert_eq!(count_rows(&db, "import_field_mappings").await, 4);
    assert_eq!(count_rows(&db, "discovery_flows").await, 1);

    let mut tx = db.begin().await.expect("tx");
    let import = imports::store::get(&mut tx, KeyColumns::Expanded, tenant, created.import_id)
        .await
        .expect("import");
    assert_eq!(import.flow_id, Some(created.flow_id));
    assert_eq!(import.session_id, None);
    let page = PageRequest {
        after: None,
        limit: 3,
    };
    let first = imports::store::list_records(
        &mut tx,
        KeyColumns::Expanded,
        tenant,
        created.import_id,
        &page,
    )
    .await
    .expect("page");
    assert_eq!(first.items.len(), 3);
    assert_eq!(first.items[0].row_number, 1);
    let next = PageRequest::parse(first.next_cursor.as_deref(), Some(3)).expect("cursor");
    let second = imports::store::list_records(
        &mut tx,
        KeyColumns::Expanded,
        tenant,
        created.import_id,
        &next,
    )
    .await
    .expect("page");
    assert_eq!(second.items[0].row_number, 4);
    let by_flow = ImportFilter {
        flow_id: Some(created.flow_id),
        status: None,
    };
    let listed = imports::store::list(
        &mut tx,
        KeyColumns::Expanded,
        tenant,
        &by_flow,
        &PageRequest::default(),
    )
    .await
    .expect("list");
    assert_eq!(listed.items.len(), 1);
    tx.rollback().await.expect("rollback");
}
both_engines!(
    creating_an_import_writes_every_part_in_one_transaction,
    creating_an_import_writes_every_part
);

async fn another_tenants_import_is_not_found(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let other = insert_tenant(&db).await;
    let created = imports::create_import(&db, KeyColumns::Expanded, json_request(tenant, 2))
        .await
        .expect("created");
    let mut tx = db.begin().await.expect("tx");
    let err = imports::store::get(&mut tx, KeyColumns::Expanded, other, created.import_id)
        .await
        .unwrap_err();
    assert!(matches!(err, ImportsError::NotFound { .. }), "{err}");
    let listed = imports::store::list(
        &mut tx,
        KeyColumns::Expanded,
        other,
        &ImportFilter::default(),
        &PageRequest::default(),
    )
    .await
    .expect("list");
    assert!(listed.items.is_empty());
    tx.rollback().await.expect("rollback");
}
both_engines!(
    an_import_of_another_tenant_is_not_found,
    another_tenants_import_is_not_found
);

async fn unknown_tenant_leaves_nothing(test_db: TestDb) {
    let (_keep, db) = head_db(test_db.engine).await;
    let tenant = insert_tenant(&db).await;
    let stranger = flowkey::ids::TenantId::new(
        tenant.client_account_id,
        flowkey::ids::EngagementId::from_stored(uuid::Uuid::new_v4()),
    );
    let err = imports::create_import(&db, KeyColumns::Expanded, json_request(stranger, 2))
        .await
        .unwrap_err();
    assert!(matches!(err, ImportsError::TenantNotFound), "{err}");
    assert_eq!(count_rows(&db, "data_imports").await, 0);
    assert_eq!(count_rows(&db, "discovery_flows").await, 0);
}
both_engines!(
    an_import_for_an_unknown_tenant_writes_nothing,
    unknown_tenant_leaves_nothing
);
