//! Fingerprinting throughput (rows/s) on a seeded SQLite file, against two scans of the same
//! table measured in the same run: `SELECT count(*)` as SQLite plans it (an index count) and
//! the same count over the table itself (`NOT INDEXED`, every page read); and against the
//! cost of the hashing alone (SHA-256 over row texts of the same size, in memory). The issue
//! 13 target is the fingerprint within 3x a count-style scan. `flowkey bench fingerprint`
//! gives the same comparison per legacy table on any database, PostgreSQL included. CSV
//! parsing of a CMDB export (rows/s) with the csv crate, the reader every upload goes through.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flowkey::db::Db;
use flowkey::migrate::flow::fingerprint::{
    fingerprint_table_as, FingerprintFormat, FingerprintScope,
};
use flowkey::migrate::ProgressDisplay;
use flowkey::seed::{seed, SeedConfig, CMDB_COLUMNS};
use sha2::{Digest, Sha256};

const RAW_RECORDS: u32 = 20_000;

fn fingerprinting(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let db = runtime.block_on(async {
        let db = Db::connect(&url).await.expect("sqlite database");
        let config = SeedConfig {
            tenants: 2,
            imports_per_tenant: 10,
            rows_per_import: RAW_RECORDS / 20,
            progress: ProgressDisplay::Hidden,
            ..SeedConfig::default()
        };
        seed(&db, &config).await.expect("seeded database");
        db
    });
    // The format a new fingerprint gets: what `upgrade head` computes.
    let format = runtime
        .block_on(FingerprintFormat::for_new(&db))
        .expect("fingerprint format");
    let rows = runtime
        .block_on(fingerprint_table_as(
            &db,
            "raw_import_records",
            FingerprintScope::AllRows,
            format,
        ))
        .expect("fingerprint")
        .rows;

    let mut group = c.benchmark_group("fingerprint");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.throughput(Throughput::Elements(rows as u64));
    group.bench_function(BenchmarkId::new("sqlite_raw_import_records", rows), |b| {
        b.to_async(&runtime).iter(|| async {
            fingerprint_table_as(&db, "raw_import_records", FingerprintScope::AllRows, format)
                .await
                .expect("fingerprint")
        })
    });
    for (name, sql) in [
        (
            "sqlite_count_star",
            "SELECT count(*) FROM raw_import_records",
        ),
        (
            "sqlite_count_table_scan",
            "SELECT count(*) FROM raw_import_records NOT INDEXED",
        ),
    ] {
        group.bench_function(BenchmarkId::new(name, rows), |b| {
            b.to_async(&runtime).iter(|| async {
                flowkey::on_pool!(&db, pool => sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(pool)
                    .await
                    .expect("count"))
            })
        });
    }
    // Baseline: only the hashing, over texts as long as a typical canonical raw record row.
    let texts: Vec<String> = (0..rows)
        .map(|i| {
            format!(
                "'{i:08}-0000-4000-8000-000000000000','{{\"Asset Name\":\"srv-{i}\",\"Environment\":\"prod\",\"Owner\":\"ops\"}}',NULL,NULL,'2026-01-01 00:00:00+00',{i}"
            )
        })
        .collect();
    group.bench_function(BenchmarkId::new("hash_only_baseline", rows), |b| {
        b.iter(|| {
            let mut sum = 0u64;
            for text in &texts {
                let digest = Sha256::digest(text.as_bytes());
                let mut first = [0u8; 8];
                first.copy_from_slice(&digest[..8]);
                sum = sum.wrapping_add(u64::from_le_bytes(first));
            }
            black_box(sum)
        })
    });
    group.finish();
}

fn csv_parsing(c: &mut Criterion) {
    const ROWS: usize = 10_000;
    let mut text = CMDB_COLUMNS
        .iter()
        .map(|(header, _)| *header)
        .collect::<Vec<_>>()
        .join(",");
    text.push('\n');
    for i in 0..ROWS {
        let row = CMDB_COLUMNS
            .iter()
            .enumerate()
            .map(|(column, _)| format!("value-{i}-{column}"))
            .collect::<Vec<_>>()
            .join(",");
        text.push_str(&row);
        text.push('\n');
    }
    let mut group = c.benchmark_group("csv_parsing");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function(BenchmarkId::new("csv_crate_string_records", ROWS), |b| {
        b.iter(|| {
            let mut reader = csv::Reader::from_reader(black_box(text.as_bytes()));
            let mut fields = 0usize;
            for record in reader.records() {
                fields += record.map(|r| r.len()).unwrap_or(0);
            }
            black_box(fields)
        })
    });
    group.finish();
}

criterion_group!(benches, fingerprinting, csv_parsing);
criterion_main!(benches);
