use serde::Serialize;
use serde_json::Value;
use sqlx::types::Json;

use crate::db::types::DbTime;
use crate::ids::{ClientAccountId, EngagementId, FlowId, ImportId, SessionId, TenantId};

/// The phases of a discovery flow, in order, as `discovery_flows` stores their completion.
pub const PHASES: [&str; 6] = [
    "data_import",
    "attribute_mapping",
    "data_cleansing",
    "inventory",
    "dependencies",
    "tech_debt",
];

/// Statuses after which a flow neither pauses nor resumes.
const FINISHED: [&str; 4] = ["completed", "failed", "cancelled", "deleted"];

/// The persisted state of one discovery flow.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct DiscoveryFlow {
    pub flow_id: FlowId,
    pub client_account_id: ClientAccountId,
    pub engagement_id: EngagementId,
    pub user_id: Option<String>,
    /// Deprecated: the legacy session this flow was started for (it may name a data import
    /// or nothing at all in legacy rows).
    pub import_session_id: Option<SessionId>,
    pub data_import_id: Option<ImportId>,
    pub flow_name: String,
    pub flow_description: Option<String>,
    /// `initialized`, `active`, `running`, `in_progress`, `paused`, `completed`, `failed`,
    /// `cancelled`, `deleted`, `migrated`; legacy rows may hold a phase name instead (such
    /// flows are active).
    #[schema(example = "active")]
    pub status: String,
    pub progress_percentage: f64,
    pub data_import_completed: bool,
    pub attribute_mapping_completed: bool,
    pub data_cleansing_completed: bool,
    pub inventory_completed: bool,
    pub dependencies_completed: bool,
    pub tech_debt_completed: bool,
    #[schema(value_type = Object)]
    pub crewai_state_data: Json<Value>,
    pub assessment_ready: bool,
    pub created_at: DbTime,
    pub updated_at: Option<DbTime>,
    pub completed_at: Option<DbTime>,
}

/// One phase and whether it is done.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PhaseState {
    pub phase: &'static str,
    pub completed: bool,
}

/// What `…/flows/{flow_id}/status` answers: the flow's progress at a glance.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FlowStatus {
    pub flow_id: FlowId,
    pub status: String,
    /// Legacy rows sometimes hold a phase name as their status; such flows are active.
    pub is_active: bool,
    pub current_phase: Option<&'static str>,
    pub progress_percentage: f64,
    pub phases: Vec<PhaseState>,
    pub assessment_ready: bool,
    pub updated_at: Option<DbTime>,
}

impl DiscoveryFlow {
    pub fn tenant(&self) -> TenantId {
        TenantId::new(self.client_account_id, self.engagement_id)
    }

    pub fn phase_states(&self) -> Vec<PhaseState> {
        let done = [
            self.data_import_completed,
            self.attribute_mapping_completed,
            self.data_cleansing_completed,
            self.inventory_completed,
            self.dependencies_completed,
            self.tech_debt_completed,
        ];
        PHASES
            .iter()
            .zip(done)
            .map(|(phase, completed)| PhaseState { phase, completed })
            .collect()
    }

    pub fn status_view(&self) -> FlowStatus {
        let phases = self.phase_states();
        let phase_named_by_status = PHASES.iter().copied().find(|p| *p == self.status);
        let is_active = phase_named_by_status.is_some()
            || matches!(
                self.status.as_str(),
                "active" | "running" | "initialized" | "in_progress"
            );
        let current_phase =
            phase_named_by_status.or_else(|| phases.iter().find(|p| !p.completed).map(|p| p.phase));
        FlowStatus {
            flow_id: self.flow_id,
            status: self.status.clone(),
            is_active,
            current_phase,
            progress_percentage: self.progress_percentage,
            phases,
            assessment_ready: self.assessment_ready,
            updated_at: self.updated_at,
        }
    }

    /// The status after `action`, or `None` when the action does not apply.
    pub fn next_status(&self, action: FlowAction) -> Option<&'static str> {
        let finished = FINISHED.contains(&self.status.as_str());
        match action {
            FlowAction::Pause if !finished && self.status != "paused" => Some("paused"),
            FlowAction::Resume if self.status == "paused" => Some("active"),
            _ => None,
        }
    }
}

/// A change a client may ask of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowAction {
    Pause,
    Resume,
}

impl FlowAction {
    pub fn verb(&self) -> &'static str {
        match self {
            FlowAction::Pause => "pause",
            FlowAction::Resume => "resume",
        }
    }
}

/// What a new flow holds.
#[derive(Debug, Clone)]
pub struct NewFlow {
    pub flow_id: FlowId,
    pub tenant: TenantId,
    pub user_id: Option<String>,
    pub import_session_id: Option<SessionId>,
    pub data_import_id: Option<ImportId>,
    pub flow_name: String,
}
