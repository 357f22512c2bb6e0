//! The compatibility service's hot paths: `resolve` of a legacy session id with a warm cache
//! (the answer is remembered) and with a cold one (the cache is cleared before each call, so
//! every call asks the database), next to `resolve` of the flow's own id, cold (the baseline:
//! what a caller that already has the flow id pays). Seeded SQLite file, migrated to head.
//! (CSV parsing moved to `hot_paths`, which needs no database.)

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use flowkey::compat::{CompatConfig, CompatMetrics, SessionFlowCompatibilityService};
use flowkey::db::Db;
use flowkey::ids::{AnyId, ClientAccountId, EngagementId, TenantId};
use flowkey::migrate::{upgrade, ProgressDisplay, RunOptions};
use flowkey::seed::{seed, SeedConfig};

fn resolve(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let (db, session, flow, tenant) = runtime.block_on(async {
        let db = Db::connect(&url).await.expect("sqlite database");
        let config = SeedConfig {
            tenants: 4,
            imports_per_tenant: 25,
            rows_per_import: 10,
            progress: ProgressDisplay::Hidden,
            ..SeedConfig::default()
        };
        seed(&db, &config).await.expect("seeded database");
        let options = RunOptions {
            progress: ProgressDisplay::Hidden,
            ..RunOptions::default()
        };
        upgrade(&db, "head", &options).await.expect("upgrade head");
        let (session, flow, client, engagement): (String, String, String, String) =
            sqlx_pick(&db).await;
        let tenant = TenantId::new(
            ClientAccountId::parse(&client).expect("client account id"),
            EngagementId::parse(&engagement).expect("engagement id"),
        );
        (
            db,
            AnyId::parse(&session).expect("session id"),
            AnyId::parse(&flow).expect("flow id"),
            tenant,
        )
    });
    let registry = prometheus::Registry::new();
    let metrics = CompatMetrics::register(&registry).expect("metrics");
    let service = SessionFlowCompatibilityService::new(
        db,
        &CompatConfig::default(),
        metrics,
        flowkey::db::ServedKeys::default(),
    );

    let mut group = c.benchmark_group("resolve");
    group.measurement_time(Duration::from_secs(5));
    group.throughput(Throughput::Elements(1));
    group.bench_function("session_warm_cache", |b| {
        b.to_async(&runtime).iter(|| async {
            service
                .resolve(black_box(session), tenant)
                .await
                .expect("resolved")
        })
    });
    group.bench_function("session_cold_cache", |b| {
        b.to_async(&runtime).iter(|| async {
            service.clear_cache();
            service
                .resolve(black_box(session), tenant)
                .await
                .expect("resolved")
        })
    });
    group.bench_function("flow_id_cold_cache_baseline", |b| {
        b.to_async(&runtime).iter(|| async {
            service.clear_cache();
            service
                .resolve(black_box(flow), tenant)
                .await
                .expect("resolved")
        })
    });
    group.finish();
}

/// A mapped session whose flow belongs to the session's tenant.
async fn sqlx_pick(db: &Db) -> (String, String, String, String) {
    let Db::Sqlite(pool) = db else {
        panic!("the resolve bench runs on sqlite")
    };
    sqlx::query_as(
        "SELECT m.session_id, m.flow_id, m.client_account_id, m.engagement_id \
         FROM session_flow_mapping AS m JOIN discovery_flows AS f ON f.flow_id = m.flow_id \
         WHERE f.client_account_id = m.client_account_id AND f.engagement_id = m.engagement_id \
         ORDER BY m.session_id LIMIT 1",
    )
    .fetch_one(pool)
    .await
    .expect("a mapped session")
}

criterion_group!(benches, resolve);
criterion_main!(benches);
