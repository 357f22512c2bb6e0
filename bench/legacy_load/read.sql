-- A legacy reader: picks a random existing session (primary key probe) and reads its rows by
-- session_id, as the old platform does.
SELECT s.id AS sid FROM data_import_sessions AS s WHERE s.id = COALESCE((SELECT id FROM data_import_sessions WHERE id >= gen_random_uuid() ORDER BY id LIMIT 1), (SELECT id FROM data_import_sessions ORDER BY id LIMIT 1)) \gset
SELECT id, status, total_records FROM data_imports WHERE session_id = :sid;
SELECT id, row_number, raw_data FROM raw_import_records WHERE session_id = :sid LIMIT 20;
