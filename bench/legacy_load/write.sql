-- A legacy writer: a new import and one raw record of a random existing session, written with
-- only session_id (no flow_id), in one transaction, as the old platform does.
SELECT s.id AS sid, s.client_account_id AS cid, s.engagement_id AS eid, s.created_by AS uid, gen_random_uuid() AS iid FROM data_import_sessions AS s WHERE s.id = COALESCE((SELECT id FROM data_import_sessions WHERE id >= gen_random_uuid() ORDER BY id LIMIT 1), (SELECT id FROM data_import_sessions ORDER BY id LIMIT 1)) \gset
BEGIN;
INSERT INTO data_imports (id, client_account_id, engagement_id, session_id, import_name, import_type, source_filename, status, imported_by) VALUES (:iid, :cid, :eid, :sid, 'bench load', 'cmdb', 'bench-load.csv', 'pending', :uid);
INSERT INTO raw_import_records (id, data_import_id, client_account_id, engagement_id, session_id, row_number, raw_data) VALUES (gen_random_uuid(), :iid, :cid, :eid, :sid, 1, '{"hostname":"bench-load"}');
COMMIT;
