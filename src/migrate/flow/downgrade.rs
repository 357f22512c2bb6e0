//! What a downgrade must do beyond dropping what the upgrade added, so that nothing written
//! at `head` is lost and every row with a flow stays reachable by a legacy session id.
//!
//! Rows written at `head` by new code may carry a `flow_id` and no `session_id`. Before the
//! `flow_id` columns go, each such row gets the smallest session mapped to its flow (the same
//! choice the dual-write trigger makes). A flow no session maps to (one created at `head`)
//! gets a session of its own, in the flow's tenant, whose id **is** the flow id: legacy code
//! reaches the flow through it (rule 2 of the mapping, so a later upgrade maps it back to the
//! very same flow). Its `created_by` is the creator of the tenant's earliest session, or when
//! the tenant has none the dedicated user [`FLOWKEY_USER_ID`] (`flowkey-migration@flowkey.invalid`).
//! Every session created so is recorded in `flowkey_restored_sessions` and in the audit log.
//!
//! Which rows count as written at head without a session (legacy rows are never touched, so a
//! downgrade with nothing written at head gives the legacy bytes back) follows from each
//! linked table's rule ([`LinkedTable::restores_session_where`]): rows with a flow and a NULL
//! session of a table linked only through sessions (`assets`, `access_audit_log`,
//! `llm_usage_logs`); of a table linked by naming flows (`data_imports`), those no flow names.
//! Rows of tables linked through their import (`raw_import_records`, `import_field_mappings`)
//! reach their flow that way. `flow_deletion_audit` rows with a NULL session get the flow's
//! mapped session, or the session it was created for, or else the flow id itself (the column
//! has no foreign key; the flow is gone).
//!
//! [`LinkedTable::restores_session_where`]: crate::migrate::flow::linked::LinkedTable::restores_session_where
//!
//! Flows created by the migration are deleted on downgrade unless something outside the
//! migration's own bookkeeping **refers** to them: their row was changed (status no longer
//! `migrated`, or `updated_at`/`completed_at` set), a `flow_deletion_audit` row names them, or
//! a session carries their id. Rows linked to them through `flow_id` alone do not count:
//! after the downgrade those rows reach their data through the session the flow was created
//! for, which stays, and a re-upgrade recreates the flow under its remembered id.

use futures::future::BoxFuture;
use serde::Serialize;
use sqlx::Row;

use crate::db::{Db, Engine};
use crate::migrate::flow::error::FlowMigrationError;
use crate::migrate::flow::linked::{linked_since, linked_table, LinkedTable, DELETION_AUDIT_TABLE};
use crate::migrate::flow::tables::text_of;
use crate::migrate::{EngineSql, MigrateError, StepContext, StepSql};

/// The user that owns sessions a downgrade creates in a tenant without any session.
pub const FLOWKEY_USER_ID: &str = "f10e4e70-0000-4000-8000-00000000f10e";
pub const FLOWKEY_USER_EMAIL: &str = "flowkey-migration@flowkey.invalid";

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoredSession {
    pub session_id: String,
    pub flow_id: String,
    pub client_account_id: String,
    pub engagement_id: String,
    pub created_by: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreSummary {
    pub sessions_created: Vec<RestoredSession>,
    /// Rows that got a session, per table.
    pub rows_given_a_session: Vec<(String, u64)>,
    /// Flows no session could be created for: their rows survive, without a session.
    pub flows_left_without_session: Vec<UnrestorableFlow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnrestorableFlow {
    pub flow_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CreatedFlowCleanup {
    pub deleted: u64,
    /// Flows created by the migration that something refers to, kept.
    pub kept: Vec<String>,
}

pub fn restore_sessions_step<'a, 'b>(
    ctx: &'a mut StepContext<'b>,
) -> BoxFuture<'a, Result<(), MigrateError>> {
    Box::pin(async move {
        let summary = restore_sessions(ctx.db).await?;
        ctx.audit
            .record(
                "sessions_restored",
                serde_json::to_value(&summary).unwrap_or_default(),
            )
            .await
    })
}

pub fn delete_created_flows_step<'a, 'b>(
    ctx: &'a mut StepContext<'b>,
) -> BoxFuture<'a, Result<(), MigrateError>> {
    Box::pin(async move {
        let cleanup = delete_unreferenced_created_flows(ctx.db).await?;
        ctx.audit
            .record(
                "created_flows_removed",
                serde_json::to_value(&cleanup).unwrap_or_default(),
            )
            .await
    })
}

/// What the created-flow cleanup runs (`--sql`).
pub const DELETE_CREATED_FLOWS: StepSql = StepSql::Fixed(EngineSql {
    sqlite: DELETE_UNTOUCHED_CREATED_FLOWS,
    postgres: DELETE_UNTOUCHED_CREATED_FLOWS,
});

/// Flows the migration created that nothing outside its bookkeeping refers to (a macro so
/// that the DELETE below is one literal).
macro_rules! untouched_created_flow {
    () => {
        "d.flow_id IN (SELECT flow_id FROM flowkey_remembered_flows)
        AND d.status = 'migrated' AND d.updated_at IS NULL AND d.completed_at IS NULL
        AND NOT EXISTS (SELECT 1 FROM flow_deletion_audit a WHERE a.flow_id = d.flow_id)
        AND NOT EXISTS (SELECT 1 FROM data_import_sessions s WHERE s.id = d.flow_id)"
    };
}

pub(crate) const UNTOUCHED_CREATED_FLOW: &str = untouched_created_flow!();

const DELETE_UNTOUCHED_CREATED_FLOWS: &str = concat!(
    "DELETE FROM discovery_flows WHERE id IN (SELECT d.id FROM discovery_flows d WHERE ",
    untouched_created_flow!(),
    ");\n"
);

/// Sessions created by downgrades so far, oldest first.
pub async fn restored_sessions(db: &Db) -> Result<Vec<RestoredSession>, MigrateError> {
    let engine = db.engine();
    let sql = format!(
        "SELECT {}, {}, {}, {}, {} FROM flowkey_restored_sessions ORDER BY created_at, session_id",
        text_of(engine, "session_id"),
        text_of(engine, "flow_id"),
        text_of(engine, "client_account_id"),
        text_of(engine, "engagement_id"),
        text_of(engine, "created_by"),
    );
    Ok(crate::on_pool!(db, pool => {
        sqlx::query(&sql)
            .fetch_all(pool)
            .await?
            .into_iter()
            .map(|row| {
                Ok(RestoredSession {
                    session_id: row.try_get(0)?,
                    flow_id: row.try_get(1)?,
                    client_account_id: row.try_get(2)?,
                    engagement_id: row.try_get(3)?,
                    created_by: row.try_get(4)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?
    }))
}

/// Gives rows written at head a legacy session (see the module documentation).
pub async fn restore_sessions(db: &Db) -> Result<RestoreSummary, MigrateError> {
    let tables: Vec<&LinkedTable> = linked_since("flow_expand").collect();
    restore_sessions_of(db, &tables, DeletionAudit::Fill).await
}

/// Whether a restore also fills `flow_deletion_audit.session_id` (only the way down from
/// `flow_backfill` does: `flow_expand` made it nullable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionAudit {
    Fill,
    Leave,
}

/// Gives rows of `tables` written at head a legacy session (see the module documentation).
pub async fn restore_sessions_of(
    db: &Db,
    tables: &[&LinkedTable],
    deletion_audit: DeletionAudit,
) -> Result<RestoreSummary, MigrateError> {
    let engine = db.engine();
    let mut summary = RestoreSummary::default();
    let mut tx = db.begin_write().await?;

    let flows_needing = flows_without_mapped_session(&mut tx, engine, tables).await?;
    for (flow_id, client, engagement) in flows_needing {
        match create_session_for_flow(&mut tx, engine, &flow_id, &client, &engagement).await? {
            Ok(session) => summary.sessions_created.push(session),
            Err(reason) => summary
                .flows_left_without_session
                .push(UnrestorableFlow { flow_id, reason }),
        }
    }

    for (table, sql) in session_restoring_updates(engine, tables) {
        let updated = crate::on_tx!(&mut tx, conn => {
            sqlx::query(&sql).execute(&mut **conn).await?.rows_affected()
        });
        summary
            .rows_given_a_session
            .push((table.to_owned(), updated));
    }

    if deletion_audit == DeletionAudit::Fill {
        let filled = crate::on_tx!(&mut tx, conn => {
            sqlx::query(FILL_DELETION_AUDIT).execute(&mut **conn).await?.rows_affected()
        });
        summary
            .rows_given_a_session
            .push((DELETION_AUDIT_TABLE.to_owned(), filled));
    }
    tx.commit().await?;
    Ok(summary)
}

/// `flow_deletion_audit.session_id` is NOT NULL again in legacy: a row written at head
/// without one gets the flow's mapped session, or the session the flow was created for, or
/// else the flow id itself (the column has no foreign key; the flow is gone).
const FILL_DELETION_AUDIT: &str = "UPDATE flow_deletion_audit SET session_id = COALESCE(
            (SELECT m.session_id FROM session_flow_mapping m WHERE m.flow_id = flow_deletion_audit.flow_id
             ORDER BY m.session_id LIMIT 1),
            (SELECT r.session_id FROM flowkey_remembered_flows r WHERE r.flow_id = flow_deletion_audit.flow_id),
            flow_id)
         WHERE session_id IS NULL";

/// Per linked table whose rows written at head are given a session: the UPDATE that gives
/// each the smallest existing session mapped to its flow in its tenant.
fn session_restoring_updates(
    engine: Engine,
    tables: &[&LinkedTable],
) -> Vec<(&'static str, String)> {
    tables
        .iter()
        .filter_map(|table| {
            let written_at_head = table.restores_session_where()?;
            let t = table.name;
            let pick = format!(
                "SELECT {session} FROM session_flow_mapping m \
                 WHERE m.flow_id = {t}.flow_id{tenant} \
                   AND EXISTS (SELECT 1 FROM data_import_sessions s WHERE s.id = m.session_id) \
                 ORDER BY m.session_id LIMIT 1",
                session = table.mapped_session_as_stored(engine),
                tenant = table.and_tenant_agrees(t, "m"),
            );
            Some((
                t,
                format!(
                    "UPDATE {t} SET session_id = ({pick}) \
                     WHERE session_id IS NULL AND flow_id IS NOT NULL AND {written_at_head} AND EXISTS ({pick})"
                ),
            ))
        })
        .collect()
}

/// What the restore step runs (`--sql`).
pub const RESTORE_SESSIONS: StepSql = StepSql::Generated(restore_sessions_sql);

fn restore_sessions_sql(engine: Engine) -> String {
    let mut out = String::from(
        "-- first, each flow carried by such rows that no existing session maps to gets a\n\
         -- data_import_sessions row whose id is the flow id, in the flow's tenant, mapped to the\n\
         -- flow and recorded in flowkey_restored_sessions (created_by: the tenant's earliest\n\
         -- session's creator, else the user flowkey-migration@flowkey.invalid); then:\n",
    );
    let tables: Vec<&LinkedTable> = linked_since("flow_expand").collect();
    for (_, sql) in session_restoring_updates(engine, &tables) {
        out.push_str(&sql);
        out.push_str(";\n");
    }
    out.push_str(FILL_DELETION_AUDIT);
    out.push_str(";\n");
    out
}

/// The name of a session a downgrade creates, before its flow id.
const RESTORED_SESSION_NAME: &str = "restored by flowkey for flow ";
const RESTORED_SESSION_DESCRIPTION: &str =
    "created by a flowkey downgrade so that rows written at head stay reachable by a session id";

/// The restore step of `flow_backfill` as SQL that runs as is (see [`restore_offline_sql`]).
pub const RESTORE_SESSIONS_OFFLINE: StepSql = StepSql::Generated(restore_sessions_offline_sql);

fn restore_sessions_offline_sql(engine: Engine) -> String {
    let tables: Vec<&LinkedTable> = linked_since("flow_expand").collect();
    restore_offline_sql(engine, &tables, DeletionAudit::Fill)
}

/// [`restore_table_sessions_step`] as SQL that runs as is.
pub fn restore_table_sessions_offline_sql(engine: Engine, table: &'static str) -> String {
    let tables: Vec<&LinkedTable> = linked_table(table).into_iter().collect();
    let sql = restore_offline_sql(engine, &tables, DeletionAudit::Leave);
    if engine == Engine::Postgres && sql.is_empty() {
        // A table without a session column has none to give back. Said as a statement, so
        // that the runnable script goes on where an empty step would stop it.
        return format!("-- {table} keeps no session: nothing to give back\nSELECT 1;\n");
    }
    sql
}

/// The restore as SQL that runs as is (the runnable `--sql` script), PostgreSQL only (empty
/// on SQLite, which has no data-modifying `WITH`): the sessions the runner creates flow by
/// flow, created set-based. They end the same: the runner's checks per flow (the tenant
/// exists, no session has the flow's id) are the `flows` filter; the creator it reads per
/// flow is the tenant's earliest session's, which a session created for an earlier flow of
/// the same tenant does not change (it carries that very creator), or else the flowkey user.
fn restore_offline_sql(
    engine: Engine,
    tables: &[&LinkedTable],
    deletion_audit: DeletionAudit,
) -> String {
    if engine != Engine::Postgres {
        return String::new();
    }
    let mut out = String::new();
    let needing = flows_of_rows_written_at_head(tables);
    if !needing.is_empty() {
        let flows = format!(
            "WITH needing AS ({}),
flows AS (
    SELECT f.flow_id, f.client_account_id, f.engagement_id, f.created_at
    FROM discovery_flows f JOIN needing n ON n.flow_id = f.flow_id
    WHERE NOT EXISTS (
        SELECT 1 FROM session_flow_mapping m JOIN data_import_sessions s ON s.id = m.session_id
        WHERE m.flow_id = f.flow_id AND m.client_account_id = f.client_account_id
          AND m.engagement_id = f.engagement_id)
      AND EXISTS (SELECT 1 FROM engagements e
                  WHERE e.id = f.engagement_id AND e.client_account_id = f.client_account_id)
      AND NOT EXISTS (SELECT 1 FROM data_import_sessions c WHERE c.id = f.flow_id))",
            needing.join(" UNION ")
        );
        let tenant_session = "SELECT s.created_by FROM data_import_sessions s \
             WHERE s.client_account_id = f.client_account_id AND s.engagement_id = f.engagement_id \
             ORDER BY s.created_at, s.id LIMIT 1";
        out.push_str(&format!(
            "{flows}
INSERT INTO users (id, email)
SELECT '{FLOWKEY_USER_ID}'::uuid, '{FLOWKEY_USER_EMAIL}'
WHERE EXISTS (SELECT 1 FROM flows f WHERE NOT EXISTS ({tenant_session}))
  AND NOT EXISTS (SELECT 1 FROM users WHERE email = '{FLOWKEY_USER_EMAIL}');
{flows},
created AS (
    INSERT INTO data_import_sessions
        (id, client_account_id, engagement_id, session_name, description, created_by, created_at)
    SELECT f.flow_id, f.client_account_id, f.engagement_id, '{RESTORED_SESSION_NAME}' || f.flow_id::text,
           '{RESTORED_SESSION_DESCRIPTION}',
           coalesce(({tenant_session}),
                    (SELECT u.id FROM users u WHERE u.email = '{FLOWKEY_USER_EMAIL}' LIMIT 1)),
           f.created_at
    FROM flows f
    RETURNING id, client_account_id, engagement_id, created_by),
mapped AS (
    INSERT INTO session_flow_mapping
        (session_id, flow_id, client_account_id, engagement_id, rule, flow_created_by_migration)
    SELECT id, id, client_account_id, engagement_id, 'flow_id', FALSE FROM created
    ON CONFLICT (session_id) DO NOTHING)
INSERT INTO flowkey_restored_sessions
    (session_id, flow_id, client_account_id, engagement_id, created_by)
SELECT id, id, client_account_id, engagement_id, created_by FROM created
ON CONFLICT (session_id) DO NOTHING;
"
        ));
    }
    for (_, sql) in session_restoring_updates(engine, tables) {
        out.push_str(&sql);
        out.push_str(";\n");
    }
    if deletion_audit == DeletionAudit::Fill {
        out.push_str(FILL_DELETION_AUDIT);
        out.push_str(";\n");
    }
    out
}

/// The restore of one linked table added by a later revision (its down step).
pub fn restore_table_sessions_step<'a, 'b>(
    ctx: &'a mut StepContext<'b>,
) -> BoxFuture<'a, Result<(), MigrateError>> {
    Box::pin(async move {
        let table = crate::migrate::flow::backfill::step_table(ctx)?;
        let summary = restore_sessions_of(ctx.db, &[table], DeletionAudit::Leave).await?;
        ctx.audit
            .record(
                "sessions_restored",
                serde_json::to_value(&summary).unwrap_or_default(),
            )
            .await
    })
}

/// What [`restore_table_sessions_step`] runs (`--sql`).
pub fn restore_table_sessions_sql(engine: Engine, table: &'static str) -> String {
    let tables: Vec<&LinkedTable> = linked_table(table).into_iter().collect();
    session_restoring_updates(engine, &tables)
        .into_iter()
        .map(|(_, sql)| format!("{sql};\n"))
        .collect()
}

/// One `SELECT flow_id` per table whose rows written at head without a session need one back
/// (the runner's restore and the offline script's both start from these).
fn flows_of_rows_written_at_head(tables: &[&LinkedTable]) -> Vec<String> {
    tables
        .iter()
        .filter_map(|table| {
            let written_at_head = table.restores_session_where()?;
            let t = table.name;
            Some(format!(
                "SELECT flow_id FROM {t} WHERE session_id IS NULL AND flow_id IS NOT NULL AND {written_at_head}"
            ))
        })
        .collect()
}

/// Flows carried by rows written at head without a session, that no existing session maps to.
async fn flows_without_mapped_session(
    tx: &mut crate::db::Tx<'_>,
    engine: Engine,
    tables: &[&LinkedTable],
) -> Result<Vec<(String, String, String)>, MigrateError> {
    let needing = flows_of_rows_written_at_head(tables);
    if needing.is_empty() {
        // Rows of these tables reach their flow through their import: none needs a session.
        return Ok(Vec::new());
    }
    let sql = format!(
        "WITH needing AS ({})
        SELECT {flow}, {client}, {engagement} FROM discovery_flows f JOIN needing n ON n.flow_id = f.flow_id
        WHERE NOT EXISTS (
            SELECT 1 FROM session_flow_mapping m JOIN data_import_sessions s ON s.id = m.session_id
            WHERE m.flow_id = f.flow_id AND m.client_account_id = f.client_account_id
              AND m.engagement_id = f.engagement_id)
        ORDER BY f.flow_id",
        needing.join(" UNION "),
        flow = text_of(engine, "f.flow_id"),
        client = text_of(engine, "f.client_account_id"),
        engagement = text_of(engine, "f.engagement_id"),
    );
    Ok(crate::on_tx!(tx, conn => {
        sqlx::query(&sql)
            .fetch_all(&mut **conn)
            .await?
            .into_iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect::<Result<Vec<_>, sqlx::Error>>()?
    }))
}

/// Creates the session whose id is `flow_id` in the flow's tenant, maps it and records it.
/// `Err(reason)` when no session can be created: the tenant has no `client_accounts` /
/// `engagements` row, or a session with the flow's id exists and maps elsewhere.
async fn create_session_for_flow(
    tx: &mut crate::db::Tx<'_>,
    engine: Engine,
    flow_id: &str,
    client: &str,
    engagement: &str,
) -> Result<Result<RestoredSession, String>, MigrateError> {
    let cast = if engine == Engine::Postgres {
        "::uuid"
    } else {
        ""
    };
    let created_by_text = text_of(engine, "created_by");
    let id_text = text_of(engine, "id");
    let tenant_exists = format!(
        "SELECT count(*) FROM engagements e WHERE e.id = $2{cast} AND e.client_account_id = $1{cast}"
    );
    let existing_session = format!(
        "SELECT {created_by_text} FROM data_import_sessions WHERE client_account_id = $1{cast} \
         AND engagement_id = $2{cast} ORDER BY created_at, id LIMIT 1"
    );
    let session_clash = format!("SELECT count(*) FROM data_import_sessions WHERE id = $1{cast}");
    let user_by_email = format!("SELECT {id_text} FROM users WHERE email = $1");
    let insert_user = format!("INSERT INTO users (id, email) VALUES ($1{cast}, $2)");
    let insert_session = format!(
        "INSERT INTO data_import_sessions
            (id, client_account_id, engagement_id, session_name, description, created_by, created_at)
         SELECT f.flow_id, f.client_account_id, f.engagement_id, $2, $3, $4{cast}, f.created_at
         FROM discovery_flows f WHERE f.flow_id = $1{cast}"
    );
    let map = format!(
        "INSERT INTO session_flow_mapping
            (session_id, flow_id, client_account_id, engagement_id, rule, flow_created_by_migration)
         VALUES ($1{cast}, $1{cast}, $2{cast}, $3{cast}, 'flow_id', FALSE)
         ON CONFLICT (session_id) DO NOTHING"
    );
    let record = format!(
        "INSERT INTO flowkey_restored_sessions
            (session_id, flow_id, client_account_id, engagement_id, created_by)
         VALUES ($1{cast}, $1{cast}, $2{cast}, $3{cast}, $4{cast})
         ON CONFLICT (session_id) DO NOTHING"
    );
    let session = crate::on_tx!(tx, conn => {
        let tenant_rows: i64 = sqlx::query_scalar(&tenant_exists)
            .bind(client).bind(engagement).fetch_one(&mut **conn).await?;
        if tenant_rows == 0 {
            return Ok(Err("the flow's tenant has no client_accounts/engagements row".to_owned()));
        }
        let clash: i64 = sqlx::query_scalar(&session_clash).bind(flow_id).fetch_one(&mut **conn).await?;
        if clash > 0 {
            return Ok(Err(FlowMigrationError::RestoredSessionClash { flow_id: flow_id.to_owned() }.to_string()));
        }
        let creator: Option<String> = sqlx::query_scalar(&existing_session)
            .bind(client).bind(engagement).fetch_optional(&mut **conn).await?;
        let created_by = match creator {
            Some(user) => user,
            None => {
                let found: Option<String> = sqlx::query_scalar(&user_by_email)
                    .bind(FLOWKEY_USER_EMAIL).fetch_optional(&mut **conn).await?;
                match found {
                    Some(user) => user,
                    None => {
                        sqlx::query(&insert_user).bind(FLOWKEY_USER_ID).bind(FLOWKEY_USER_EMAIL)
                            .execute(&mut **conn).await?;
                        FLOWKEY_USER_ID.to_owned()
                    }
                }
            }
        };
        sqlx::query(&insert_session)
            .bind(flow_id)
            .bind(format!("{RESTORED_SESSION_NAME}{flow_id}"))
            .bind(RESTORED_SESSION_DESCRIPTION)
            .bind(&created_by)
            .execute(&mut **conn).await?;
        sqlx::query(&map).bind(flow_id).bind(client).bind(engagement).execute(&mut **conn).await?;
        sqlx::query(&record).bind(flow_id).bind(client).bind(engagement).bind(&created_by)
            .execute(&mut **conn).await?;
        RestoredSession {
            session_id: flow_id.to_owned(),
            flow_id: flow_id.to_owned(),
            client_account_id: client.to_owned(),
            engagement_id: engagement.to_owned(),
            created_by,
        }
    });
    Ok(Ok(session))
}

/// Deletes the flows the migration created that nothing refers to (see the module docs).
pub async fn delete_unreferenced_created_flows(
    db: &Db,
) -> Result<CreatedFlowCleanup, MigrateError> {
    let engine = db.engine();
    let untouched = UNTOUCHED_CREATED_FLOW;
    let kept_sql = format!(
        "SELECT {flow} FROM discovery_flows d
         WHERE d.flow_id IN (SELECT flow_id FROM flowkey_remembered_flows) AND NOT ({untouched})
         ORDER BY d.flow_id",
        flow = text_of(engine, "d.flow_id")
    );
    let delete_sql = DELETE_UNTOUCHED_CREATED_FLOWS;
    let mut tx = db.begin_write().await?;
    let cleanup = crate::on_tx!(&mut tx, conn => {
        let kept: Vec<String> = sqlx::query_scalar(&kept_sql).fetch_all(&mut **conn).await?;
        let deleted = sqlx::query(delete_sql).execute(&mut **conn).await?.rows_affected();
        CreatedFlowCleanup { deleted, kept }
    });
    tx.commit().await?;
    Ok(cleanup)
}
