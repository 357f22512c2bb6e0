-- SQLite's procedure for altering a table: foreign keys off (applied by the runner before
-- the transaction, so that DROP TABLE fires no child's ON DELETE), the new table built under
-- another name and renamed into place (the other tables' REFERENCES keep naming
-- flow_deletion_audit), foreign_key_check before the commit.
PRAGMA foreign_keys = OFF;
CREATE TABLE flowkey_new_flow_deletion_audit (
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
INSERT INTO flowkey_new_flow_deletion_audit SELECT * FROM flow_deletion_audit;
DROP TABLE flow_deletion_audit;
ALTER TABLE flowkey_new_flow_deletion_audit RENAME TO flow_deletion_audit;
CREATE INDEX ix_flow_deletion_audit_flow_id ON flow_deletion_audit(flow_id);
