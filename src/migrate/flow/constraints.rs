//! The constraints of `head`: indexes on every new `flow_id` column and foreign keys from the
//! four core tables to `discovery_flows(flow_id)`. On PostgreSQL the indexes are built
//! `CONCURRENTLY` and the foreign keys added `NOT VALID`, then validated in a separate
//! statement (a `SHARE UPDATE EXCLUSIVE` lock only), each statement under the runner's
//! `lock_timeout`. On SQLite the foreign keys were declared with the columns.

use crate::migrate::EngineSql;

pub const CREATE_INDEXES: EngineSql = EngineSql {
    sqlite: "\
SELECT count(*) FROM sqlite_master;
CREATE INDEX IF NOT EXISTS ix_data_imports_flow_id ON data_imports (flow_id);
CREATE INDEX IF NOT EXISTS ix_raw_import_records_flow_id ON raw_import_records (flow_id);
CREATE INDEX IF NOT EXISTS ix_import_field_mappings_flow_id ON import_field_mappings (flow_id);
CREATE INDEX IF NOT EXISTS ix_assets_flow_id ON assets (flow_id);
CREATE INDEX IF NOT EXISTS ix_access_audit_log_flow_id ON access_audit_log (flow_id);
CREATE INDEX IF NOT EXISTS ix_llm_usage_logs_flow_id ON llm_usage_logs (flow_id);
CREATE INDEX IF NOT EXISTS ix_data_imports_tenant_flow_id ON data_imports (client_account_id, engagement_id, flow_id);
",
    postgres: "\
CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_data_imports_flow_id ON data_imports (flow_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_raw_import_records_flow_id ON raw_import_records (flow_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_import_field_mappings_flow_id ON import_field_mappings (flow_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_assets_flow_id ON assets (flow_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_access_audit_log_flow_id ON access_audit_log (flow_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_llm_usage_logs_flow_id ON llm_usage_logs (flow_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_data_imports_tenant_flow_id ON data_imports (client_account_id, engagement_id, flow_id);
",
};

macro_rules! add_fk_not_valid {
    ($table:literal) => {
        concat!(
            "DO $$ BEGIN\n",
            // The table is named through the search path (regclass), so the check looks in
            // the schema the ALTER would change, not in any schema that has such a constraint.
            "    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'fk_",
            $table,
            "_flow_id' AND conrelid = '",
            $table,
            "'::regclass) THEN\n",
            "        ALTER TABLE ",
            $table,
            " ADD CONSTRAINT fk_",
            $table,
            "_flow_id\n",
            "            FOREIGN KEY (flow_id) REFERENCES discovery_flows (flow_id) NOT VALID;\n",
            "    END IF;\n",
            "END $$;\n"
        )
    };
}

pub const ADD_FOREIGN_KEYS: EngineSql = EngineSql {
    sqlite: "-- sqlite: the foreign keys were declared with the columns (flow_expand)\nSELECT 1;\n",
    postgres: concat!(
        add_fk_not_valid!("data_imports"),
        add_fk_not_valid!("raw_import_records"),
        add_fk_not_valid!("import_field_mappings"),
        add_fk_not_valid!("assets"),
    ),
};

pub const VALIDATE_FOREIGN_KEYS: EngineSql = EngineSql {
    sqlite: "-- sqlite: nothing to validate separately\nSELECT 1;\n",
    postgres: "\
ALTER TABLE data_imports VALIDATE CONSTRAINT fk_data_imports_flow_id;
ALTER TABLE raw_import_records VALIDATE CONSTRAINT fk_raw_import_records_flow_id;
ALTER TABLE import_field_mappings VALIDATE CONSTRAINT fk_import_field_mappings_flow_id;
ALTER TABLE assets VALIDATE CONSTRAINT fk_assets_flow_id;
",
};

pub const DROP_CONSTRAINTS: EngineSql = EngineSql {
    sqlite: "\
SELECT count(*) FROM sqlite_master;
DROP INDEX IF EXISTS ix_data_imports_flow_id;
DROP INDEX IF EXISTS ix_raw_import_records_flow_id;
DROP INDEX IF EXISTS ix_import_field_mappings_flow_id;
DROP INDEX IF EXISTS ix_assets_flow_id;
DROP INDEX IF EXISTS ix_access_audit_log_flow_id;
DROP INDEX IF EXISTS ix_llm_usage_logs_flow_id;
DROP INDEX IF EXISTS ix_data_imports_tenant_flow_id;
",
    postgres: "\
ALTER TABLE data_imports DROP CONSTRAINT IF EXISTS fk_data_imports_flow_id;
ALTER TABLE raw_import_records DROP CONSTRAINT IF EXISTS fk_raw_import_records_flow_id;
ALTER TABLE import_field_mappings DROP CONSTRAINT IF EXISTS fk_import_field_mappings_flow_id;
ALTER TABLE assets DROP CONSTRAINT IF EXISTS fk_assets_flow_id;
DROP INDEX CONCURRENTLY IF EXISTS ix_data_imports_flow_id;
DROP INDEX CONCURRENTLY IF EXISTS ix_raw_import_records_flow_id;
DROP INDEX CONCURRENTLY IF EXISTS ix_import_field_mappings_flow_id;
DROP INDEX CONCURRENTLY IF EXISTS ix_assets_flow_id;
DROP INDEX CONCURRENTLY IF EXISTS ix_access_audit_log_flow_id;
DROP INDEX CONCURRENTLY IF EXISTS ix_llm_usage_logs_flow_id;
DROP INDEX CONCURRENTLY IF EXISTS ix_data_imports_tenant_flow_id;
",
};
