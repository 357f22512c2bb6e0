//! One row of each table, as the generator builds it from an import slot's facts.

use rand::{Rng, RngCore};
use serde_json::{json, Value};
use uuid::Uuid;

use super::cmdb::{cmdb_row, CmdbRow};
use super::quota::ChildTable;
use super::slot::{FlowSpec, Upload};
use super::vocabulary::{CMDB_COLUMNS, PHASE_NAMES};
use super::{
    millis_time, pick, text, time, Generator, PendingRows, RawRecordPlan, Tenant, DAY_MILLIS,
    HOUR_MILLIS, ROWS_PER_ASSET, SAMPLE_ROWS,
};
use crate::seed::write::Cell;

impl Generator {
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
                Some(_) if self.quotas.each.raw_record_without_session.take() => None,
                other => other,
            };
            let (client, engagement) =
                self.child_tenant(plan.tenant_index, ChildTable::RawRecords, session);
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

    pub(super) fn session_row(
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

    pub(super) fn import_row(&mut self, upload: &Upload<'_>) -> Vec<Cell> {
        let &Upload {
            tenant_index,
            import_id,
            session,
            user,
            filename,
            app,
            created_millis: created,
        } = upload;
        let (client, engagement) = self.child_tenant(tenant_index, ChildTable::Imports, session);
        let mut config = json!({"delimiter": ",", "has_header": true, "encoding": "utf-8"});
        if let Some(session_id) = session {
            if self.quotas.each.import_config_names_session.take() {
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

    pub(super) fn field_mapping_rows(
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
        for index in 0..self.field_mappings_per_import as usize {
            let column = index % CMDB_COLUMNS.len();
            let (header, target) = CMDB_COLUMNS[column];
            // Past the export's columns, a column mapped again (a re-upload's suggestions).
            let source = match index / CMDB_COLUMNS.len() {
                0 => header.to_owned(),
                round => format!("{header} ({})", round + 1),
            };
            let validated = self.rng.gen_bool(0.6);
            let values: Vec<&str> = samples
                .iter()
                .map(|sample| sample.values[column].as_str())
                .collect();
            let validator = *pick(&mut self.rng, &tenant.users);
            rows.field_mappings.push(vec![
                Cell::Uuid(Some(self.uuid())),
                Cell::Uuid(Some(import_id)),
                text(source),
                text(target.to_owned()),
                text("direct".into()),
                Cell::Float(Some(f64::from(self.rng.gen_range(60..100_u32)) / 100.0)),
                Cell::Bool(false),
                Cell::Bool(validated),
                Cell::Text(validated.then(|| "user_review".to_owned())),
                text(if validated { "approved" } else { "suggested" }.into()),
                Cell::Text(None),
                text(target.to_owned()),
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

    pub(super) fn asset_rows(
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

    pub(super) fn flow_row(&mut self, spec: FlowSpec) -> Vec<Cell> {
        let phases_done = self.rng.gen_range(0..=6_usize);
        let status = if self.quotas.each.flow_status_is_phase.take() {
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
            if self.quotas.each.flow_state_names_session.take() {
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

    pub(super) fn access_row(
        &mut self,
        tenant_index: usize,
        session: Option<Uuid>,
        import_id: Uuid,
        at: i64,
    ) -> Vec<Cell> {
        let (client, engagement) = self.child_tenant(tenant_index, ChildTable::AccessLog, session);
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

    pub(super) fn deletion_row(
        &mut self,
        tenant: &Tenant,
        session: Option<Uuid>,
        user: Uuid,
        at: i64,
    ) -> Vec<Cell> {
        let session = match session {
            Some(session) if !self.quotas.each.deletion_audit_dangling_session.take() => session,
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

    pub(super) fn llm_row(
        &mut self,
        tenant_index: usize,
        session: Option<Uuid>,
        user: Uuid,
        at: i64,
    ) -> Vec<Cell> {
        let session_text = if self.quotas.each.llm_session_id_odd.take() {
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
        let named_session = session.filter(|id| session_text == Some(id.to_string()));
        let (client, engagement) =
            self.child_tenant(tenant_index, ChildTable::LlmLog, named_session);
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

    pub(super) fn ip_address(&mut self) -> String {
        format!(
            "10.{}.{}.{}",
            self.rng.gen_range(0..=255_u8),
            self.rng.gen_range(0..=255_u8),
            self.rng.gen_range(1..=254_u8)
        )
    }
}
