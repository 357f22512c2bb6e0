-- Refreshes this connection's schema cache: SQLite prepares DDL against the cache, and a
-- stale one (another connection changed the schema) turns IF [NOT] EXISTS into no-ops.
SELECT count(*) FROM sqlite_master;
CREATE TABLE session_flow_mapping (
    session_id                 TEXT PRIMARY KEY,
    flow_id                    TEXT NOT NULL,
    client_account_id          TEXT NOT NULL,
    engagement_id              TEXT NOT NULL,
    rule                       TEXT NOT NULL,
    flow_created_by_migration  INTEGER NOT NULL DEFAULT 0,
    created_at                 TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX ix_session_flow_mapping_flow_id ON session_flow_mapping (flow_id);
CREATE INDEX ix_session_flow_mapping_tenant ON session_flow_mapping (client_account_id, engagement_id);
