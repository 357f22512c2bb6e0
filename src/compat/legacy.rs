//! The four reads of the legacy (v1) routes, each typed, each through the session key or the
//! flow key: `off` reads as the legacy platform did (`session_id` columns), `on` resolves
//! the session to its flow and reads through `flow_id`, `shadow` does both, serves the
//! session-keyed answer and counts every difference.

use crate::compat::CompatError;
use crate::db::Tx;
use crate::field_mappings::{self, ImportFieldMapping};
use crate::flags::FlowIdPrimary;
use crate::flows::{self, DiscoveryFlow};
use crate::ids::{FlowId, SessionId, TenantId};
use crate::imports::{self, DataImport, RawImportRecord};
use crate::paging::{Page, PageRequest};

/// One legacy call: which route, for which tenant and session, in which flag mode.
#[derive(Debug, Clone, Copy)]
pub struct LegacyCall {
    /// The route, as metrics and logs name it.
    pub route: &'static str,
    pub tenant: TenantId,
    pub session: SessionId,
    pub mode: FlowIdPrimary,
}

/// A read that a legacy route can make either way; `None` is "not found".
pub(crate) trait LegacyQuery {
    type Answer: PartialEq;

    async fn by_session(
        &self,
        tx: &mut Tx<'_>,
        tenant: TenantId,
        session: SessionId,
    ) -> Result<Option<Self::Answer>, CompatError>;

    async fn by_flow(
        &self,
        tx: &mut Tx<'_>,
        tenant: TenantId,
        flow_id: FlowId,
    ) -> Result<Option<Self::Answer>, CompatError>;
}

/// The session's newest import.
pub(crate) struct NewestImport;

impl LegacyQuery for NewestImport {
    type Answer = DataImport;

    async fn by_session(
        &self,
        tx: &mut Tx<'_>,
        tenant: TenantId,
        session: SessionId,
    ) -> Result<Option<DataImport>, CompatError> {
        Ok(imports::store::latest_for_session(tx, tenant, session).await?)
    }

    async fn by_flow(
        &self,
        tx: &mut Tx<'_>,
        tenant: TenantId,
        flow_id: FlowId,
    ) -> Result<Option<DataImport>, CompatError> {
        Ok(imports::store::latest_for_flow(tx, tenant, flow_id).await?)
    }
}

/// The session's flow: by session, the earliest real flow naming it in `import_session_id`.
pub(crate) struct SessionFlow;

impl LegacyQuery for SessionFlow {
    type Answer = DiscoveryFlow;

    async fn by_session(
        &self,
        tx: &mut Tx<'_>,
        tenant: TenantId,
        session: SessionId,
    ) -> Result<Option<DiscoveryFlow>, CompatError> {
        Ok(flows::store::claiming_flow_for_session(tx, tenant, session).await?)
    }

    async fn by_flow(
        &self,
        tx: &mut Tx<'_>,
        tenant: TenantId,
        flow_id: FlowId,
    ) -> Result<Option<DiscoveryFlow>, CompatError> {
        Ok(flows::store::find(tx, tenant, flow_id).await?)
    }
}

/// One page of the session's field mappings; not found when the session has no import.
pub(crate) struct Mappings<'p>(pub &'p PageRequest);

impl LegacyQuery for Mappings<'_> {
    type Answer = Page<ImportFieldMapping>;

    async fn by_session(
        &self,
        tx: &mut Tx<'_>,
        tenant: TenantId,
        session: SessionId,
    ) -> Result<Option<Self::Answer>, CompatError> {
        if imports::store::latest_for_session(tx, tenant, session)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let page = field_mappings::store::list_for_session(tx, tenant, session, self.0).await?;
        Ok(Some(page))
    }

    async fn by_flow(
        &self,
        tx: &mut Tx<'_>,
        tenant: TenantId,
        flow_id: FlowId,
    ) -> Result<Option<Self::Answer>, CompatError> {
        if imports::store::latest_for_flow(tx, tenant, flow_id)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let page = field_mappings::store::list_for_flow(tx, tenant, flow_id, self.0).await?;
        Ok(Some(page))
    }
}

/// One page of the raw records of the session's newest import.
pub(crate) struct Records<'p>(pub &'p PageRequest);

impl LegacyQuery for Records<'_> {
    type Answer = Page<RawImportRecord>;

    async fn by_session(
        &self,
        tx: &mut Tx<'_>,
        tenant: TenantId,
        session: SessionId,
    ) -> Result<Option<Self::Answer>, CompatError> {
        Ok(imports::store::list_records_for_session(tx, tenant, session, self.0).await?)
    }

    async fn by_flow(
        &self,
        tx: &mut Tx<'_>,
        tenant: TenantId,
        flow_id: FlowId,
    ) -> Result<Option<Self::Answer>, CompatError> {
        Ok(imports::store::list_records_for_flow(tx, tenant, flow_id, self.0).await?)
    }
}
