ALTER TABLE data_imports ADD COLUMN IF NOT EXISTS flow_id uuid;
ALTER TABLE raw_import_records ADD COLUMN IF NOT EXISTS flow_id uuid;
ALTER TABLE import_field_mappings ADD COLUMN IF NOT EXISTS flow_id uuid;
ALTER TABLE assets ADD COLUMN IF NOT EXISTS flow_id uuid;
ALTER TABLE access_audit_log ADD COLUMN IF NOT EXISTS flow_id uuid;
ALTER TABLE llm_usage_logs ADD COLUMN IF NOT EXISTS flow_id uuid;
ALTER TABLE flow_deletion_audit ALTER COLUMN session_id DROP NOT NULL;
CREATE OR REPLACE FUNCTION flowkey_parse_session_id(raw text) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN body ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
                THEN lower(body)::uuid END
    FROM (SELECT CASE WHEN lower(left(t, 13)) = 'disc_session_' THEN substr(t, 14)
                      WHEN lower(left(t, 8)) = 'session-' THEN substr(t, 9)
                      ELSE t END AS body
          FROM (SELECT btrim(raw, E' \t\n\r\f' || chr(11)) AS t) AS trimmed) AS stripped
$$;
CREATE OR REPLACE FUNCTION flowkey_dual_write_data_imports() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.session_id IS DISTINCT FROM OLD.session_id
       AND NEW.flow_id IS NOT DISTINCT FROM OLD.flow_id THEN
        NEW.flow_id := NULL;
    END IF;
    IF NEW.flow_id IS NULL AND NEW.session_id IS NOT NULL THEN
        SELECT m.flow_id INTO NEW.flow_id FROM session_flow_mapping m
        WHERE m.session_id = NEW.session_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id);
    ELSIF TG_OP = 'INSERT' AND NEW.flow_id IS NOT NULL AND NEW.session_id IS NULL THEN
        SELECT m.session_id INTO NEW.session_id FROM session_flow_mapping m
        WHERE m.flow_id = NEW.flow_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id)
          AND EXISTS (SELECT 1 FROM data_import_sessions s WHERE s.id = m.session_id)
        ORDER BY m.session_id LIMIT 1;
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS flowkey_dual_write ON data_imports;
CREATE TRIGGER flowkey_dual_write BEFORE INSERT OR UPDATE ON data_imports
    FOR EACH ROW EXECUTE FUNCTION flowkey_dual_write_data_imports();
CREATE OR REPLACE FUNCTION flowkey_dual_write_assets() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.session_id IS DISTINCT FROM OLD.session_id
       AND NEW.flow_id IS NOT DISTINCT FROM OLD.flow_id THEN
        NEW.flow_id := NULL;
    END IF;
    IF NEW.flow_id IS NULL AND NEW.session_id IS NOT NULL THEN
        SELECT m.flow_id INTO NEW.flow_id FROM session_flow_mapping m
        WHERE m.session_id = NEW.session_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id);
    ELSIF TG_OP = 'INSERT' AND NEW.flow_id IS NOT NULL AND NEW.session_id IS NULL THEN
        SELECT m.session_id INTO NEW.session_id FROM session_flow_mapping m
        WHERE m.flow_id = NEW.flow_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id)
          AND EXISTS (SELECT 1 FROM data_import_sessions s WHERE s.id = m.session_id)
        ORDER BY m.session_id LIMIT 1;
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS flowkey_dual_write ON assets;
CREATE TRIGGER flowkey_dual_write BEFORE INSERT OR UPDATE ON assets
    FOR EACH ROW EXECUTE FUNCTION flowkey_dual_write_assets();
CREATE OR REPLACE FUNCTION flowkey_dual_write_access_audit_log() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.session_id IS DISTINCT FROM OLD.session_id
       AND NEW.flow_id IS NOT DISTINCT FROM OLD.flow_id THEN
        NEW.flow_id := NULL;
    END IF;
    IF NEW.flow_id IS NULL AND NEW.session_id IS NOT NULL THEN
        SELECT m.flow_id INTO NEW.flow_id FROM session_flow_mapping m
        WHERE m.session_id = NEW.session_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id);
    ELSIF TG_OP = 'INSERT' AND NEW.flow_id IS NOT NULL AND NEW.session_id IS NULL THEN
        SELECT m.session_id INTO NEW.session_id FROM session_flow_mapping m
        WHERE m.flow_id = NEW.flow_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id)
          AND EXISTS (SELECT 1 FROM data_import_sessions s WHERE s.id = m.session_id)
        ORDER BY m.session_id LIMIT 1;
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS flowkey_dual_write ON access_audit_log;
CREATE TRIGGER flowkey_dual_write BEFORE INSERT OR UPDATE ON access_audit_log
    FOR EACH ROW EXECUTE FUNCTION flowkey_dual_write_access_audit_log();
CREATE OR REPLACE FUNCTION flowkey_dual_write_raw_import_records() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.session_id IS DISTINCT FROM OLD.session_id
       AND NEW.flow_id IS NOT DISTINCT FROM OLD.flow_id THEN
        NEW.flow_id := NULL;
    END IF;
    IF NEW.flow_id IS NULL AND NEW.session_id IS NOT NULL THEN
        SELECT m.flow_id INTO NEW.flow_id FROM session_flow_mapping m
        WHERE m.session_id = NEW.session_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id);
    ELSIF TG_OP = 'INSERT' AND NEW.flow_id IS NOT NULL AND NEW.session_id IS NULL THEN
        SELECT m.session_id INTO NEW.session_id FROM session_flow_mapping m
        WHERE m.flow_id = NEW.flow_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id)
          AND EXISTS (SELECT 1 FROM data_import_sessions s WHERE s.id = m.session_id)
        ORDER BY m.session_id LIMIT 1;
    END IF;
    IF NEW.flow_id IS NULL AND NEW.session_id IS NULL THEN
        SELECT f.flow_id INTO NEW.flow_id FROM data_imports d JOIN discovery_flows f ON f.flow_id = d.flow_id
        WHERE d.id = NEW.data_import_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = f.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = f.engagement_id);
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS flowkey_dual_write ON raw_import_records;
CREATE TRIGGER flowkey_dual_write BEFORE INSERT OR UPDATE ON raw_import_records
    FOR EACH ROW EXECUTE FUNCTION flowkey_dual_write_raw_import_records();
CREATE OR REPLACE FUNCTION flowkey_dual_write_import_field_mappings() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.flow_id IS NULL THEN
        SELECT d.flow_id INTO NEW.flow_id FROM data_imports d WHERE d.id = NEW.data_import_id;
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS flowkey_dual_write ON import_field_mappings;
CREATE TRIGGER flowkey_dual_write BEFORE INSERT OR UPDATE ON import_field_mappings
    FOR EACH ROW EXECUTE FUNCTION flowkey_dual_write_import_field_mappings();
CREATE OR REPLACE FUNCTION flowkey_dual_write_llm_usage_logs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.session_id IS DISTINCT FROM OLD.session_id
       AND NEW.flow_id IS NOT DISTINCT FROM OLD.flow_id THEN
        NEW.flow_id := NULL;
    END IF;
    IF NEW.flow_id IS NULL AND NEW.session_id IS NOT NULL THEN
        SELECT m.flow_id INTO NEW.flow_id FROM session_flow_mapping m
        WHERE m.session_id = flowkey_parse_session_id(NEW.session_id) AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id);
    ELSIF TG_OP = 'INSERT' AND NEW.flow_id IS NOT NULL AND NEW.session_id IS NULL THEN
        SELECT m.session_id::text INTO NEW.session_id FROM session_flow_mapping m
        WHERE m.flow_id = NEW.flow_id AND (NEW.client_account_id IS NULL OR NEW.client_account_id = m.client_account_id) AND (NEW.engagement_id IS NULL OR NEW.engagement_id = m.engagement_id)
        ORDER BY m.session_id LIMIT 1;
    END IF;
    RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS flowkey_dual_write ON llm_usage_logs;
CREATE TRIGGER flowkey_dual_write BEFORE INSERT OR UPDATE ON llm_usage_logs
    FOR EACH ROW EXECUTE FUNCTION flowkey_dual_write_llm_usage_logs();
