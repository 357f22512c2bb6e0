CREATE OR REPLACE FUNCTION flowkey_parse_session_id(raw text) RETURNS uuid
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN body ~ '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$'
                THEN lower(body)::uuid END
    FROM (SELECT CASE WHEN lower(left(t, 13)) = 'disc_session_' THEN substr(t, 14)
                      WHEN lower(left(t, 8)) = 'session-' THEN substr(t, 9)
                      ELSE t END AS body
          FROM (SELECT btrim(raw, E' \t\n\r\f' || chr(11)) AS t) AS trimmed) AS stripped
$$;
