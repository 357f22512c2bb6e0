-- Refreshes this connection's schema cache: SQLite prepares DDL against the cache, and a
-- stale one (another connection changed the schema) turns IF [NOT] EXISTS into no-ops.
SELECT count(*) FROM sqlite_master;
ALTER TABLE data_imports ADD COLUMN flow_id TEXT REFERENCES discovery_flows(flow_id);
ALTER TABLE raw_import_records ADD COLUMN flow_id TEXT REFERENCES discovery_flows(flow_id);
ALTER TABLE import_field_mappings ADD COLUMN flow_id TEXT REFERENCES discovery_flows(flow_id);
ALTER TABLE assets ADD COLUMN flow_id TEXT REFERENCES discovery_flows(flow_id);
ALTER TABLE access_audit_log ADD COLUMN flow_id TEXT;
ALTER TABLE llm_usage_logs ADD COLUMN flow_id TEXT;
ALTER TABLE flow_deletion_audit RENAME TO flowkey_old_flow_deletion_audit;
CREATE TABLE flow_deletion_audit (
    id                 TEXT PRIMARY KEY,
    flow_id            TEXT NOT NULL,
    session_id         TEXT,
    client_account_id  TEXT NOT NULL,
    engagement_id      TEXT NOT NULL,
    user_id            TEXT NOT NULL,
    deletion_reason    TEXT,
    deletion_method    TEXT NOT NULL DEFAULT 'manual',
    deleted_by         TEXT NOT NULL,
    deleted_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    data_deleted       TEXT NOT NULL DEFAULT '{}',
    deletion_impact    TEXT NOT NULL DEFAULT '{}'
);
INSERT INTO flow_deletion_audit SELECT * FROM flowkey_old_flow_deletion_audit;
DROP TABLE flowkey_old_flow_deletion_audit;
CREATE INDEX ix_flow_deletion_audit_flow_id ON flow_deletion_audit(flow_id);
CREATE TRIGGER flowkey_dw_data_imports_flow_on_insert AFTER INSERT ON data_imports
WHEN NEW.flow_id IS NULL AND NEW.session_id IS NOT NULL
BEGIN
    UPDATE data_imports SET flow_id = (SELECT m.flow_id FROM session_flow_mapping m WHERE m.session_id = NEW.session_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id)) WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_data_imports_session_on_insert AFTER INSERT ON data_imports
WHEN NEW.flow_id IS NOT NULL AND NEW.session_id IS NULL
BEGIN
    UPDATE data_imports SET session_id = (SELECT m.session_id FROM session_flow_mapping m WHERE m.flow_id = NEW.flow_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id) AND EXISTS (SELECT 1 FROM data_import_sessions s WHERE s.id = m.session_id) ORDER BY m.session_id LIMIT 1) WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_data_imports_flow_on_update AFTER UPDATE ON data_imports
WHEN NEW.session_id IS NOT NULL AND (NEW.flow_id IS NULL OR (NEW.session_id IS NOT OLD.session_id AND NEW.flow_id IS OLD.flow_id))
BEGIN
    UPDATE data_imports SET flow_id = (SELECT m.flow_id FROM session_flow_mapping m WHERE m.session_id = NEW.session_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id)) WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_data_imports_flow_cleared_on_update AFTER UPDATE ON data_imports
WHEN NEW.session_id IS NULL AND OLD.session_id IS NOT NULL AND NEW.flow_id IS OLD.flow_id AND NEW.flow_id IS NOT NULL
BEGIN
    UPDATE data_imports SET flow_id = NULL WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_assets_flow_on_insert AFTER INSERT ON assets
WHEN NEW.flow_id IS NULL AND NEW.session_id IS NOT NULL
BEGIN
    UPDATE assets SET flow_id = (SELECT m.flow_id FROM session_flow_mapping m WHERE m.session_id = NEW.session_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id)) WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_assets_session_on_insert AFTER INSERT ON assets
WHEN NEW.flow_id IS NOT NULL AND NEW.session_id IS NULL
BEGIN
    UPDATE assets SET session_id = (SELECT m.session_id FROM session_flow_mapping m WHERE m.flow_id = NEW.flow_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id) AND EXISTS (SELECT 1 FROM data_import_sessions s WHERE s.id = m.session_id) ORDER BY m.session_id LIMIT 1) WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_assets_flow_on_update AFTER UPDATE ON assets
WHEN NEW.session_id IS NOT NULL AND (NEW.flow_id IS NULL OR (NEW.session_id IS NOT OLD.session_id AND NEW.flow_id IS OLD.flow_id))
BEGIN
    UPDATE assets SET flow_id = (SELECT m.flow_id FROM session_flow_mapping m WHERE m.session_id = NEW.session_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id)) WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_assets_flow_cleared_on_update AFTER UPDATE ON assets
WHEN NEW.session_id IS NULL AND OLD.session_id IS NOT NULL AND NEW.flow_id IS OLD.flow_id AND NEW.flow_id IS NOT NULL
BEGIN
    UPDATE assets SET flow_id = NULL WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_access_audit_log_flow_on_insert AFTER INSERT ON access_audit_log
WHEN NEW.flow_id IS NULL AND NEW.session_id IS NOT NULL
BEGIN
    UPDATE access_audit_log SET flow_id = (SELECT m.flow_id FROM session_flow_mapping m WHERE m.session_id = NEW.session_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id)) WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_access_audit_log_session_on_insert AFTER INSERT ON access_audit_log
WHEN NEW.flow_id IS NOT NULL AND NEW.session_id IS NULL
BEGIN
    UPDATE access_audit_log SET session_id = (SELECT m.session_id FROM session_flow_mapping m WHERE m.flow_id = NEW.flow_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id) AND EXISTS (SELECT 1 FROM data_import_sessions s WHERE s.id = m.session_id) ORDER BY m.session_id LIMIT 1) WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_access_audit_log_flow_on_update AFTER UPDATE ON access_audit_log
WHEN NEW.session_id IS NOT NULL AND (NEW.flow_id IS NULL OR (NEW.session_id IS NOT OLD.session_id AND NEW.flow_id IS OLD.flow_id))
BEGIN
    UPDATE access_audit_log SET flow_id = (SELECT m.flow_id FROM session_flow_mapping m WHERE m.session_id = NEW.session_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id)) WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_access_audit_log_flow_cleared_on_update AFTER UPDATE ON access_audit_log
WHEN NEW.session_id IS NULL AND OLD.session_id IS NOT NULL AND NEW.flow_id IS OLD.flow_id AND NEW.flow_id IS NOT NULL
BEGIN
    UPDATE access_audit_log SET flow_id = NULL WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_raw_import_records_flow_on_insert AFTER INSERT ON raw_import_records
WHEN NEW.flow_id IS NULL AND NEW.session_id IS NOT NULL
BEGIN
    UPDATE raw_import_records SET flow_id = (SELECT m.flow_id FROM session_flow_mapping m WHERE m.session_id = NEW.session_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id)) WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_raw_import_records_session_on_insert AFTER INSERT ON raw_import_records
WHEN NEW.flow_id IS NOT NULL AND NEW.session_id IS NULL
BEGIN
    UPDATE raw_import_records SET session_id = (SELECT m.session_id FROM session_flow_mapping m WHERE m.flow_id = NEW.flow_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id) AND EXISTS (SELECT 1 FROM data_import_sessions s WHERE s.id = m.session_id) ORDER BY m.session_id LIMIT 1) WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_raw_import_records_flow_on_update AFTER UPDATE ON raw_import_records
WHEN NEW.session_id IS NOT NULL AND (NEW.flow_id IS NULL OR (NEW.session_id IS NOT OLD.session_id AND NEW.flow_id IS OLD.flow_id))
BEGIN
    UPDATE raw_import_records SET flow_id = (SELECT m.flow_id FROM session_flow_mapping m WHERE m.session_id = NEW.session_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id)) WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_raw_import_records_flow_cleared_on_update AFTER UPDATE ON raw_import_records
WHEN NEW.session_id IS NULL AND OLD.session_id IS NOT NULL AND NEW.flow_id IS OLD.flow_id AND NEW.flow_id IS NOT NULL
BEGIN
    UPDATE raw_import_records SET flow_id = NULL WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_llm_usage_logs_flow_on_insert AFTER INSERT ON llm_usage_logs
WHEN NEW.flow_id IS NULL AND NEW.session_id IS NOT NULL
BEGIN
    UPDATE llm_usage_logs SET flow_id = (SELECT m.flow_id FROM session_flow_mapping m WHERE m.session_id = (SELECT lower(body) FROM (SELECT CASE WHEN lower(substr(t, 1, 13)) = 'disc_session_' THEN substr(t, 14) WHEN lower(substr(t, 1, 8)) = 'session-' THEN substr(t, 9) ELSE t END AS body FROM (SELECT trim(NEW.session_id, ' ' || char(9) || char(10) || char(11) || char(12) || char(13)) AS t)) WHERE length(body) = 36 AND body GLOB '[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]') AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id)) WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_llm_usage_logs_session_on_insert AFTER INSERT ON llm_usage_logs
WHEN NEW.flow_id IS NOT NULL AND NEW.session_id IS NULL
BEGIN
    UPDATE llm_usage_logs SET session_id = (SELECT m.session_id FROM session_flow_mapping m WHERE m.flow_id = NEW.flow_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id) ORDER BY m.session_id LIMIT 1) WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_llm_usage_logs_flow_on_update AFTER UPDATE ON llm_usage_logs
WHEN NEW.session_id IS NOT NULL AND (NEW.flow_id IS NULL OR (NEW.session_id IS NOT OLD.session_id AND NEW.flow_id IS OLD.flow_id))
BEGIN
    UPDATE llm_usage_logs SET flow_id = (SELECT m.flow_id FROM session_flow_mapping m WHERE m.session_id = (SELECT lower(body) FROM (SELECT CASE WHEN lower(substr(t, 1, 13)) = 'disc_session_' THEN substr(t, 14) WHEN lower(substr(t, 1, 8)) = 'session-' THEN substr(t, 9) ELSE t END AS body FROM (SELECT trim(NEW.session_id, ' ' || char(9) || char(10) || char(11) || char(12) || char(13)) AS t)) WHERE length(body) = 36 AND body GLOB '[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]-[0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F][0-9a-fA-F]') AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id)) WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_llm_usage_logs_flow_cleared_on_update AFTER UPDATE ON llm_usage_logs
WHEN NEW.session_id IS NULL AND OLD.session_id IS NOT NULL AND NEW.flow_id IS OLD.flow_id AND NEW.flow_id IS NOT NULL
BEGIN
    UPDATE llm_usage_logs SET flow_id = NULL WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_raw_import_records_flow_from_import_on_insert AFTER INSERT ON raw_import_records
WHEN NEW.flow_id IS NULL AND NEW.session_id IS NULL
BEGIN
    UPDATE raw_import_records SET flow_id = (SELECT f.flow_id FROM data_imports d JOIN discovery_flows f ON f.flow_id = d.flow_id WHERE d.id = NEW.data_import_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = f.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = f.engagement_id)) WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_raw_import_records_flow_from_import_on_update AFTER UPDATE ON raw_import_records
WHEN NEW.flow_id IS NULL AND NEW.session_id IS NULL
BEGIN
    UPDATE raw_import_records SET flow_id = (SELECT f.flow_id FROM data_imports d JOIN discovery_flows f ON f.flow_id = d.flow_id WHERE d.id = NEW.data_import_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = f.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = f.engagement_id)) WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_import_field_mappings_flow_from_import_on_insert AFTER INSERT ON import_field_mappings
WHEN NEW.flow_id IS NULL
BEGIN
    UPDATE import_field_mappings SET flow_id = (SELECT d.flow_id FROM data_imports d WHERE d.id = NEW.data_import_id) WHERE id = NEW.id; END;
CREATE TRIGGER flowkey_dw_import_field_mappings_flow_from_import_on_update AFTER UPDATE ON import_field_mappings
WHEN NEW.flow_id IS NULL
BEGIN
    UPDATE import_field_mappings SET flow_id = (SELECT d.flow_id FROM data_imports d WHERE d.id = NEW.data_import_id) WHERE id = NEW.id; END;
