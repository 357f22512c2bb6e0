//! The generator: realistic legacy rows, reproducible from a seed, with every oddity of
//! shared/legacy/README.md placed by quota.
//!
//! All ids and timestamps come from the random stream and a fixed epoch, never from the
//! clock. Each import gets its own key, and each CSV row its own ChaCha stream under that key,
//! so a row can be produced on its own: raw records are streamed in batches while assets and
//! field mapping samples, made earlier, still agree with them.

use rand::seq::SliceRandom;
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::db::types::DbTime;
use crate::seed::write::{Cell, Table};
use crate::seed::{Oddities, SeedConfig};

/// The tenant the platform used when it did not know the real one; flows created under it
/// hold data of a real tenant.
pub const PLACEHOLDER_TENANT: Uuid = Uuid::from_u128(0x1111_1111_1111_1111_1111_1111_1111_1111);

/// 2024-01-01T00:00:00Z: every generated timestamp is this plus an offset from the seed.
const EPOCH_MILLIS: i64 = 1_704_067_200_000;
const HOUR_MILLIS: i64 = 3_600_000;
const DAY_MILLIS: i64 = 24 * HOUR_MILLIS;
const USERS_PER_TENANT: usize = 3;
/// One asset per this many CSV rows (the rows the platform has processed so far).
const ROWS_PER_ASSET: u32 = 10;
const ACCESS_LOGS_PER_IMPORT: usize = 2;
const LLM_LOGS_PER_IMPORT: usize = 3;
/// Field mappings carry this many sample values per column.
const SAMPLE_ROWS: u32 = 3;

/// The CMDB export's header, in file order, with the platform attribute each maps to.
pub const CMDB_COLUMNS: [(&str, &str); 13] = [
    ("Asset Name", "name"),
    ("Asset Type", "asset_type"),
    ("Environment", "environment"),
    ("Owner", "business_owner"),
    ("Criticality", "criticality"),
    ("Operating System", "operating_system"),
    ("CPU Cores", "cpu_cores"),
    ("Memory (GB)", "memory_gb"),
    ("Storage (GB)", "storage_gb"),
    ("Location", "location"),
    ("Dependencies", "dependencies"),
    ("Hostname", "hostname"),
    ("IP Address", "ip_address"),
];

/// Phase names that legacy flows sometimes hold in `status`.
pub const PHASE_NAMES: [&str; 7] = [
    "data_import",
    "field_mapping",
    "attribute_mapping",
    "data_cleansing",
    "inventory",
    "dependencies",
    "tech_debt",
];

pub(crate) const CLIENT_ACCOUNTS: Table = Table {
    name: "client_accounts",
    columns: &["id", "name", "created_at"],
};
pub(crate) const ENGAGEMENTS: Table = Table {
    name: "engagements",
    columns: &["id", "client_account_id", "name", "created_at"],
};
pub(crate) const USERS: Table = Table {
    name: "users",
    columns: &["id", "email", "created_at"],
};
pub(crate) const SESSIONS: Table = Table {
    name: "data_import_sessions",
    columns: &[
        "id",
        "client_account_id",
        "engagement_id",
        "session_name",
        "session_display_name",
        "description",
        "is_default",
        "parent_session_id",
        "session_type",
        "auto_created",
        "source_filename",
        "status",
        "progress_percentage",
        "total_imports",
        "total_records_imported",
        "data_quality_score",
        "session_config",
        "business_context",
        "agent_insights",
        "created_by",
        "is_mock",
        "created_at",
        "updated_at",
    ],
};
pub(crate) const IMPORTS: Table = Table {
    name: "data_imports",
    columns: &[
        "id",
        "client_account_id",
        "engagement_id",
        "session_id",
        "import_name",
        "import_type",
        "description",
        "source_filename",
        "file_size_bytes",
        "file_type",
        "file_hash",
        "status",
        "progress_percentage",
        "total_records",
        "processed_records",
        "failed_records",
        "import_config",
        "imported_by",
        "started_at",
        "completed_at",
        "is_mock",
        "created_at",
        "updated_at",
    ],
};
pub(crate) const ASSETS: Table = Table {
    name: "assets",
    columns: &[
        "id",
        "client_account_id",
        "engagement_id",
        "session_id",
        "name",
        "asset_type",
        "hostname",
        "ip_address",
        "environment",
        "operating_system",
        "cpu_cores",
        "memory_gb",
        "storage_gb",
        "custom_attributes",
        "source_phase",
        "current_phase",
        "created_at",
        "updated_at",
    ],
};
pub(crate) const RAW_RECORDS: Table = Table {
    name: "raw_import_records",
    columns: &[
        "id",
        "data_import_id",
        "client_account_id",
        "engagement_id",
        "session_id",
        "row_number",
        "record_id",
        "raw_data",
        "processed_data",
        "validation_errors",
        "processing_notes",
        "is_processed",
        "is_valid",
        "asset_id",
        "created_at",
        "processed_at",
    ],
};
pub(crate) const FIELD_MAPPINGS: Table = Table {
    name: "import_field_mappings",
    columns: &[
        "id",
        "data_import_id",
        "source_field",
        "target_field",
        "mapping_type",
        "confidence_score",
        "is_user_defined",
        "is_validated",
        "validation_method",
        "status",
        "user_feedback",
        "original_ai_suggestion",
        "correction_reason",
        "transformation_logic",
        "validation_rules",
        "sample_values",
        "suggested_by",
        "validated_by",
        "created_at",
        "validated_at",
    ],
};
pub(crate) const FLOWS: Table = Table {
    name: "discovery_flows",
    columns: &[
        "id",
        "flow_id",
        "client_account_id",
        "engagement_id",
        "user_id",
        "import_session_id",
        "data_import_id",
        "flow_name",
        "flow_description",
        "status",
        "progress_percentage",
        "data_import_completed",
        "attribute_mapping_completed",
        "data_cleansing_completed",
        "inventory_completed",
        "dependencies_completed",
        "tech_debt_completed",
        "crewai_persistence_id",
        "crewai_state_data",
        "learning_scope",
        "memory_isolation_level",
        "assessment_ready",
        "assessment_package",
        "is_mock",
        "created_at",
        "updated_at",
        "completed_at",
    ],
};
pub(crate) const ACCESS_LOG: Table = Table {
    name: "access_audit_log",
    columns: &[
        "id",
        "user_id",
        "client_account_id",
        "engagement_id",
        "session_id",
        "action_type",
        "resource_type",
        "resource_id",
        "result",
        "ip_address",
        "user_agent",
        "details",
        "created_at",
    ],
};
pub(crate) const DELETION_AUDIT: Table = Table {
    name: "flow_deletion_audit",
    columns: &[
        "id",
        "flow_id",
        "session_id",
        "client_account_id",
        "engagement_id",
        "user_id",
        "deletion_reason",
        "deletion_method",
        "deleted_by",
        "deleted_at",
        "data_deleted",
        "deletion_impact",
    ],
};
pub(crate) const LLM_LOG: Table = Table {
    name: "llm_usage_logs",
    columns: &[
        "id",
        "client_account_id",
        "engagement_id",
        "user_id",
        "session_id",
        "feature_context",
        "model_name",
        "input_tokens",
        "output_tokens",
        "total_cost",
        "success",
        "created_at",
    ],
};

/// Rows waiting to be written, in no particular table order; the writer orders tables so that
/// every foreign key finds its target. Raw records are plans, produced batch by batch.
#[derive(Debug, Default)]
pub(crate) struct PendingRows {
    pub sessions: Vec<Vec<Cell>>,
    pub imports: Vec<Vec<Cell>>,
    pub assets: Vec<Vec<Cell>>,
    pub field_mappings: Vec<Vec<Cell>>,
    pub flows: Vec<Vec<Cell>>,
    pub access_log: Vec<Vec<Cell>>,
    pub deletion_audit: Vec<Vec<Cell>>,
    pub llm_log: Vec<Vec<Cell>>,
    pub raw_records: Vec<RawRecordPlan>,
}

impl PendingRows {
    /// Raw records still to be produced for these rows.
    pub fn raw_records_left(&self) -> u64 {
        self.raw_records
            .iter()
            .map(|plan| u64::from(plan.rows.saturating_sub(plan.next_row - 1)))
            .sum()
    }
}

/// The raw records of one import, still to be produced.
#[derive(Debug)]
pub(crate) struct RawRecordPlan {
    import_id: Uuid,
    session_id: Option<Uuid>,
    tenant_index: usize,
    import_key: [u8; 32],
    rows: u32,
    /// 1-based row number of the next record to produce.
    next_row: u32,
    created_millis: i64,
}

impl RawRecordPlan {
    pub fn is_done(&self) -> bool {
        self.next_row > self.rows
    }
}

/// The client accounts, engagements and users of every tenant of a run.
#[derive(Debug, Default)]
pub(crate) struct TenantRows {
    pub client_accounts: Vec<Vec<Cell>>,
    pub engagements: Vec<Vec<Cell>>,
    pub users: Vec<Vec<Cell>>,
}

/// Produces a run's rows in a fixed order from one random stream.
pub(crate) struct Generator {
    rng: ChaCha8Rng,
    rows_per_import: u32,
    /// Time between two imports of a tenant: a few hours, less when a tenant has so many
    /// imports that they would otherwise spread over decades.
    slot_spacing_millis: i64,
    tenants: Vec<Tenant>,
    quotas: Quotas,
    /// Cycles through the odd forms of `llm_usage_logs.session_id`.
    next_llm_form: usize,
    /// Cycles through the session keys embedded in `crewai_state_data`.
    next_state_keys: usize,
}

#[derive(Debug, Clone)]
struct Tenant {
    client_account_id: Uuid,
    engagement_id: Uuid,
    users: Vec<Uuid>,
    base_millis: i64,
}

/// What a flow's `import_session_id` holds, for one import slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotShape {
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

struct FlowSpec {
    flow_id: Uuid,
    client_account_id: Uuid,
    engagement_id: Uuid,
    user: Uuid,
    import_session_id: Option<Uuid>,
    data_import_id: Option<Uuid>,
    created_millis: i64,
    /// The session the flow's state may mention.
    state_session: Option<Uuid>,
    title: String,
}

impl Generator {
    /// A generator for `config` on a database that already holds `existing_sessions`
    /// sessions. Mixing that count into the key keeps a second run on the same database from
    /// producing the same ids as the first.
    pub fn new(config: &SeedConfig, existing_sessions: u64) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"flowkey seed v1");
        hasher.update(config.seed.to_le_bytes());
        hasher.update(existing_sessions.to_le_bytes());
        let mut rng = ChaCha8Rng::from_seed(hasher.finalize().into());
        let tenants = (0..config.tenants)
            .map(|_| Tenant {
                client_account_id: random_uuid(&mut rng),
                engagement_id: random_uuid(&mut rng),
                users: (0..USERS_PER_TENANT)
                    .map(|_| random_uuid(&mut rng))
                    .collect(),
                base_millis: EPOCH_MILLIS
                    + rng.gen_range(0..365) * DAY_MILLIS
                    + rng.gen_range(0..DAY_MILLIS),
            })
            .collect();
        Self {
            rng,
            rows_per_import: config.rows_per_import,
            slot_spacing_millis: (365 * DAY_MILLIS / i64::from(config.imports_per_tenant.max(1)))
                .clamp(60_000, 6 * HOUR_MILLIS),
            tenants,
            quotas: Quotas::new(&config.oddities),
            next_llm_form: 0,
            next_state_keys: 0,
        }
    }

    /// The rows of every tenant's account, engagement and users.
    pub fn tenant_rows(&mut self) -> TenantRows {
        let mut rows = TenantRows::default();
        for tenant in self.tenants.clone() {
            let created = tenant.base_millis - 30 * DAY_MILLIS;
            let company = *pick(&mut self.rng, COMPANIES);
            let suffix = short_hex(tenant.client_account_id);
            rows.client_accounts.push(vec![
                Cell::Uuid(Some(tenant.client_account_id)),
                text(format!("{company} ({suffix})")),
                time(created),
            ]);
            let wave = self.rng.gen_range(1..6);
            rows.engagements.push(vec![
                Cell::Uuid(Some(tenant.engagement_id)),
                Cell::Uuid(Some(tenant.client_account_id)),
                text(format!("{company} cloud migration, wave {wave}")),
                time(created + HOUR_MILLIS),
            ]);
            let domain = company.to_lowercase().replace([' ', '&', ','], "");
            for (index, user) in tenant.users.iter().enumerate() {
                let first = *pick(&mut self.rng, FIRST_NAMES);
                let last = *pick(&mut self.rng, LAST_NAMES);
                rows.users.push(vec![
                    Cell::Uuid(Some(*user)),
                    text(format!(
                        "{}.{}.{}@{domain}.example.com",
                        first.to_lowercase(),
                        last.to_lowercase(),
                        short_hex(*user)
                    )),
                    time(created + 2 * HOUR_MILLIS + i64::try_from(index).unwrap_or(0)),
                ]);
            }
        }
        rows
    }

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
        let shape = if q.import_without_session.take() {
            SlotShape::ImportWithoutSession
        } else if q.session_without_flow.take() {
            SlotShape::SessionWithoutFlow
        } else if q.flow_import_session_is_import_id.take() {
            SlotShape::ImportIdAsSession
        } else if q.flow_import_session_dangling.take() {
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
        let row = self.import_row(
            tenant_index,
            import_id,
            session,
            user,
            &filename,
            app,
            import_millis,
        );
        rows.imports.push(row);
        self.field_mapping_rows(import_id, &import_key, &tenant, import_millis, rows);
        self.asset_rows(&tenant, session, &import_key, import_millis, rows);
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
            SlotShape::Linked if self.quotas.flow_under_placeholder_tenant.take() => {
                let flow_id = self.uuid();
                let mut spec = own(flow_id, session, Some(import_id), flow_millis);
                spec.client_account_id = PLACEHOLDER_TENANT;
                spec.engagement_id = PLACEHOLDER_TENANT;
                let row = self.flow_row(spec);
                rows.flows.push(row);
            }
            SlotShape::Linked => {
                let mut flow_id = self.uuid();
                if self.quotas.flow_id_is_session_id.take() {
                    flow_id = session_id;
                } else if let Some(other) = &foreign {
                    if self.quotas.session_id_is_foreign_flow_id.take() {
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
                if self.quotas.session_claimed_twice.take() {
                    let later = flow_millis + self.rng.gen_range(HOUR_MILLIS..2 * DAY_MILLIS);
                    let second = self.uuid();
                    let row = self.flow_row(own(second, session, Some(import_id), later));
                    rows.flows.push(row);
                }
                if self.quotas.session_claimed_twice_same_time.take() {
                    let twin = self.uuid();
                    let row = self.flow_row(own(twin, session, None, flow_millis));
                    rows.flows.push(row);
                }
                if let Some(other) = &foreign {
                    if self.quotas.session_claimed_by_foreign_flow.take() {
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
        if self.quotas.flow_without_session.take() {
            let flow_id = self.uuid();
            let mut spec = own(flow_id, None, None, flow_millis + 3 * HOUR_MILLIS);
            spec.state_session = None;
            spec.title = "Manual discovery".into();
            let row = self.flow_row(spec);
            rows.flows.push(row);
        }

        for index in 0..ACCESS_LOGS_PER_IMPORT {
            let at = import_millis + 5 * 60_000 * i64::try_from(index + 1).unwrap_or(1);
            let row = self.access_row(tenant_index, session, import_id, at);
            rows.access_log.push(row);
        }
        let row = self.deletion_row(&tenant, session, user, flow_millis + 5 * DAY_MILLIS);
        rows.deletion_audit.push(row);
        for index in 0..LLM_LOGS_PER_IMPORT {
            let at = import_millis + 90_000 * i64::try_from(index + 1).unwrap_or(1);
            let row = self.llm_row(tenant_index, session, user, at);
            rows.llm_log.push(row);
        }
    }

    /// Produces up to `max_rows` raw records of `plan`, in row order.
    pub fn raw_record_batch(
        &mut self,
        plan: &mut RawRecordPlan,
        max_rows: usize,
    ) -> Vec<Vec<Cell>> {
        let mut batch = Vec::with_capacity(max_rows.min(plan.rows as usize));
        while !plan.is_done() && batch.len() < max_rows {
            let row = plan.next_row;
            plan.next_row += 1;
            let cmdb = cmdb_row(&plan.import_key, row);
            let session = match plan.session_id {
                Some(_) if self.quotas.raw_record_without_session.take() => None,
                other => other,
            };
            let (client, engagement) =
                self.child_tenant(plan.tenant_index, ChildTable::RawRecords, session.is_some());
            let created = plan.created_millis + i64::from(row);
            let processed = row % ROWS_PER_ASSET == 1;
            let valid = !cmdb.values[12].is_empty();
            batch.push(vec![
                Cell::Uuid(Some(cmdb.record_id)),
                Cell::Uuid(Some(plan.import_id)),
                Cell::Uuid(client),
                Cell::Uuid(engagement),
                Cell::Uuid(session),
                Cell::Int(Some(i64::from(row))),
                text(cmdb.ci_number.clone()),
                Cell::JsonText(cmdb.raw_data_json()),
                Cell::Json(processed.then(|| {
                    json!({"name": cmdb.values[0], "asset_type": cmdb.values[1],
                           "environment": cmdb.values[2]})
                })),
                Cell::Json((!valid).then(|| json!(["IP Address: value is missing"]))),
                Cell::Text(processed.then(|| "asset created".to_owned())),
                Cell::Bool(processed),
                Cell::Bool(valid),
                Cell::Uuid(processed.then_some(cmdb.asset_id)),
                time(created),
                Cell::Time(processed.then(|| millis_time(created + 30 * 60_000))),
            ]);
        }
        batch
    }

    fn uuid(&mut self) -> Uuid {
        random_uuid(&mut self.rng)
    }

    fn other_tenant(&self, tenant_index: usize) -> Option<Tenant> {
        if self.tenants.len() < 2 {
            return None;
        }
        self.tenants
            .get((tenant_index + 1) % self.tenants.len())
            .cloned()
    }

    /// Tenant columns of a child row: its own tenant's, another tenant's or NULL, by quota.
    /// A mismatch is only placed on a row that names its session, since that is what it
    /// disagrees with.
    fn child_tenant(
        &mut self,
        tenant_index: usize,
        table: ChildTable,
        names_session: bool,
    ) -> (Option<Uuid>, Option<Uuid>) {
        let other = self.other_tenant(tenant_index).filter(|_| names_session);
        let (mismatch, null) = self.quotas.child(table);
        if let Some(other) = other {
            if mismatch.take() {
                return (Some(other.client_account_id), Some(other.engagement_id));
            }
        }
        if null.take() {
            return (None, None);
        }
        match self.tenants.get(tenant_index) {
            Some(own) => (Some(own.client_account_id), Some(own.engagement_id)),
            None => (None, None),
        }
    }

    fn session_row(
        &mut self,
        tenant: &Tenant,
        session_id: Uuid,
        slot: u32,
        user: Uuid,
        filename: &str,
        created: i64,
    ) -> Vec<Cell> {
        let completed = self.rng.gen_bool(0.8);
        let quality = self.rng.gen_range(55..100);
        vec![
            Cell::Uuid(Some(session_id)),
            Cell::Uuid(Some(tenant.client_account_id)),
            Cell::Uuid(Some(tenant.engagement_id)),
            text(format!("cmdb_import_{:04}", slot + 1)),
            text(format!("CMDB import #{} ({filename})", slot + 1)),
            text("Asset inventory upload for discovery".into()),
            Cell::Bool(slot == 0),
            Cell::Uuid(None),
            text("data_import".into()),
            Cell::Bool(self.rng.gen_bool(0.3)),
            text(filename.to_owned()),
            text(if completed { "completed" } else { "active" }.into()),
            Cell::Int(Some(if completed {
                100
            } else {
                self.rng.gen_range(10..95)
            })),
            Cell::Int(Some(1)),
            Cell::Int(Some(i64::from(self.rows_per_import))),
            Cell::Int(Some(quality)),
            Cell::Json(Some(
                json!({"delimiter": ",", "encoding": "utf-8", "has_header": true}),
            )),
            Cell::Json(
                self.rng
                    .gen_bool(0.5)
                    .then(|| json!({"migration_goal": "datacenter exit", "target_cloud": "aws"})),
            ),
            Cell::Json(
                self.rng
                    .gen_bool(0.3)
                    .then(|| json!({"data_quality": quality, "duplicates_found": 0})),
            ),
            Cell::Uuid(Some(user)),
            Cell::Bool(false),
            time(created),
            time(created + 20 * 60_000),
        ]
    }

    #[allow(clippy::too_many_arguments)]
    fn import_row(
        &mut self,
        tenant_index: usize,
        import_id: Uuid,
        session: Option<Uuid>,
        user: Uuid,
        filename: &str,
        app: &str,
        created: i64,
    ) -> Vec<Cell> {
        let (client, engagement) =
            self.child_tenant(tenant_index, ChildTable::Imports, session.is_some());
        let mut config = json!({"delimiter": ",", "has_header": true, "encoding": "utf-8"});
        if let Some(session_id) = session {
            if self.quotas.import_config_names_session.take() {
                config["validation_session_id"] = Value::String(session_id.to_string());
            }
        }
        let mut hash = [0u8; 32];
        self.rng.fill_bytes(&mut hash);
        let rows = i64::from(self.rows_per_import);
        vec![
            Cell::Uuid(Some(import_id)),
            Cell::Uuid(client),
            Cell::Uuid(engagement),
            Cell::Uuid(session),
            text(format!("{app} CMDB export")),
            text("cmdb".into()),
            text(format!("Configuration items of {app}")),
            text(filename.to_owned()),
            Cell::Int(Some(rows * 190 + 160)),
            text("text/csv".into()),
            text(hex::encode(hash)),
            text("completed".into()),
            Cell::Float(Some(100.0)),
            Cell::Int(Some(rows)),
            Cell::Int(Some(rows)),
            Cell::Int(Some(0)),
            Cell::Json(Some(config)),
            Cell::Uuid(Some(user)),
            time(created),
            time(created + 1_500),
            Cell::Bool(false),
            time(created),
            time(created + 1_500),
        ]
    }

    fn field_mapping_rows(
        &mut self,
        import_id: Uuid,
        import_key: &[u8; 32],
        tenant: &Tenant,
        created: i64,
        rows: &mut PendingRows,
    ) {
        let samples: Vec<CmdbRow> = (1..=SAMPLE_ROWS.min(self.rows_per_import))
            .map(|row| cmdb_row(import_key, row))
            .collect();
        for (column, (source, target)) in CMDB_COLUMNS.iter().enumerate() {
            let validated = self.rng.gen_bool(0.6);
            let values: Vec<&str> = samples
                .iter()
                .map(|sample| sample.values[column].as_str())
                .collect();
            let validator = *pick(&mut self.rng, &tenant.users);
            rows.field_mappings.push(vec![
                Cell::Uuid(Some(self.uuid())),
                Cell::Uuid(Some(import_id)),
                text((*source).to_owned()),
                text((*target).to_owned()),
                text("direct".into()),
                Cell::Float(Some(f64::from(self.rng.gen_range(60..100_u32)) / 100.0)),
                Cell::Bool(false),
                Cell::Bool(validated),
                Cell::Text(validated.then(|| "user_review".to_owned())),
                text(if validated { "approved" } else { "suggested" }.into()),
                Cell::Text(None),
                text((*target).to_owned()),
                Cell::Text(None),
                Cell::Json(None),
                Cell::Json(Some(json!({"required": column < 2}))),
                Cell::Json(Some(json!(values))),
                text("ai_agent".into()),
                Cell::Uuid(validated.then_some(validator)),
                time(created + 5_000),
                Cell::Time(validated.then(|| millis_time(created + HOUR_MILLIS))),
            ]);
        }
    }

    fn asset_rows(
        &mut self,
        tenant: &Tenant,
        session: Option<Uuid>,
        import_key: &[u8; 32],
        created: i64,
        rows: &mut PendingRows,
    ) {
        for row in (1..=self.rows_per_import).step_by(ROWS_PER_ASSET as usize) {
            let cmdb = cmdb_row(import_key, row);
            let phase = *pick(&mut self.rng, &PHASE_NAMES[3..]);
            rows.assets.push(vec![
                Cell::Uuid(Some(cmdb.asset_id)),
                Cell::Uuid(Some(tenant.client_account_id)),
                Cell::Uuid(Some(tenant.engagement_id)),
                Cell::Uuid(session),
                text(cmdb.values[0].clone()),
                text(cmdb.values[1].to_lowercase()),
                text(cmdb.values[11].clone()),
                Cell::Text(Some(cmdb.values[12].clone()).filter(|ip| !ip.is_empty())),
                text(cmdb.values[2].to_lowercase()),
                text(cmdb.values[5].clone()),
                Cell::Int(cmdb.values[6].parse().ok()),
                Cell::Float(cmdb.values[7].parse().ok()),
                Cell::Float(cmdb.values[8].parse().ok()),
                Cell::Json(Some(json!({
                    "owner": cmdb.values[3],
                    "criticality": cmdb.values[4],
                    "location": cmdb.values[9],
                }))),
                text("data_import".into()),
                text(phase.into()),
                time(created + 30 * 60_000),
                time(created + 31 * 60_000),
            ]);
        }
    }

    fn flow_row(&mut self, spec: FlowSpec) -> Vec<Cell> {
        let phases_done = self.rng.gen_range(0..=6_usize);
        let status = if self.quotas.flow_status_is_phase.take() {
            *pick(&mut self.rng, &PHASE_NAMES)
        } else if phases_done == 6 {
            "completed"
        } else if phases_done == 0 {
            "initialized"
        } else {
            *pick(&mut self.rng, &["active", "running", "paused", "failed"])
        };
        let current_phase = PHASE_NAMES
            .get(phases_done.min(PHASE_NAMES.len() - 1))
            .copied()
            .unwrap_or("data_import");
        let mut state = json!({
            "flow_id": spec.flow_id.to_string(),
            "current_phase": current_phase,
            "phases_completed": phases_done,
            "errors": [],
        });
        if let Some(session) = spec.state_session {
            if self.quotas.flow_state_names_session.take() {
                let form = self.next_state_keys % 3;
                self.next_state_keys += 1;
                if form != 1 {
                    state["session_id"] = Value::String(session.to_string());
                }
                if form != 0 {
                    state["original_session_id"] = Value::String(session.to_string());
                }
            }
        }
        let persistence = self.rng.gen_bool(0.5).then(|| self.uuid());
        let updated = spec.created_millis + self.rng.gen_range(60_000..DAY_MILLIS);
        let done = |phase: usize| Cell::Bool(phases_done >= phase);
        vec![
            Cell::Uuid(Some(self.uuid())),
            Cell::Uuid(Some(spec.flow_id)),
            Cell::Uuid(Some(spec.client_account_id)),
            Cell::Uuid(Some(spec.engagement_id)),
            text(spec.user.to_string()),
            Cell::Uuid(spec.import_session_id),
            Cell::Uuid(spec.data_import_id),
            text(spec.title),
            text("Discovery of the uploaded CMDB inventory".into()),
            text(status.into()),
            Cell::Float(Some((phases_done as f64 * 1000.0 / 6.0).round() / 10.0)),
            done(1),
            done(2),
            done(3),
            done(4),
            done(5),
            done(6),
            Cell::Uuid(persistence),
            Cell::Json(Some(state)),
            text("engagement".into()),
            text("strict".into()),
            Cell::Bool(phases_done == 6),
            Cell::Json((phases_done == 6).then(|| json!({"ready_assets": 0, "waves": []}))),
            Cell::Bool(false),
            time(spec.created_millis),
            time(updated),
            Cell::Time((phases_done == 6).then(|| millis_time(updated))),
        ]
    }

    fn access_row(
        &mut self,
        tenant_index: usize,
        session: Option<Uuid>,
        import_id: Uuid,
        at: i64,
    ) -> Vec<Cell> {
        let (client, engagement) =
            self.child_tenant(tenant_index, ChildTable::AccessLog, session.is_some());
        let user = self
            .tenants
            .get(tenant_index)
            .and_then(|tenant| tenant.users.first().copied());
        let action = *pick(&mut self.rng, &["view", "upload", "update", "export"]);
        let allowed = self.rng.gen_bool(0.95);
        vec![
            Cell::Uuid(Some(self.uuid())),
            Cell::Uuid(user),
            Cell::Uuid(client),
            Cell::Uuid(engagement),
            Cell::Uuid(session),
            text(action.into()),
            text("data_import".into()),
            text(import_id.to_string()),
            text(if allowed { "success" } else { "denied" }.into()),
            text(self.ip_address()),
            text("Mozilla/5.0 (X11; Linux x86_64) migration-ui/2.3".into()),
            Cell::Json(Some(
                json!({"endpoint": "/api/v1/data-import", "method": "GET"}),
            )),
            time(at),
        ]
    }

    fn deletion_row(
        &mut self,
        tenant: &Tenant,
        session: Option<Uuid>,
        user: Uuid,
        at: i64,
    ) -> Vec<Cell> {
        let session = match session {
            Some(session) if !self.quotas.deletion_audit_dangling_session.take() => session,
            _ => self.uuid(),
        };
        let method = *pick(&mut self.rng, &["manual", "bulk", "cleanup"]);
        let records = self.rng.gen_range(0..500_u32);
        vec![
            Cell::Uuid(Some(self.uuid())),
            Cell::Uuid(Some(self.uuid())),
            Cell::Uuid(Some(session)),
            Cell::Uuid(Some(tenant.client_account_id)),
            Cell::Uuid(Some(tenant.engagement_id)),
            text(user.to_string()),
            text("duplicate discovery flow".into()),
            text(method.into()),
            text(user.to_string()),
            time(at),
            Cell::Json(Some(
                json!({"raw_import_records": records, "assets": records / 10}),
            )),
            Cell::Json(Some(json!({"affected_sessions": 1}))),
        ]
    }

    fn llm_row(
        &mut self,
        tenant_index: usize,
        session: Option<Uuid>,
        user: Uuid,
        at: i64,
    ) -> Vec<Cell> {
        let session_text = if self.quotas.llm_session_id_odd.take() {
            let form = self.next_llm_form % 6;
            self.next_llm_form += 1;
            let id = session.unwrap_or_else(|| self.uuid());
            match form {
                0 => Some(format!("disc_session_{id}")),
                1 => Some(format!("Session-{}", id.to_string().to_uppercase())),
                2 => Some(String::new()),
                3 => Some(
                    (*pick(&mut self.rng, &["undefined", "null", "n/a", "sess_123"])).to_owned(),
                ),
                4 => None,
                _ => Some(self.uuid().to_string()),
            }
        } else {
            session.map(|id| id.to_string())
        };
        let names_session = session.is_some_and(|id| session_text == Some(id.to_string()));
        let (client, engagement) =
            self.child_tenant(tenant_index, ChildTable::LlmLog, names_session);
        let input = self.rng.gen_range(200..8_000_i64);
        let output = self.rng.gen_range(50..2_000_i64);
        let cost = ((input as f64 * 2.5 + output as f64 * 10.0) / 1_000.0).round() / 1_000.0;
        vec![
            Cell::Uuid(Some(self.uuid())),
            Cell::Uuid(client),
            Cell::Uuid(engagement),
            text(user.to_string()),
            Cell::Text(session_text),
            text(
                (*pick(
                    &mut self.rng,
                    &["field_mapping", "data_cleansing", "asset_classification"],
                ))
                .into(),
            ),
            text(
                (*pick(
                    &mut self.rng,
                    &["gpt-4o", "gpt-4o-mini", "claude-3-5-sonnet", "llama-3-70b"],
                ))
                .into(),
            ),
            Cell::Int(Some(input)),
            Cell::Int(Some(output)),
            Cell::Float(Some(cost)),
            Cell::Bool(self.rng.gen_bool(0.97)),
            time(at),
        ]
    }

    fn ip_address(&mut self) -> String {
        format!(
            "10.{}.{}.{}",
            self.rng.gen_range(0..=255_u8),
            self.rng.gen_range(0..=255_u8),
            self.rng.gen_range(1..=254_u8)
        )
    }
}

/// A quota places an oddity on a proportion `rate` of its candidates: the first candidate
/// asked is always taken (when the rate is above zero), then one every `1 / rate`.
#[derive(Debug, Clone, Copy)]
struct Quota {
    rate: f64,
    credit: f64,
}

impl Quota {
    fn new(rate: f64) -> Self {
        Self { rate, credit: 1.0 }
    }

    fn take(&mut self) -> bool {
        if self.rate <= 0.0 {
            return false;
        }
        let hit = self.credit >= 1.0;
        if hit {
            self.credit -= 1.0;
        }
        self.credit += self.rate;
        hit
    }
}

#[derive(Debug, Clone, Copy)]
enum ChildTable {
    RawRecords,
    Imports,
    AccessLog,
    LlmLog,
}

/// One quota per oddity, and per child table for the tenant column oddities, so that a rare
/// table is not starved by a frequent one.
struct Quotas {
    import_without_session: Quota,
    session_without_flow: Quota,
    flow_import_session_is_import_id: Quota,
    flow_import_session_dangling: Quota,
    flow_under_placeholder_tenant: Quota,
    flow_id_is_session_id: Quota,
    session_id_is_foreign_flow_id: Quota,
    session_claimed_twice: Quota,
    session_claimed_twice_same_time: Quota,
    session_claimed_by_foreign_flow: Quota,
    flow_without_session: Quota,
    flow_status_is_phase: Quota,
    flow_state_names_session: Quota,
    import_config_names_session: Quota,
    raw_record_without_session: Quota,
    /// (mismatch, null) per child table, in [`ChildTable`] order.
    child_tenant: [(Quota, Quota); 4],
    deletion_audit_dangling_session: Quota,
    llm_session_id_odd: Quota,
}

impl Quotas {
    fn new(rates: &Oddities) -> Self {
        let child = (
            Quota::new(rates.child_tenant_mismatch),
            Quota::new(rates.child_tenant_null),
        );
        Self {
            import_without_session: Quota::new(rates.import_without_session),
            session_without_flow: Quota::new(rates.session_without_flow),
            flow_import_session_is_import_id: Quota::new(rates.flow_import_session_is_import_id),
            flow_import_session_dangling: Quota::new(rates.flow_import_session_dangling),
            flow_under_placeholder_tenant: Quota::new(rates.flow_under_placeholder_tenant),
            flow_id_is_session_id: Quota::new(rates.flow_id_is_session_id),
            session_id_is_foreign_flow_id: Quota::new(rates.session_id_is_foreign_flow_id),
            session_claimed_twice: Quota::new(rates.session_claimed_twice),
            session_claimed_twice_same_time: Quota::new(rates.session_claimed_twice_same_time),
            session_claimed_by_foreign_flow: Quota::new(rates.session_claimed_by_foreign_flow),
            flow_without_session: Quota::new(rates.flow_without_session),
            flow_status_is_phase: Quota::new(rates.flow_status_is_phase),
            flow_state_names_session: Quota::new(rates.flow_state_names_session),
            import_config_names_session: Quota::new(rates.import_config_names_session),
            raw_record_without_session: Quota::new(rates.raw_record_without_session),
            child_tenant: [child; 4],
            deletion_audit_dangling_session: Quota::new(rates.deletion_audit_dangling_session),
            llm_session_id_odd: Quota::new(rates.llm_session_id_odd),
        }
    }

    fn child(&mut self, table: ChildTable) -> (&mut Quota, &mut Quota) {
        let (mismatch, null) = &mut self.child_tenant[table as usize];
        (mismatch, null)
    }
}

/// One CSV row of an import, a pure function of the import's key and the row number.
struct CmdbRow {
    record_id: Uuid,
    asset_id: Uuid,
    ci_number: String,
    /// In [`CMDB_COLUMNS`] order, as text, the way the CSV had them.
    values: [String; 13],
}

impl CmdbRow {
    /// `raw_data`: `{header: value}` in the file's column order.
    fn raw_data_json(&self) -> String {
        let mut out = String::with_capacity(400);
        out.push('{');
        for (index, ((header, _), value)) in CMDB_COLUMNS.iter().zip(&self.values).enumerate() {
            if index > 0 {
                out.push(',');
            }
            push_json_string(&mut out, header);
            out.push(':');
            push_json_string(&mut out, value);
        }
        out.push('}');
        out
    }
}

fn row_rng(import_key: &[u8; 32], row: u32) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::from_seed(*import_key);
    rng.set_stream(u64::from(row));
    rng
}

/// The asset name of a row: the first draws of the row's stream, so that other rows can name
/// it as a dependency without producing it whole.
fn asset_name(rng: &mut ChaCha8Rng, row: u32) -> (String, &'static str) {
    let app = *pick(rng, APPLICATIONS);
    let (role, _) = *pick(rng, ROLES);
    (format!("{}-{role}-{row:05}", app.to_lowercase()), role)
}

fn cmdb_row(import_key: &[u8; 32], row: u32) -> CmdbRow {
    let mut rng = row_rng(import_key, row);
    let (name, role) = asset_name(&mut rng, row);
    let asset_type = ROLES
        .iter()
        .find(|(candidate, _)| *candidate == role)
        .map(|(_, kind)| *kind)
        .unwrap_or("Server");
    let record_id = random_uuid(&mut rng);
    let asset_id = random_uuid(&mut rng);
    let ci_number = format!("CI{:07}", rng.gen_range(0..10_000_000));
    let environment = *pick(
        &mut rng,
        &["Production", "Staging", "Development", "Test", "DR"],
    );
    let owner = format!(
        "{} {}",
        pick(&mut rng, FIRST_NAMES),
        pick(&mut rng, LAST_NAMES)
    );
    let criticality = *pick(&mut rng, &["Low", "Medium", "High", "Critical"]);
    let os = *pick(&mut rng, OPERATING_SYSTEMS);
    let cpu = *pick(&mut rng, &[2, 4, 8, 16, 32, 64]);
    let memory = *pick(&mut rng, &[4, 8, 16, 32, 64, 128, 256]);
    let storage = rng.gen_range(20..4_000) * 5;
    let location = *pick(&mut rng, LOCATIONS);
    let dependency_count = if row > 1 { rng.gen_range(0..3) } else { 0 };
    let mut dependencies = Vec::with_capacity(dependency_count);
    for _ in 0..dependency_count {
        let other = rng.gen_range(1..row);
        dependencies.push(asset_name(&mut row_rng(import_key, other), other).0);
    }
    let hostname = format!("{name}.{}.corp.example.com", location_code(location));
    // A few rows come without an IP, as real exports do.
    let ip = if rng.gen_bool(0.02) {
        String::new()
    } else {
        format!(
            "10.{}.{}.{}",
            rng.gen_range(0..=255_u8),
            rng.gen_range(0..=255_u8),
            rng.gen_range(1..=254_u8)
        )
    };
    CmdbRow {
        record_id,
        asset_id,
        ci_number,
        values: [
            name,
            asset_type.to_owned(),
            environment.to_owned(),
            owner,
            criticality.to_owned(),
            os.to_owned(),
            cpu.to_string(),
            memory.to_string(),
            storage.to_string(),
            location.to_owned(),
            dependencies.join("; "),
            hostname,
            ip,
        ],
    }
}

fn location_code(location: &str) -> String {
    location
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(6)
        .collect::<String>()
        .to_lowercase()
}

fn push_json_string(out: &mut String, value: &str) {
    out.push('"');
    for character in value.chars() {
        match character {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            control if u32::from(control) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", u32::from(control)));
            }
            other => out.push(other),
        }
    }
    out.push('"');
}

/// A UUID v4 from the random stream (never from the operating system).
fn random_uuid(rng: &mut ChaCha8Rng) -> Uuid {
    let mut bytes = [0u8; 16];
    rng.fill_bytes(&mut bytes);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, choices: &'a [T]) -> &'a T {
    // Every list here is a non-empty constant; the fallback only keeps this panic-free.
    choices.choose(rng).unwrap_or_else(|| &choices[0])
}

fn short_hex(uuid: Uuid) -> String {
    uuid.simple().to_string().chars().take(12).collect()
}

fn text(value: String) -> Cell {
    Cell::Text(Some(value))
}

fn millis_time(millis: i64) -> DbTime {
    DbTime(chrono::DateTime::from_timestamp_millis(millis).unwrap_or_default())
}

fn time(millis: i64) -> Cell {
    Cell::Time(Some(millis_time(millis)))
}

const COMPANIES: &[&str] = &[
    "Acme Corp",
    "Globex",
    "Initech",
    "Umbrella Health",
    "Stark Industries",
    "Wayne Enterprises",
    "Hooli",
    "Vandelay Industries",
    "Cyberdyne Systems",
    "Soylent Foods",
    "Tyrell",
    "Aperture Labs",
];
const FIRST_NAMES: &[&str] = &[
    "Alice", "Bob", "Carla", "Deepak", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
    "Lars", "Mei", "Nora", "Omar", "Priya",
];
const LAST_NAMES: &[&str] = &[
    "Anderson", "Bauer", "Chen", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito",
    "Jansen", "Kowalski", "Lopez", "Moreau", "Nakamura", "Okafor", "Patel",
];
const APPLICATIONS: &[&str] = &[
    "Billing",
    "CRM",
    "Payroll",
    "Inventory",
    "Portal",
    "Reporting",
    "Ledger",
    "Logistics",
    "Search",
    "Auth",
];
const ROLES: &[(&str, &str)] = &[
    ("web", "Server"),
    ("app", "Application"),
    ("db", "Database"),
    ("lb", "Network"),
    ("nas", "Storage"),
    ("vm", "Virtual Machine"),
    ("mq", "Middleware"),
];
const OPERATING_SYSTEMS: &[&str] = &[
    "Ubuntu 22.04 LTS",
    "Red Hat Enterprise Linux 8.6",
    "Windows Server 2019",
    "Windows Server 2016",
    "CentOS 7.9",
    "SUSE Linux Enterprise 15",
    "AIX 7.2",
];
const LOCATIONS: &[&str] = &[
    "DC Frankfurt",
    "DC Dallas",
    "DC Singapore",
    "Azure West Europe",
    "AWS us-east-1",
    "London Colo",
    "Paris HQ",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quota_takes_the_first_candidate_then_its_proportion() {
        let mut quota = Quota::new(0.25);
        let taken: Vec<bool> = (0..8).map(|_| quota.take()).collect();
        assert_eq!(
            taken,
            [true, false, false, false, true, false, false, false]
        );
        let mut never = Quota::new(0.0);
        assert!((0..100).all(|_| !never.take()));
        let mut always = Quota::new(1.0);
        assert!((0..100).all(|_| always.take()));
    }

    #[test]
    fn a_cmdb_row_depends_only_on_its_import_and_number() {
        let key = [7u8; 32];
        let first = cmdb_row(&key, 12);
        let again = cmdb_row(&key, 12);
        assert_eq!(first.values, again.values);
        assert_eq!(first.record_id, again.record_id);
        assert_ne!(first.record_id, cmdb_row(&key, 13).record_id);
        assert_eq!(first.record_id.get_version_num(), 4);
    }

    #[test]
    fn raw_data_is_json_keyed_by_the_cmdb_header() {
        let row = cmdb_row(&[1u8; 32], 5);
        let parsed: serde_json::Map<String, Value> =
            serde_json::from_str(&row.raw_data_json()).expect("valid json");
        assert_eq!(parsed.len(), CMDB_COLUMNS.len());
        assert_eq!(parsed["Asset Name"], Value::String(row.values[0].clone()));
    }

    #[test]
    fn the_same_seed_and_history_give_the_same_rows() {
        let config = SeedConfig::default();
        let mut one = Generator::new(&config, 0);
        let mut two = Generator::new(&config, 0);
        let mut three = Generator::new(&config, 16);
        let (mut a, mut b, mut c) = (
            PendingRows::default(),
            PendingRows::default(),
            PendingRows::default(),
        );
        one.import_slot(0, 0, &mut a);
        two.import_slot(0, 0, &mut b);
        three.import_slot(0, 0, &mut c);
        assert_eq!(a.imports, b.imports);
        assert_ne!(a.imports, c.imports);
    }
}
