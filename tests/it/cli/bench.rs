//! `flowkey bench`: the baselines `bench/run.sh` times, run small through the real binary on
//! both engines. Each reports sane figures; the read-only and rolled-back ones leave every
//! legacy value as it was; the two offline baselines do the work they stand for.

use assert_cmd::Command;
use flowkey::migrate::flow::{self, FingerprintScope};

use crate::both_engines;
use crate::support::harness::TestDb;
use crate::support::reliability_support::{run_ok, seeded, small_seed};

/// `flowkey --json bench ARGS...` on `url`: its JSON answer (the command must succeed).
fn bench_json(url: &str, args: &[&str]) -> serde_json::Value {
    let output = Command::cargo_bin("flowkey")
        .expect("binary")
        .env_remove("DATABASE_URL")
        .env_remove("RUST_LOG")
        .args(["--database-url", url, "--json", "bench"])
        .args(args)
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "bench {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON document")
}

fn positive(value: &serde_json::Value, field: &str) -> f64 {
    let number = value[field]
        .as_f64()
        .unwrap_or_else(|| panic!("no {field}: {value}"));
    assert!(number > 0.0, "{field} is {number}: {value}");
    number
}

/// Fingerprint, legacy-signal and ledger-write benches: figures for every legacy table or
/// round, and not one legacy value changed (the first only reads, the others roll every
/// round back).
async fn the_measuring_benches_report_figures_and_change_nothing(test_db: TestDb) {
    seeded(&test_db, &small_seed()).await;
    let db = test_db.connect().await;
    let url = test_db.url.as_str();
    let legacy = flow::fingerprint_database(&db, FingerprintScope::AllRows)
        .await
        .unwrap();

    let speed = bench_json(url, &["fingerprint", "--repeats", "1"]);
    let tables = speed["tables"].as_array().expect("tables");
    assert_eq!(tables.len(), legacy.len(), "{speed}");
    for (table, fingerprint) in tables.iter().zip(&legacy) {
        assert_eq!(table["table"], fingerprint.table.as_str(), "{speed}");
        assert_eq!(table["rows"].as_i64(), Some(fingerprint.rows), "{speed}");
    }
    positive(&speed, "fingerprint_seconds");

    // The two benches that roll every round back, each at the revision it needs: 20 rows
    // per round, 2 rounds, a time per INSERT with and without the trigger measured.
    let rolled_back = [
        (
            "legacy_write_signal",
            "legacy-signal",
            ["dual_write_only_us", "with_signal_us"],
        ),
        (
            "head",
            "ledger-write",
            ["without_ledger_us", "with_ledger_us"],
        ),
    ];
    for (revision, bench, timings) in rolled_back {
        run_ok(url, &["upgrade", revision, "--no-progress"]);
        let before = flow::fingerprint_database(&db, FingerprintScope::AllRows)
            .await
            .unwrap();
        let cost = bench_json(url, &[bench, "--rows", "20", "--rounds", "2"]);
        assert_eq!(
            (&cost["rows_per_round"], &cost["rounds"]),
            (&20.into(), &2.into()),
            "{cost}"
        );
        for timing in timings.into_iter().chain(["ratio"]) {
            positive(&cost, timing);
        }
        assert_eq!(
            flow::fingerprint_database(&db, FingerprintScope::AllRows)
                .await
                .unwrap(),
            before,
            "the {bench} bench left rows behind"
        );
    }
    db.close().await;
}
both_engines!(
    the_measuring_benches_report_figures_and_change_nothing,
    the_measuring_benches_report_figures_and_change_nothing
);

/// The offline baselines do the work they are timed against: the backfill's speed limit
/// (database at flow_expand) updates every row the online backfill would link, and the
/// naive offline migration (legacy database) runs each of its phases.
async fn the_offline_baselines_do_the_work_they_stand_for(test_db: TestDb) {
    seeded(&test_db, &small_seed()).await;
    let url = test_db.url.as_str();
    let naive_db = TestDb::fresh(test_db.engine).await;
    seeded(&naive_db, &small_seed()).await;

    run_ok(url, &["upgrade", "flow_expand", "--no-progress"]);
    let backfill = bench_json(url, &["offline-backfill"]);
    let tables = backfill["tables"].as_array().expect("tables");
    assert!(!tables.is_empty(), "{backfill}");
    let updated = backfill["rows_updated"].as_u64().expect("rows_updated");
    let rows = backfill["rows"].as_u64().expect("rows");
    assert!(updated > 0 && updated <= rows, "{backfill}");
    assert_eq!(
        tables
            .iter()
            .map(|table| table["rows_updated"].as_u64().unwrap())
            .sum::<u64>(),
        updated,
        "{backfill}"
    );

    let naive = bench_json(&naive_db.url, &["naive-offline"]);
    let phases = naive["phases"].as_array().expect("phases");
    assert!(phases.len() >= 3, "{naive}");
    positive(&naive, "seconds");
}
both_engines!(
    the_offline_baselines_do_the_work_they_stand_for,
    the_offline_baselines_do_the_work_they_stand_for
);

/// The readiness bench: refused below the write ledger, changing nothing; at head, the full
/// checks and a count are timed, the old code's sessions are written (and stay, linked by
/// the triggers), and readiness answers from the delta over exactly their rows: per session
/// its import and its raw records.
async fn the_readiness_bench_times_the_delta_against_the_full_checks(test_db: TestDb) {
    seeded(&test_db, &small_seed()).await;
    let url = test_db.url.as_str();
    run_ok(url, &["upgrade", "flow_constraints", "--no-progress"]);
    let refused = Command::cargo_bin("flowkey")
        .expect("binary")
        .env_remove("DATABASE_URL")
        .args(["--database-url", url, "bench", "readiness"])
        .output()
        .expect("runs");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("needs the write ledger's revision"),
        "{stderr}"
    );

    run_ok(url, &["upgrade", "head", "--no-progress"]);
    let cost = bench_json(
        url,
        &[
            "readiness",
            "--sessions",
            "3",
            "--records",
            "4",
            "--repeats",
            "2",
        ],
    );
    for timing in ["count_seconds", "full_check_seconds", "readiness_seconds"] {
        positive(&cost, timing);
    }
    assert_eq!(cost["readiness_from"], "delta", "{cost}");
    assert_eq!(
        cost["delta_rows_checked"].as_i64(),
        Some(3 * (1 + 4)),
        "{cost}"
    );
    let db = test_db.connect().await;
    let written: i64 = flowkey::on_pool!(&db, pool => sqlx::query_scalar(
        "SELECT count(*) FROM raw_import_records r JOIN data_imports d ON d.id = r.data_import_id \
         WHERE d.import_name = 'bench old code' AND r.flow_id IS NOT NULL",
    )
    .fetch_one(pool)
    .await
    .unwrap());
    assert_eq!(
        written,
        3 * 4,
        "the old code's rows, linked by the triggers"
    );
    db.close().await;
}
both_engines!(
    the_readiness_bench_times_the_delta_against_the_full_checks,
    the_readiness_bench_times_the_delta_against_the_full_checks
);
