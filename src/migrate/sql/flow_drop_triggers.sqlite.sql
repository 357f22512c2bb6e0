-- Refreshes this connection's schema cache: SQLite prepares DDL against the cache, and a
-- stale one (another connection changed the schema) turns IF [NOT] EXISTS into no-ops.
SELECT count(*) FROM sqlite_master;
DROP TRIGGER IF EXISTS flowkey_dw_data_imports_flow_on_insert;
DROP TRIGGER IF EXISTS flowkey_dw_data_imports_session_on_insert;
DROP TRIGGER IF EXISTS flowkey_dw_data_imports_flow_on_update;
DROP TRIGGER IF EXISTS flowkey_dw_data_imports_flow_cleared_on_update;
DROP TRIGGER IF EXISTS flowkey_dw_assets_flow_on_insert;
DROP TRIGGER IF EXISTS flowkey_dw_assets_session_on_insert;
DROP TRIGGER IF EXISTS flowkey_dw_assets_flow_on_update;
DROP TRIGGER IF EXISTS flowkey_dw_assets_flow_cleared_on_update;
DROP TRIGGER IF EXISTS flowkey_dw_access_audit_log_flow_on_insert;
DROP TRIGGER IF EXISTS flowkey_dw_access_audit_log_session_on_insert;
DROP TRIGGER IF EXISTS flowkey_dw_access_audit_log_flow_on_update;
DROP TRIGGER IF EXISTS flowkey_dw_access_audit_log_flow_cleared_on_update;
DROP TRIGGER IF EXISTS flowkey_dw_raw_import_records_flow_on_insert;
DROP TRIGGER IF EXISTS flowkey_dw_raw_import_records_session_on_insert;
DROP TRIGGER IF EXISTS flowkey_dw_raw_import_records_flow_on_update;
DROP TRIGGER IF EXISTS flowkey_dw_raw_import_records_flow_cleared_on_update;
DROP TRIGGER IF EXISTS flowkey_dw_llm_usage_logs_flow_on_insert;
DROP TRIGGER IF EXISTS flowkey_dw_llm_usage_logs_session_on_insert;
DROP TRIGGER IF EXISTS flowkey_dw_llm_usage_logs_flow_on_update;
DROP TRIGGER IF EXISTS flowkey_dw_llm_usage_logs_flow_cleared_on_update;
DROP TRIGGER IF EXISTS flowkey_dw_raw_import_records_flow_from_import_on_insert;
DROP TRIGGER IF EXISTS flowkey_dw_raw_import_records_flow_from_import_on_update;
DROP TRIGGER IF EXISTS flowkey_dw_import_field_mappings_flow_from_import_on_insert;
DROP TRIGGER IF EXISTS flowkey_dw_import_field_mappings_flow_from_import_on_update;
