//! How a legacy session finds its flow (issue 3, "How a session finds its flow"), computed
//! set-based in SQL and stored in `session_flow_mapping`.
//!
//! For each session S of tenant T the first rule with candidates in T wins: (1) flows whose
//! `import_session_id` = S, (2) the flow whose `flow_id` = S, (3) flows whose
//! `import_session_id` or `data_import_id` names a `data_imports` row of S. Among several
//! candidates the earliest `created_at` wins, then the smallest `flow_id`; the others are
//! recorded as `ambiguous` findings. Candidates of another tenant (the placeholder tenant
//! included) are never used and are recorded as `cross_tenant` findings. A session with no
//! candidate gets a new flow (status `migrated`) whose id is remembered forever in
//! `flowkey_remembered_flows`, so a later upgrade recreates the very same id.

use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::Row;

use crate::db::{Db, Engine};
use crate::migrate::{MigrateError, StepContext, StepSql};

/// Sessions given a new flow per transaction.
const CREATE_BATCH: i64 = 500;

/// Counts recorded in the audit log after the mapping is computed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MappingSummary {
    pub sessions_mapped: i64,
    pub ambiguous_sessions: i64,
    pub cross_tenant_conflicts: i64,
    pub flows_created: i64,
    /// Of the flows created, how many reused an id remembered from an earlier upgrade.
    pub flows_reused_remembered_id: i64,
}

/// Every (session, flow) pair any rule finds, with both tenants. Rule 3 is split in two
/// joins so each uses an index.
const CANDIDATES_CTE: &str = "\
candidates AS (
    SELECT s.id AS session_id, f.flow_id AS flow_id, f.created_at AS flow_created_at,
           1 AS rule_rank, 'import_session_id' AS rule,
           s.client_account_id AS s_client, s.engagement_id AS s_engagement,
           f.client_account_id AS f_client, f.engagement_id AS f_engagement
    FROM data_import_sessions s JOIN discovery_flows f ON f.import_session_id = s.id
    UNION ALL
    SELECT s.id, f.flow_id, f.created_at, 2, 'flow_id',
           s.client_account_id, s.engagement_id, f.client_account_id, f.engagement_id
    FROM data_import_sessions s JOIN discovery_flows f ON f.flow_id = s.id
    UNION ALL
    SELECT s.id, f.flow_id, f.created_at, 3, 'data_import',
           s.client_account_id, s.engagement_id, f.client_account_id, f.engagement_id
    FROM data_import_sessions s JOIN data_imports d ON d.session_id = s.id
         JOIN discovery_flows f ON f.import_session_id = d.id
    UNION ALL
    SELECT s.id, f.flow_id, f.created_at, 3, 'data_import',
           s.client_account_id, s.engagement_id, f.client_account_id, f.engagement_id
    FROM data_import_sessions s JOIN data_imports d ON d.session_id = s.id
         JOIN discovery_flows f ON f.data_import_id = d.id
),
same_tenant AS (
    SELECT DISTINCT session_id, flow_id, flow_created_at, rule_rank, rule, s_client, s_engagement
    FROM candidates WHERE f_client = s_client AND f_engagement = s_engagement
),
ranked AS (
    SELECT session_id, flow_id, rule_rank, rule, s_client, s_engagement,
           ROW_NUMBER() OVER (PARTITION BY session_id ORDER BY rule_rank, flow_created_at, flow_id) AS rn,
           MIN(rule_rank) OVER (PARTITION BY session_id) AS best_rank
    FROM same_tenant
)";

/// The `Action::Code` body of `flow_mapping`'s "compute session flow mapping" step.
pub fn compute_mapping_step<'a, 'b>(
    ctx: &'a mut StepContext<'b>,
) -> BoxFuture<'a, Result<(), MigrateError>> {
    Box::pin(async move {
        let summary = compute_mapping(ctx.db).await?;
        ctx.audit
            .record(
                "mapping",
                serde_json::to_value(&summary).unwrap_or_default(),
            )
            .await
    })
}

/// What the mapping step runs (`--sql`; the revision's checksum covers it).
pub const COMPUTE_MAPPING: StepSql = StepSql::Generated(compute_mapping_sql);

pub(crate) fn compute_mapping_sql(engine: Engine) -> String {
    let mut out = String::new();
    for statement in rule_statements() {
        out.push_str(&statement);
        out.push_str(";\n");
    }
    out.push_str(
        "-- then, in transactions of at most 500 sessions until none is left without a mapping\n\
         -- ($1 = 500):\n",
    );
    for statement in created_flow_statements(engine) {
        out.push_str(&statement);
        out.push_str(";\n");
    }
    out
}

/// The mapping step as SQL that runs as is (the runnable `--sql` script): the rules, then
/// the stand-in flows for every session still without one in one pass instead of batches
/// of 500 (each batch takes the next sessions in id order until none is left, so one pass
/// over all of them ends the same).
pub const COMPUTE_MAPPING_OFFLINE: StepSql = StepSql::Generated(compute_mapping_offline_sql);

pub(crate) fn compute_mapping_offline_sql(engine: Engine) -> String {
    let mut out = String::new();
    for statement in rule_statements()
        .into_iter()
        .chain(created_flow_statements(engine))
    {
        out.push_str(&statement.replace(" LIMIT $1", ""));
        out.push_str(";\n");
    }
    out
}

/// The mapping by the rules and its findings, in one transaction.
fn rule_statements() -> [String; 3] {
    [
        "DELETE FROM flowkey_mapping_findings".to_owned(),
        format!(
            "WITH {CANDIDATES_CTE}
        INSERT INTO session_flow_mapping
            (session_id, flow_id, client_account_id, engagement_id, rule, flow_created_by_migration)
        SELECT session_id, flow_id, s_client, s_engagement, rule,
               EXISTS (SELECT 1 FROM flowkey_remembered_flows r WHERE r.flow_id = ranked.flow_id)
        FROM ranked WHERE rn = 1
        ON CONFLICT (session_id) DO NOTHING"
        ),
        format!(
            "WITH {CANDIDATES_CTE}
        INSERT INTO flowkey_mapping_findings (session_id, flow_id, kind, rule)
        SELECT session_id, flow_id, 'ambiguous', rule FROM ranked
        WHERE rn > 1 AND rule_rank = best_rank
        UNION ALL
        SELECT session_id, flow_id, 'cross_tenant',
               CASE MIN(rule_rank) WHEN 1 THEN 'import_session_id' WHEN 2 THEN 'flow_id' ELSE 'data_import' END
        FROM candidates
        WHERE NOT (f_client = s_client AND f_engagement = s_engagement)
        GROUP BY session_id, flow_id"
        ),
    ]
}

/// A new UUID v4, lowercase and hyphenated, generated by the database.
fn new_uuid_sql(engine: Engine) -> &'static str {
    match engine {
        Engine::Postgres => "gen_random_uuid()",
        Engine::Sqlite => {
            "lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2) \
             || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2) \
             || '-' || hex(randomblob(6)))"
        }
    }
}

/// One batch of sessions without a flow (`$1` = batch size): each gets an id remembered in
/// `flowkey_remembered_flows` (reused when an earlier upgrade remembered one, so a
/// re-upgrade recreates the very same flow), a flow of its own tenant under that id (the
/// flow's row id is its flow id: one id to remember), and its mapping.
fn created_flow_statements(engine: Engine) -> [String; 3] {
    let unmapped = "NOT EXISTS (SELECT 1 FROM session_flow_mapping m WHERE m.session_id = s.id)";
    let user = match engine {
        Engine::Postgres => "s.created_by::text",
        Engine::Sqlite => "s.created_by",
    };
    [
        format!(
            "INSERT INTO flowkey_remembered_flows (session_id, flow_id, client_account_id, engagement_id)
         SELECT s.id, {new_id}, s.client_account_id, s.engagement_id
         FROM data_import_sessions s
         WHERE {unmapped}
           AND NOT EXISTS (SELECT 1 FROM flowkey_remembered_flows r WHERE r.session_id = s.id)
         ORDER BY s.id LIMIT $1",
            new_id = new_uuid_sql(engine)
        ),
        format!(
            "INSERT INTO discovery_flows
            (id, flow_id, client_account_id, engagement_id, user_id, import_session_id,
             flow_name, flow_description, status, created_at)
         SELECT r.flow_id, r.flow_id, s.client_account_id, s.engagement_id, {user}, s.id,
                s.session_name, 'created by the flowkey migration for a session without a flow',
                'migrated', s.created_at
         FROM data_import_sessions s JOIN flowkey_remembered_flows r ON r.session_id = s.id
         WHERE {unmapped}
           AND NOT EXISTS (SELECT 1 FROM discovery_flows f WHERE f.flow_id = r.flow_id)
         ORDER BY s.id LIMIT $1
         ON CONFLICT DO NOTHING"
        ),
        format!(
            "INSERT INTO session_flow_mapping
            (session_id, flow_id, client_account_id, engagement_id, rule, flow_created_by_migration)
         SELECT s.id, r.flow_id, s.client_account_id, s.engagement_id, 'created', TRUE
         FROM data_import_sessions s JOIN flowkey_remembered_flows r ON r.session_id = s.id
         WHERE {unmapped}
           AND EXISTS (SELECT 1 FROM discovery_flows f WHERE f.flow_id = r.flow_id)
         ORDER BY s.id LIMIT $1
         ON CONFLICT (session_id) DO NOTHING"
        ),
    ]
}

/// Computes the mapping, records the findings and creates flows for sessions without one.
/// Safe to run again after a crash: rows already mapped are kept.
pub async fn compute_mapping(db: &Db) -> Result<MappingSummary, MigrateError> {
    let mut tx = db.begin_write().await?;
    for statement in rule_statements() {
        crate::on_tx!(&mut tx, conn => {
            sqlx::query(&statement).execute(&mut **conn).await?;
        });
    }
    tx.commit().await?;

    let (flows_created, flows_reused_remembered_id) =
        create_flows_for_unmapped_sessions(db).await?;
    let counts = crate::on_pool!(db, pool => {
        let row = sqlx::query(
            "SELECT (SELECT count(*) FROM session_flow_mapping),
                    (SELECT count(DISTINCT session_id) FROM flowkey_mapping_findings WHERE kind = 'ambiguous'),
                    (SELECT count(*) FROM flowkey_mapping_findings WHERE kind = 'cross_tenant')",
        )
        .fetch_one(pool)
        .await?;
        (row.try_get::<i64, _>(0)?, row.try_get::<i64, _>(1)?, row.try_get::<i64, _>(2)?)
    });
    Ok(MappingSummary {
        sessions_mapped: counts.0,
        ambiguous_sessions: counts.1,
        cross_tenant_conflicts: counts.2,
        flows_created,
        flows_reused_remembered_id,
    })
}

/// Gives every session still without a mapping a flow of its own tenant, in batches, each
/// batch one transaction of [`created_flow_statements`].
async fn create_flows_for_unmapped_sessions(db: &Db) -> Result<(i64, i64), MigrateError> {
    let statements = created_flow_statements(db.engine());
    let reused: i64 = crate::on_pool!(db, pool => {
        sqlx::query_scalar(
            "SELECT count(*) FROM data_import_sessions s \
             JOIN flowkey_remembered_flows r ON r.session_id = s.id \
             WHERE NOT EXISTS (SELECT 1 FROM session_flow_mapping m WHERE m.session_id = s.id)",
        )
        .fetch_one(pool)
        .await?
    });
    let mut created = 0i64;
    loop {
        let mut tx = db.begin_write().await?;
        let mut touched = 0u64;
        let mut mapped = 0u64;
        for (index, statement) in statements.iter().enumerate() {
            let rows = crate::on_tx!(&mut tx, conn => {
                sqlx::query(statement).bind(CREATE_BATCH).execute(&mut **conn).await?.rows_affected()
            });
            touched += rows;
            if index == statements.len() - 1 {
                mapped = rows;
            }
        }
        tx.commit().await?;
        created += i64::try_from(mapped).unwrap_or(i64::MAX);
        if touched == 0 {
            break;
        }
    }
    Ok((created, reused.min(created)))
}
