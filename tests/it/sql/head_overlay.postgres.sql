-- Test-only stand-in for the revisions flow_mapping..flow_constraints: adds exactly what
-- docs/schema-head.md lists on top of the legacy schema (no triggers, no backfill).
CREATE TABLE session_flow_mapping (
    session_id                 uuid PRIMARY KEY,
    flow_id                    uuid NOT NULL,
    client_account_id          uuid NOT NULL,
    engagement_id              uuid NOT NULL,
    rule                       varchar(32) NOT NULL,
    flow_created_by_migration  boolean NOT NULL DEFAULT false,
    created_at                 timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_session_flow_mapping_flow_id ON session_flow_mapping(flow_id);
CREATE INDEX ix_session_flow_mapping_tenant ON session_flow_mapping(client_account_id, engagement_id);

ALTER TABLE data_imports ADD COLUMN flow_id uuid REFERENCES discovery_flows(flow_id);
ALTER TABLE raw_import_records ADD COLUMN flow_id uuid REFERENCES discovery_flows(flow_id);
ALTER TABLE import_field_mappings ADD COLUMN flow_id uuid REFERENCES discovery_flows(flow_id);
ALTER TABLE assets ADD COLUMN flow_id uuid REFERENCES discovery_flows(flow_id);
ALTER TABLE access_audit_log ADD COLUMN flow_id uuid;
ALTER TABLE llm_usage_logs ADD COLUMN flow_id uuid;
ALTER TABLE flow_deletion_audit ALTER COLUMN session_id DROP NOT NULL;

CREATE INDEX ix_data_imports_flow_id ON data_imports(flow_id);
CREATE INDEX ix_raw_import_records_flow_id ON raw_import_records(flow_id);
CREATE INDEX ix_import_field_mappings_flow_id ON import_field_mappings(flow_id);
CREATE INDEX ix_assets_flow_id ON assets(flow_id);
CREATE INDEX ix_access_audit_log_flow_id ON access_audit_log(flow_id);
CREATE INDEX ix_llm_usage_logs_flow_id ON llm_usage_logs(flow_id);
CREATE INDEX ix_data_imports_tenant_flow_id ON data_imports(client_account_id, engagement_id, flow_id);
