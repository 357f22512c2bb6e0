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
