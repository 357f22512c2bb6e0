//! The four reads of the legacy (v1) routes, each typed, each through the session key or the
//! flow key: `off` reads as the legacy platform did (`session_id` columns), `on` resolves
//! the session to its flow and reads through `flow_id`, `shadow` does both, serves the
//! session-keyed answer and counts every difference.

use crate::compat::CompatError;
use crate::db::{KeyColumns, Tx};
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

/// A named, documented reason (docs/rollout.md, "Shadow") why the flow-keyed answer of a
/// shadow read differs from the session-keyed one without anything being wrong. Every other
/// difference is a mismatch, and mismatches gate `flag set … on`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowCategory {
    /// Records of the import with no session: the legacy read never listed them, the flow
    /// key reaches them through their import.
    RecordWithoutSession,
}

impl ShadowCategory {
    pub const ALL: [ShadowCategory; 1] = [ShadowCategory::RecordWithoutSession];

    /// The `category` label of `flowkey_shadow_explained_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            ShadowCategory::RecordWithoutSession => "record_without_session",
        }
    }
}

/// The v1 routes that read through [`LegacyQuery`] (their `route` labels), so that every
/// shadow series exists from the server's start.
pub const SHADOW_ROUTES: [&str; 5] = [
    "/api/v1/data-import/import/{session_id}",
    "/api/v1/data-import/import/{session_id}/records",
    "/api/v1/data-import/processing-status/{session_id}",
    "/api/v1/data-import/validation-session/{session_id}",
    "/api/v1/unified-discovery/flow/status/{session_id}",
];

/// A read that a legacy route can make either way; `None` is "not found".
pub(crate) trait LegacyQuery {
    type Answer: PartialEq;

    /// Why the two answers differ, when every difference is of a [`ShadowCategory`]
    /// (`None`: not explained, a mismatch). Called only when both answers exist and differ.
    async fn explain(
        &self,
        _tx: &mut Tx<'_>,
        _tenant: TenantId,
        _session: SessionId,
        _flow_id: FlowId,
    ) -> Result<Option<Vec<ShadowCategory>>, CompatError> {
        Ok(None)
    }

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
pub(crate) struct NewestImport(pub KeyColumns);

impl LegacyQuery for NewestImport {
    type Answer = DataImport;

    async fn by_session(
        &self,
        tx: &mut Tx<'_>,
        tenant: TenantId,
        session: SessionId,
    ) -> Result<Option<DataImport>, CompatError> {
        Ok(imports::store::latest_for_session(tx, self.0, tenant, session).await?)
    }

    async fn by_flow(
        &self,
        tx: &mut Tx<'_>,
        tenant: TenantId,
        flow_id: FlowId,
    ) -> Result<Option<DataImport>, CompatError> {
        Ok(imports::store::latest_for_flow(tx, self.0, tenant, flow_id).await?)
    }
}

/// The session's flow: by session, the earliest real flow naming it in `import_session_id`.
pub(crate) struct SessionFlow(pub KeyColumns);

impl LegacyQuery for SessionFlow {
    type Answer = DiscoveryFlow;

    async fn by_session(
        &self,
        tx: &mut Tx<'_>,
        tenant: TenantId,
        session: SessionId,
    ) -> Result<Option<DiscoveryFlow>, CompatError> {
        Ok(flows::store::claiming_flow_for_session(tx, self.0, tenant, session).await?)
    }

    async fn by_flow(
        &self,
        tx: &mut Tx<'_>,
        tenant: TenantId,
        flow_id: FlowId,
    ) -> Result<Option<DiscoveryFlow>, CompatError> {
        Ok(flows::store::find(tx, self.0, tenant, flow_id).await?)
    }
}

/// One page of the session's field mappings; not found when the session has no import.
pub(crate) struct Mappings<'p>(pub &'p PageRequest, pub KeyColumns);

impl LegacyQuery for Mappings<'_> {
    type Answer = Page<ImportFieldMapping>;

    async fn by_session(
        &self,
        tx: &mut Tx<'_>,
        tenant: TenantId,
        session: SessionId,
    ) -> Result<Option<Self::Answer>, CompatError> {
        if imports::store::latest_for_session(tx, self.1, tenant, session)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let page =
            field_mappings::store::list_for_session(tx, self.1, tenant, session, self.0).await?;
        Ok(Some(page))
    }

    async fn by_flow(
        &self,
        tx: &mut Tx<'_>,
        tenant: TenantId,
        flow_id: FlowId,
    ) -> Result<Option<Self::Answer>, CompatError> {
        if imports::store::latest_for_flow(tx, self.1, tenant, flow_id)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        let page =
            field_mappings::store::list_for_flow(tx, self.1, tenant, flow_id, self.0).await?;
        Ok(Some(page))
    }
}

/// One page of the raw records of the session's newest import.
pub(crate) struct Records<'p>(pub &'p PageRequest, pub KeyColumns);

impl LegacyQuery for Records<'_> {
    type Answer = Page<RawImportRecord>;

    async fn explain(
        &self,
        tx: &mut Tx<'_>,
        tenant: TenantId,
        session: SessionId,
        flow_id: FlowId,
    ) -> Result<Option<Vec<ShadowCategory>>, CompatError> {
        let difference =
            imports::store::record_difference(tx, self.1, tenant, session, flow_id).await?;
        if !difference.same_import || difference.unexplained > 0 {
            return Ok(None);
        }
        // The pages differ, yet no record is on one side only: something else differs.
        Ok((difference.without_session > 0).then(|| vec![ShadowCategory::RecordWithoutSession]))
    }

    async fn by_session(
        &self,
        tx: &mut Tx<'_>,
        tenant: TenantId,
        session: SessionId,
    ) -> Result<Option<Self::Answer>, CompatError> {
        Ok(imports::store::list_records_for_session(tx, self.1, tenant, session, self.0).await?)
    }

    async fn by_flow(
        &self,
        tx: &mut Tx<'_>,
        tenant: TenantId,
        flow_id: FlowId,
    ) -> Result<Option<Self::Answer>, CompatError> {
        Ok(imports::store::list_records_for_flow(tx, self.1, tenant, flow_id, self.0).await?)
    }
}
