//! One import slot: a session (usually), its import, and the flows that claim it, in one of
//! the shapes the slot oddities give.

use rand::{Rng, RngCore};
use uuid::Uuid;

use super::vocabulary::{APPLICATIONS, PLACEHOLDER_TENANT};
use super::{pick, Generator, PendingRows, RawRecordPlan, DAY_MILLIS, HOUR_MILLIS};

/// What a flow's `import_session_id` holds, for one import slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SlotShape {
    /// The import has no session; a flow reaches it by `data_import_id` only.
    ImportWithoutSession,
    /// The session has data, and no flow.
    SessionWithoutFlow,
    /// The flow's `import_session_id` holds the import's id.
    ImportIdAsSession,
    /// The flow's `import_session_id` names nothing.
    DanglingSession,
    /// The flow names its session, as intended.
    Linked,
}

/// One uploaded file: what its `data_imports` row is made of.
pub(super) struct Upload<'a> {
    pub(super) tenant_index: usize,
    pub(super) import_id: Uuid,
    pub(super) session: Option<Uuid>,
    pub(super) user: Uuid,
    pub(super) filename: &'a str,
    pub(super) app: &'a str,
    pub(super) created_millis: i64,
}

pub(super) struct FlowSpec {
    pub(super) flow_id: Uuid,
    pub(super) client_account_id: Uuid,
    pub(super) engagement_id: Uuid,
    pub(super) user: Uuid,
    pub(super) import_session_id: Option<Uuid>,
    pub(super) data_import_id: Option<Uuid>,
    pub(super) created_millis: i64,
    /// The session the flow's state may mention.
    pub(super) state_session: Option<Uuid>,
    pub(super) title: String,
}

impl Generator {
    /// Adds import slot `slot` of tenant `tenant_index` to `rows`: its session (usually), its
    /// import with field mappings, assets and raw record plan, its flows, audit and LLM logs.
    pub fn import_slot(&mut self, tenant_index: usize, slot: u32, rows: &mut PendingRows) {
        let Some(tenant) = self.tenants.get(tenant_index).cloned() else {
            return;
        };
        let foreign = self.other_tenant(tenant_index);
        let slot_millis = tenant.base_millis
            + i64::from(slot) * self.slot_spacing_millis
            + self.rng.gen_range(0..self.slot_spacing_millis / 2);
        let session_id = self.uuid();
        let import_id = self.uuid();
        let mut import_key = [0u8; 32];
        self.rng.fill_bytes(&mut import_key);
        let user = *pick(&mut self.rng, &tenant.users);
        let app = *pick(&mut self.rng, APPLICATIONS);
        let filename = format!("cmdb_export_{}_{:04}.csv", app.to_lowercase(), slot + 1);

        let q = &mut self.quotas;
        let shape = if q.each.import_without_session.take() {
            SlotShape::ImportWithoutSession
        } else if q.each.session_without_flow.take() {
            SlotShape::SessionWithoutFlow
        } else if q.each.flow_import_session_is_import_id.take() {
            SlotShape::ImportIdAsSession
        } else if q.each.flow_import_session_dangling.take() {
            SlotShape::DanglingSession
        } else {
            SlotShape::Linked
        };
        let session = (shape != SlotShape::ImportWithoutSession).then_some(session_id);

        if session.is_some() {
            let row = self.session_row(&tenant, session_id, slot, user, &filename, slot_millis);
            rows.sessions.push(row);
        }
        let import_millis = slot_millis + 60_000;
        let upload = Upload {
            tenant_index,
            import_id,
            session,
            user,
            filename: &filename,
            app,
            created_millis: import_millis,
        };
        let row = self.import_row(&upload);
        rows.imports.push(row);
        self.field_mapping_rows(import_id, &import_key, &tenant, import_millis, rows);
        self.asset_rows(&tenant, session, &import_key, import_millis, rows);
        rows.raw_record_count += u64::from(self.rows_per_import);
        rows.raw_records.push(RawRecordPlan {
            import_id,
            session_id: session,
            tenant_index,
            import_key,
            rows: self.rows_per_import,
            next_row: 1,
            created_millis: import_millis + 2_000,
        });

        let flow_millis = slot_millis + 10 * 60_000;
        let own = |flow_id: Uuid,
                   import_session_id: Option<Uuid>,
                   data_import_id: Option<Uuid>,
                   created_millis: i64| FlowSpec {
            flow_id,
            client_account_id: tenant.client_account_id,
            engagement_id: tenant.engagement_id,
            user,
            import_session_id,
            data_import_id,
            created_millis,
            state_session: session,
            title: format!("{app} discovery"),
        };
        match shape {
            SlotShape::SessionWithoutFlow => {}
            SlotShape::ImportWithoutSession => {
                let flow_id = self.uuid();
                let row = self.flow_row(own(flow_id, None, Some(import_id), flow_millis));
                rows.flows.push(row);
            }
            SlotShape::ImportIdAsSession => {
                let flow_id = self.uuid();
                let row = self.flow_row(own(flow_id, Some(import_id), None, flow_millis));
                rows.flows.push(row);
            }
            SlotShape::DanglingSession => {
                let flow_id = self.uuid();
                let nowhere = self.uuid();
                let row = self.flow_row(own(flow_id, Some(nowhere), None, flow_millis));
                rows.flows.push(row);
            }
            SlotShape::Linked if self.quotas.each.flow_under_placeholder_tenant.take() => {
                let flow_id = self.uuid();
                let mut spec = own(flow_id, session, Some(import_id), flow_millis);
                spec.client_account_id = PLACEHOLDER_TENANT;
                spec.engagement_id = PLACEHOLDER_TENANT;
                let row = self.flow_row(spec);
                rows.flows.push(row);
            }
            SlotShape::Linked => {
                let mut flow_id = self.uuid();
                if self.quotas.each.flow_id_is_session_id.take() {
                    flow_id = session_id;
                } else if let Some(other) = &foreign {
                    if self.quotas.each.session_id_is_foreign_flow_id.take() {
                        let spec = FlowSpec {
                            flow_id: session_id,
                            client_account_id: other.client_account_id,
                            engagement_id: other.engagement_id,
                            user: other.users.first().copied().unwrap_or(user),
                            import_session_id: None,
                            data_import_id: None,
                            created_millis: flow_millis + HOUR_MILLIS,
                            state_session: None,
                            title: "Imported discovery".into(),
                        };
                        let row = self.flow_row(spec);
                        rows.flows.push(row);
                    }
                }
                let row = self.flow_row(own(flow_id, session, Some(import_id), flow_millis));
                rows.flows.push(row);
                if self.quotas.each.session_claimed_twice.take() {
                    let later = flow_millis + self.rng.gen_range(HOUR_MILLIS..2 * DAY_MILLIS);
                    let second = self.uuid();
                    let row = self.flow_row(own(second, session, Some(import_id), later));
                    rows.flows.push(row);
                }
                if self.quotas.each.session_claimed_twice_same_time.take() {
                    let twin = self.uuid();
                    let row = self.flow_row(own(twin, session, None, flow_millis));
                    rows.flows.push(row);
                }
                if let Some(other) = &foreign {
                    if self.quotas.each.session_claimed_by_foreign_flow.take() {
                        let spec = FlowSpec {
                            flow_id: self.uuid(),
                            client_account_id: other.client_account_id,
                            engagement_id: other.engagement_id,
                            user: other.users.first().copied().unwrap_or(user),
                            import_session_id: session,
                            data_import_id: None,
                            created_millis: flow_millis + 2 * HOUR_MILLIS,
                            state_session: None,
                            title: "Shared discovery".into(),
                        };
                        let row = self.flow_row(spec);
                        rows.flows.push(row);
                    }
                }
            }
        }
        if self.quotas.each.flow_without_session.take() {
            let flow_id = self.uuid();
            let mut spec = own(flow_id, None, None, flow_millis + 3 * HOUR_MILLIS);
            spec.state_session = None;
            spec.title = "Manual discovery".into();
            let row = self.flow_row(spec);
            rows.flows.push(row);
        }

        for index in 0..self.access_logs_per_import as usize {
            let at = import_millis + 5 * 60_000 * i64::try_from(index + 1).unwrap_or(1);
            let row = self.access_row(tenant_index, session, import_id, at);
            rows.access_log.push(row);
        }
        let row = self.deletion_row(&tenant, session, user, flow_millis + 5 * DAY_MILLIS);
        rows.deletion_audit.push(row);
        for index in 0..self.llm_logs_per_import as usize {
            let at = import_millis + 90_000 * i64::try_from(index + 1).unwrap_or(1);
            let row = self.llm_row(tenant_index, session, user, at);
            rows.llm_log.push(row);
        }
    }
}
