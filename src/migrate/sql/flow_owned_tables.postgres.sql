CREATE TABLE IF NOT EXISTS flowkey_remembered_flows (
    session_id         uuid PRIMARY KEY,
    flow_id            uuid NOT NULL UNIQUE,
    client_account_id  uuid NOT NULL,
    engagement_id      uuid NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS flowkey_backfill_progress (
    table_name   varchar(64) PRIMARY KEY,
    last_key     text,
    rows_done    bigint NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE TABLE IF NOT EXISTS flowkey_fingerprints (
    table_name  varchar(64) PRIMARY KEY,
    row_count   bigint NOT NULL,
    hash        varchar(16) NOT NULL,
    taken_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS flowkey_mapping_findings (
    session_id  uuid NOT NULL,
    flow_id     uuid NOT NULL,
    kind        varchar(16) NOT NULL,
    rule        varchar(32) NOT NULL,
    PRIMARY KEY (session_id, flow_id, kind)
);
CREATE TABLE IF NOT EXISTS flowkey_restored_sessions (
    session_id         uuid PRIMARY KEY,
    flow_id            uuid NOT NULL,
    client_account_id  uuid NOT NULL,
    engagement_id      uuid NOT NULL,
    created_by         uuid NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now()
);
DELETE FROM flowkey_backfill_progress;
