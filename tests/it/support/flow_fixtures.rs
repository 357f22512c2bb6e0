//! Hand-built legacy rows for the migration tests: one insert per row, every value bound, so
//! each test states exactly the oddity it covers. Works on any legacy database (a seeded one
//! too): everything takes a `Db`.

#![allow(dead_code)]

use chrono::{Duration, TimeZone, Utc};
use flowkey::db::types::{DbTime, DbUuid};
use flowkey::db::{Db, Engine};
use sqlx::Row;
use uuid::Uuid;

pub const PLACEHOLDER: &str = "11111111-1111-1111-1111-111111111111";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tenant {
    pub client: Uuid,
    pub engagement: Uuid,
}

pub struct Fx {
    pub db: Db,
    pub user: Uuid,
}

/// A fixed instant plus `minutes`, so tie-breaks on `created_at` are explicit.
pub fn at(minutes: i64) -> DbTime {
    DbTime(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap() + Duration::minutes(minutes))
}

fn id(uuid: Uuid) -> DbUuid {
    DbUuid(uuid)
}

fn opt(uuid: Option<Uuid>) -> Option<DbUuid> {
    uuid.map(DbUuid)
}

impl Fx {
    pub async fn new(db: Db) -> Fx {
        let user = Uuid::new_v4();
        let fx = Fx { db, user };
        fx.exec("INSERT INTO users (id, email) VALUES ($1, $2)", |q| {
            q.bind(id(user)).bind(format!("{user}@example.com"))
        })
        .await;
        fx
    }

    pub fn engine(&self) -> Engine {
        self.db.engine()
    }

    fn json(&self) -> &'static str {
        match self.engine() {
            Engine::Postgres => "::json",
            Engine::Sqlite => "",
        }
    }

    /// Runs one statement; `bind` adds the values. Compiled once per engine.
    async fn exec<F>(&self, sql: &str, bind: F)
    where
        F: for<'q> Fn(AnyQuery<'q>) -> AnyQuery<'q>,
    {
        match &self.db {
            Db::Sqlite(pool) => {
                let AnyQuery::Sqlite(q) = bind(AnyQuery::Sqlite(sqlx::query(sql))) else {
                    unreachable!()
                };
                q.execute(pool)
                    .await
                    .unwrap_or_else(|err| panic!("{sql}: {err}"));
            }
            Db::Postgres(pool) => {
                let AnyQuery::Postgres(q) = bind(AnyQuery::Postgres(sqlx::query(sql))) else {
                    unreachable!()
                };
                q.execute(pool)
                    .await
                    .unwrap_or_else(|err| panic!("{sql}: {err}"));
            }
        }
    }

    pub async fn tenant(&self) -> Tenant {
        self.tenant_with_client(Uuid::new_v4()).await
    }

    pub async fn tenant_with_client(&self, client: Uuid) -> Tenant {
        let engagement = Uuid::new_v4();
        self.exec(
            "INSERT INTO client_accounts (id, name) VALUES ($1, 'client') ON CONFLICT DO NOTHING",
            |q| q.bind(id(client)),
        )
        .await;
        self.exec(
            "INSERT INTO engagements (id, client_account_id, name) VALUES ($1, $2, 'engagement')",
            |q| q.bind(id(engagement)).bind(id(client)),
        )
        .await;
        Tenant { client, engagement }
    }

    /// The placeholder tenant some legacy flows were created under.
    pub async fn placeholder_tenant(&self) -> Tenant {
        self.tenant_with_client(Uuid::parse_str(PLACEHOLDER).unwrap())
            .await
    }

    pub async fn session(&self, tenant: Tenant, minutes: i64) -> Uuid {
        self.session_with_id(Uuid::new_v4(), tenant, minutes).await
    }

    pub async fn session_with_id(&self, session: Uuid, tenant: Tenant, minutes: i64) -> Uuid {
        let user = self.user;
        self.exec(
            "INSERT INTO data_import_sessions (id, client_account_id, engagement_id, session_name, created_by, created_at) \
             VALUES ($1, $2, $3, 'session', $4, $5)",
            |q| q.bind(id(session)).bind(id(tenant.client)).bind(id(tenant.engagement)).bind(id(user)).bind(at(minutes)),
        )
        .await;
        session
    }

    /// A flow of `tenant`; `flow_id` random unless given.
    pub async fn flow(
        &self,
        tenant: Tenant,
        flow_id: Option<Uuid>,
        import_session_id: Option<Uuid>,
        data_import_id: Option<Uuid>,
        minutes: i64,
    ) -> Uuid {
        let flow_id = flow_id.unwrap_or_else(Uuid::new_v4);
        self.exec(
            "INSERT INTO discovery_flows (id, flow_id, client_account_id, engagement_id, import_session_id, data_import_id, flow_name, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'flow', $7)",
            |q| {
                q.bind(id(Uuid::new_v4()))
                    .bind(id(flow_id))
                    .bind(id(tenant.client))
                    .bind(id(tenant.engagement))
                    .bind(opt(import_session_id))
                    .bind(opt(data_import_id))
                    .bind(at(minutes))
            },
        )
        .await;
        flow_id
    }

    /// A data import; its own tenant columns are given separately (they may be NULL or disagree).
    pub async fn import(&self, own_tenant: Option<Tenant>, session: Option<Uuid>) -> Uuid {
        let import = Uuid::new_v4();
        let user = self.user;
        let sql = format!(
            "INSERT INTO data_imports (id, client_account_id, engagement_id, session_id, import_name, import_type, source_filename, import_config, imported_by) \
             VALUES ($1, $2, $3, $4, 'import', 'cmdb', 'cmdb.csv', $5{}, $6)",
            self.json()
        );
        self.exec(&sql, |q| {
            q.bind(id(import))
                .bind(opt(own_tenant.map(|t| t.client)))
                .bind(opt(own_tenant.map(|t| t.engagement)))
                .bind(opt(session))
                .bind("{\"validation_session_id\": null, \"delimiter\": \",\"}")
                .bind(id(user))
        })
        .await;
        import
    }

    pub async fn raw(
        &self,
        import: Uuid,
        own_tenant: Option<Tenant>,
        session: Option<Uuid>,
    ) -> Uuid {
        let raw = Uuid::new_v4();
        let sql = format!(
            "INSERT INTO raw_import_records (id, data_import_id, client_account_id, engagement_id, session_id, row_number, raw_data) \
             VALUES ($1, $2, $3, $4, $5, 1, $6{})",
            self.json()
        );
        self.exec(&sql, |q| {
            q.bind(id(raw))
                .bind(id(import))
                .bind(opt(own_tenant.map(|t| t.client)))
                .bind(opt(own_tenant.map(|t| t.engagement)))
                .bind(opt(session))
                .bind("{\"asset name\": \"web-01\", \"cpu cores\": \"4\"}")
        })
        .await;
        raw
    }

    /// A raw record about 1.5 kB wide (incompressible text kept inline, not TOASTed), so that
    /// a few dozen of them fill many PostgreSQL pages: tests of the page-batched backfill need
    /// many batches from little data.
    pub async fn wide_raw(&self, import: Uuid, session: Option<Uuid>) -> Uuid {
        let raw = Uuid::new_v4();
        let filler: String = (0..40)
            .map(|_| Uuid::new_v4().simple().to_string())
            .collect();
        let sql = format!(
            "INSERT INTO raw_import_records (id, data_import_id, session_id, row_number, raw_data) \
             VALUES ($1, $2, $3, 1, $4{})",
            self.json()
        );
        self.exec(&sql, |q| {
            q.bind(id(raw))
                .bind(id(import))
                .bind(opt(session))
                .bind(format!("{{\"notes\": \"{filler}\"}}"))
        })
        .await;
        raw
    }

    pub async fn field_mapping(&self, import: Uuid) -> Uuid {
        let mapping = Uuid::new_v4();
        self.exec(
            "INSERT INTO import_field_mappings (id, data_import_id, source_field, target_field, confidence_score) \
             VALUES ($1, $2, 'Host', 'hostname', 0.1)",
            |q| q.bind(id(mapping)).bind(id(import)),
        )
        .await;
        mapping
    }

    pub async fn asset(&self, tenant: Tenant, session: Option<Uuid>) -> Uuid {
        let asset = Uuid::new_v4();
        self.exec(
            "INSERT INTO assets (id, client_account_id, engagement_id, session_id, name, asset_type, memory_gb) \
             VALUES ($1, $2, $3, $4, 'web-01', 'server', 0.30000000000000004)",
            |q| q.bind(id(asset)).bind(id(tenant.client)).bind(id(tenant.engagement)).bind(opt(session)),
        )
        .await;
        asset
    }

    pub async fn access_audit(&self, own_tenant: Option<Tenant>, session: Option<Uuid>) -> Uuid {
        let row = Uuid::new_v4();
        self.exec(
            "INSERT INTO access_audit_log (id, client_account_id, engagement_id, session_id, action_type, result) \
             VALUES ($1, $2, $3, $4, 'read', 'ok')",
            |q| {
                q.bind(id(row))
                    .bind(opt(own_tenant.map(|t| t.client)))
                    .bind(opt(own_tenant.map(|t| t.engagement)))
                    .bind(opt(session))
            },
        )
        .await;
        row
    }

    pub async fn llm(&self, own_tenant: Option<Tenant>, session_text: Option<&str>) -> Uuid {
        let row = Uuid::new_v4();
        let text = session_text.map(str::to_owned);
        self.exec(
            "INSERT INTO llm_usage_logs (id, client_account_id, engagement_id, session_id, model_name, total_cost) \
             VALUES ($1, $2, $3, $4, 'gpt', 0.000123)",
            |q| {
                q.bind(id(row))
                    .bind(opt(own_tenant.map(|t| t.client)))
                    .bind(opt(own_tenant.map(|t| t.engagement)))
                    .bind(text.clone())
            },
        )
        .await;
        row
    }

    pub async fn deletion_audit(&self, tenant: Tenant, flow: Uuid, session: Uuid) -> Uuid {
        let row = Uuid::new_v4();
        self.exec(
            "INSERT INTO flow_deletion_audit (id, flow_id, session_id, client_account_id, engagement_id, user_id, deleted_by) \
             VALUES ($1, $2, $3, $4, $5, 'u', 'u')",
            |q| q.bind(id(row)).bind(id(flow)).bind(id(session)).bind(id(tenant.client)).bind(id(tenant.engagement)),
        )
        .await;
        row
    }

    /// The `flow_id` of row `row` of `table`.
    pub async fn flow_of(&self, table: &str, row: Uuid) -> Option<Uuid> {
        let sql = format!("SELECT flow_id FROM {table} WHERE id = $1");
        flowkey::on_pool!(&self.db, pool => {
            sqlx::query(&sql).bind(id(row)).fetch_one(pool).await
                .unwrap_or_else(|err| panic!("{sql}: {err}"))
                .get::<Option<DbUuid>, _>(0).map(|u| u.0)
        })
    }

    /// The `session_id` of a row (text form, so it works for `llm_usage_logs` too).
    pub async fn session_of(&self, table: &str, row: Uuid) -> Option<String> {
        let column = match self.engine() {
            Engine::Postgres => "session_id::text",
            Engine::Sqlite => "session_id",
        };
        let sql = format!("SELECT {column} FROM {table} WHERE id = $1");
        flowkey::on_pool!(&self.db, pool => {
            sqlx::query(&sql).bind(id(row)).fetch_one(pool).await.unwrap().get::<Option<String>, _>(0)
        })
    }

    /// (flow, rule, created by migration) of a session's mapping.
    pub async fn mapping_of(&self, session: Uuid) -> Option<(Uuid, String, bool)> {
        let sql = "SELECT flow_id, rule, CASE WHEN flow_created_by_migration THEN 1 ELSE 0 END \
                   FROM session_flow_mapping WHERE session_id = $1";
        flowkey::on_pool!(&self.db, pool => {
            sqlx::query(sql).bind(id(session)).fetch_optional(pool).await.unwrap().map(|row| {
                (row.get::<DbUuid, _>(0).0, row.get::<String, _>(1), row.get::<i32, _>(2) == 1)
            })
        })
    }

    /// Findings of a kind for a session: the flows named.
    pub async fn findings(&self, session: Uuid, kind: &str) -> Vec<Uuid> {
        let sql = "SELECT flow_id FROM flowkey_mapping_findings WHERE session_id = $1 AND kind = $2 ORDER BY flow_id";
        flowkey::on_pool!(&self.db, pool => {
            sqlx::query(sql).bind(id(session)).bind(kind).fetch_all(pool).await.unwrap()
                .into_iter().map(|row| row.get::<DbUuid, _>(0).0).collect()
        })
    }

    /// Runs a statement with no binds.
    pub async fn sql(&self, sql: &str) {
        self.db
            .execute_plain(sql)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
    }

    pub async fn count(&self, sql: &str) -> i64 {
        flowkey::on_pool!(&self.db, pool => {
            sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await.unwrap_or_else(|err| panic!("{sql}: {err}"))
        })
    }

    /// Every (table, id, flow_id) of the six flow-keyed tables, sorted: the end state of a
    /// backfill, for comparing two runs.
    pub async fn all_links(&self) -> Vec<(String, String, Option<String>)> {
        let (id_text, flow_text) = match self.engine() {
            Engine::Postgres => ("id::text", "flow_id::text"),
            Engine::Sqlite => ("id", "flow_id"),
        };
        let mut all = Vec::new();
        for table in flowkey::migrate::flow::linked::LINKED_TABLES
            .iter()
            .map(|t| t.name)
        {
            let sql = format!("SELECT {id_text}, {flow_text} FROM {table} ORDER BY id");
            let rows: Vec<(String, Option<String>)> = flowkey::on_pool!(&self.db, pool => {
                sqlx::query(&sql).fetch_all(pool).await.unwrap().into_iter()
                    .map(|row| (row.get::<String, _>(0), row.get::<Option<String>, _>(1))).collect()
            });
            all.extend(
                rows.into_iter()
                    .map(|(id, flow)| (table.to_string(), id, flow)),
            );
        }
        all
    }
}

/// A query on either engine, for [`Fx::exec`]'s bind closures.
pub enum AnyQuery<'q> {
    Sqlite(sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>),
    Postgres(sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>),
}

impl<'q> AnyQuery<'q> {
    pub fn bind<T>(self, value: T) -> Self
    where
        T: 'q
            + sqlx::Encode<'q, sqlx::Sqlite>
            + sqlx::Type<sqlx::Sqlite>
            + sqlx::Encode<'q, sqlx::Postgres>
            + sqlx::Type<sqlx::Postgres>
            + Send,
    {
        match self {
            AnyQuery::Sqlite(q) => AnyQuery::Sqlite(q.bind(value)),
            AnyQuery::Postgres(q) => AnyQuery::Postgres(q.bind(value)),
        }
    }
}
