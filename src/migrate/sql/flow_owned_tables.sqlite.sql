-- Refreshes this connection's schema cache: SQLite prepares DDL against the cache, and a
-- stale one (another connection changed the schema) turns IF [NOT] EXISTS into no-ops.
SELECT count(*) FROM sqlite_master;
CREATE TABLE IF NOT EXISTS flowkey_remembered_flows (
    session_id         TEXT PRIMARY KEY,
    flow_id            TEXT NOT NULL UNIQUE,
    client_account_id  TEXT NOT NULL,
    engagement_id      TEXT NOT NULL,
    created_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS flowkey_backfill_progress (
    table_name   TEXT PRIMARY KEY,
    last_key     TEXT,
    rows_done    INTEGER NOT NULL DEFAULT 0,
    started_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at  TEXT
);
CREATE TABLE IF NOT EXISTS flowkey_fingerprints (
    table_name  TEXT PRIMARY KEY,
    row_count   INTEGER NOT NULL,
    hash        TEXT NOT NULL,
    taken_at    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS flowkey_mapping_findings (
    session_id  TEXT NOT NULL,
    flow_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    rule        TEXT NOT NULL,
    PRIMARY KEY (session_id, flow_id, kind)
);
CREATE TABLE IF NOT EXISTS flowkey_restored_sessions (
    session_id         TEXT PRIMARY KEY,
    flow_id            TEXT NOT NULL,
    client_account_id  TEXT NOT NULL,
    engagement_id      TEXT NOT NULL,
    created_by         TEXT NOT NULL,
    created_at         TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
DELETE FROM flowkey_backfill_progress;
