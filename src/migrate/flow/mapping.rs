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
use crate::ids::FlowId;
use crate::migrate::{MigrateError, StepContext};

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

/// What `--sql` prints for the mapping step.
pub const COMPUTE_MAPPING_DESCRIBE: &str = "\
-- session_flow_mapping: for each data_import_sessions row, the first rule with candidates of
-- the same tenant wins (1: discovery_flows.import_session_id = session, 2: flow_id = session,
-- 3: flows naming one of the session's data_imports); ties: earliest created_at, then
-- smallest flow_id. Other candidates -> flowkey_mapping_findings (ambiguous / cross_tenant).
-- Sessions without candidates get a discovery_flows row (status 'migrated') whose flow_id is
-- remembered in flowkey_remembered_flows.
WITH candidates AS (...), same_tenant AS (...), ranked AS (...)
INSERT INTO session_flow_mapping (...) SELECT ... FROM ranked WHERE rn = 1;";

/// Computes the mapping, records the findings and creates flows for sessions without one.
/// Safe to run again after a crash: rows already mapped are kept.
pub async fn compute_mapping(db: &Db) -> Result<MappingSummary, MigrateError> {
    let insert_mapping = format!(
        "WITH {CANDIDATES_CTE}
        INSERT INTO session_flow_mapping
            (session_id, flow_id, client_account_id, engagement_id, rule, flow_created_by_migration)
        SELECT session_id, flow_id, s_client, s_engagement, rule,
               EXISTS (SELECT 1 FROM flowkey_remembered_flows r WHERE r.flow_id = ranked.flow_id)
        FROM ranked WHERE rn = 1
        ON CONFLICT (session_id) DO NOTHING"
    );
    let insert_findings = format!(
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
    );
    let mut tx = db.begin_write().await?;
    crate::on_tx!(&mut tx, conn => {
        sqlx::query("DELETE FROM flowkey_mapping_findings").execute(&mut **conn).await?;
        sqlx::query(&insert_mapping).execute(&mut **conn).await?;
        sqlx::query(&insert_findings).execute(&mut **conn).await?;
    });
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
/// batch one transaction that creates the flows, remembers them and maps them.
async fn create_flows_for_unmapped_sessions(db: &Db) -> Result<(i64, i64), MigrateError> {
    let engine = db.engine();
    let select_unmapped = format!(
        "SELECT {sid}, {rid} FROM data_import_sessions s
         LEFT JOIN flowkey_remembered_flows r ON r.session_id = s.id
         WHERE NOT EXISTS (SELECT 1 FROM session_flow_mapping m WHERE m.session_id = s.id)
         ORDER BY s.id LIMIT $1",
        sid = crate::migrate::flow::tables::text_of(engine, "s.id"),
        rid = crate::migrate::flow::tables::text_of(engine, "r.flow_id"),
    );
    let (cast, user) = match engine {
        Engine::Postgres => ("::uuid", "s.created_by::text"),
        Engine::Sqlite => ("", "s.created_by"),
    };
    // The created flow's row id is its flow id: one id to remember, and a re-upgrade
    // recreates an identical row.
    let insert_flow = format!(
        "INSERT INTO discovery_flows
            (id, flow_id, client_account_id, engagement_id, user_id, import_session_id,
             flow_name, flow_description, status, created_at)
         SELECT $2{cast}, $2{cast}, s.client_account_id, s.engagement_id, {user}, s.id,
                s.session_name, 'created by the flowkey migration for a session without a flow',
                'migrated', s.created_at
         FROM data_import_sessions s WHERE s.id = $1{cast}
         ON CONFLICT DO NOTHING"
    );
    let remember = format!(
        "INSERT INTO flowkey_remembered_flows (session_id, flow_id, client_account_id, engagement_id)
         SELECT s.id, $2{cast}, s.client_account_id, s.engagement_id
         FROM data_import_sessions s WHERE s.id = $1{cast}
         ON CONFLICT (session_id) DO NOTHING"
    );
    let map = format!(
        "INSERT INTO session_flow_mapping
            (session_id, flow_id, client_account_id, engagement_id, rule, flow_created_by_migration)
         SELECT s.id, $2{cast}, s.client_account_id, s.engagement_id, 'created', TRUE
         FROM data_import_sessions s WHERE s.id = $1{cast}
         ON CONFLICT (session_id) DO NOTHING"
    );
    let mut created = 0i64;
    let mut reused = 0i64;
    loop {
        let mut tx = db.begin_write().await?;
        let batch: Vec<(String, Option<String>)> = crate::on_tx!(&mut tx, conn => {
            sqlx::query(&select_unmapped)
                .bind(CREATE_BATCH)
                .fetch_all(&mut **conn)
                .await?
                .into_iter()
                .map(|row| Ok((row.try_get::<String, _>(0)?, row.try_get::<Option<String>, _>(1)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?
        });
        if batch.is_empty() {
            tx.rollback().await?;
            break;
        }
        for (session_id, remembered) in &batch {
            let flow_id = match remembered {
                Some(id) => {
                    reused += 1;
                    id.clone()
                }
                None => FlowId::new_v4().to_string(),
            };
            crate::on_tx!(&mut tx, conn => {
                for sql in [&insert_flow, &remember, &map] {
                    sqlx::query(sql).bind(session_id).bind(&flow_id).execute(&mut **conn).await?;
                }
            });
            created += 1;
        }
        tx.commit().await?;
    }
    Ok((created, reused))
}
