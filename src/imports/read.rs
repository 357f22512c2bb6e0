//! The tenant's imports and records, each read in its own read-only transaction.

use crate::db::{Db, KeyColumns};
use crate::ids::{ImportId, TenantId};
use crate::imports::{store, DataImport, ImportFilter, ImportsError, RawImportRecord};
use crate::paging::{Page, PageRequest};

/// One import of the tenant.
pub async fn get_import(
    db: &Db,
    keys: KeyColumns,
    tenant: TenantId,
    import_id: ImportId,
) -> Result<DataImport, ImportsError> {
    let mut tx = db.begin().await?;
    let import = store::get(&mut tx, keys, tenant, import_id).await;
    tx.rollback().await?;
    import
}

/// One page of the tenant's imports, by id.
pub async fn list_imports(
    db: &Db,
    keys: KeyColumns,
    tenant: TenantId,
    filter: &ImportFilter,
    page: &PageRequest,
) -> Result<Page<DataImport>, ImportsError> {
    let mut tx = db.begin().await?;
    let imports = store::list(&mut tx, keys, tenant, filter, page).await;
    tx.rollback().await?;
    imports
}

/// One page of an import's records, in row order.
pub async fn list_records(
    db: &Db,
    keys: KeyColumns,
    tenant: TenantId,
    import_id: ImportId,
    page: &PageRequest,
) -> Result<Page<RawImportRecord>, ImportsError> {
    let mut tx = db.begin().await?;
    let records = store::list_records(&mut tx, keys, tenant, import_id, page).await;
    tx.rollback().await?;
    records
}
