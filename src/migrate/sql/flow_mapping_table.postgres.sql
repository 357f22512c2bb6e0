CREATE TABLE session_flow_mapping (
    session_id                 uuid PRIMARY KEY,
    flow_id                    uuid NOT NULL,
    client_account_id          uuid NOT NULL,
    engagement_id              uuid NOT NULL,
    rule                       varchar(32) NOT NULL,
    flow_created_by_migration  boolean NOT NULL DEFAULT false,
    created_at                 timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ix_session_flow_mapping_flow_id ON session_flow_mapping (flow_id);
CREATE INDEX ix_session_flow_mapping_tenant ON session_flow_mapping (client_account_id, engagement_id);
