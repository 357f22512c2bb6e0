//! In-process hot paths. Figures are only meaningful as ratios within one run: the machines
//! that run this are shared and noisy.
//!
//! `csv_to_rows`: one CMDB file (13 columns) read by the csv crate alone into string records
//! (the baseline), by flowkey's streamed upload pipeline (`read_csv_batches`: every row
//! checked, written as its JSON text, sampled for the suggested mappings, handed on in
//! batches), and by the whole-file reader into `{header: value}` maps (`read_csv`, what the
//! upload did before it was streamed).

use std::ops::ControlFlow;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use flowkey::ids::{AnyId, FlowId, SessionId};
use flowkey::imports::{read_csv, read_csv_batches, CsvPiece};
use flowkey::seed::CMDB_COLUMNS;

fn id_parsing(c: &mut Criterion) {
    let bare = "3f2b8c1e-9d4a-4b7e-8c21-5a6f7e8d9c0b";
    let prefixed = "DISC_SESSION_3F2B8C1E-9D4A-4B7E-8C21-5A6F7E8D9C0B";
    let garbage = "definitely-not-a-session-id-at-all-no";
    let mut group = c.benchmark_group("id_parsing");
    group.throughput(Throughput::Elements(1));
    // Baseline: the uuid crate's own parser on the same text.
    group.bench_function("uuid_crate_baseline", |b| {
        b.iter(|| uuid::Uuid::try_parse(black_box(bare)))
    });
    group.bench_function("session_bare", |b| {
        b.iter(|| SessionId::parse(black_box(bare)))
    });
    group.bench_function("session_prefixed_upper", |b| {
        b.iter(|| SessionId::parse(black_box(prefixed)))
    });
    group.bench_function("session_garbage", |b| {
        b.iter(|| SessionId::parse(black_box(garbage)))
    });
    group.bench_function("flow_v4", |b| b.iter(|| FlowId::parse(black_box(bare))));
    group.bench_function("any_id_prefixed", |b| {
        b.iter(|| AnyId::parse(black_box(prefixed)))
    });
    group.finish();
}

fn csv_to_rows(c: &mut Criterion) {
    const ROWS: usize = 10_000;
    let mut text = CMDB_COLUMNS
        .iter()
        .map(|(header, _)| *header)
        .collect::<Vec<_>>()
        .join(",");
    text.push('\n');
    for i in 0..ROWS {
        let row = (0..CMDB_COLUMNS.len())
            .map(|column| match column {
                1 => format!("\"value, {i}\""),
                _ => format!("value-{i}-{column}"),
            })
            .collect::<Vec<_>>()
            .join(",");
        text.push_str(&row);
        text.push('\n');
    }
    let bytes = text.as_bytes();
    let mut group = c.benchmark_group("csv_to_rows");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("csv_crate_string_records", |b| {
        b.iter(|| {
            let mut reader = csv::Reader::from_reader(black_box(bytes));
            let mut record = csv::StringRecord::new();
            let mut rows = 0;
            while reader.read_record(&mut record).expect("csv") {
                rows += 1;
            }
            rows
        })
    });
    group.bench_function("flowkey_streamed_batches", |b| {
        b.iter(|| {
            let mut rows = 0;
            read_csv_batches(black_box(bytes), |piece| {
                if let CsvPiece::Rows(batch) = piece {
                    rows += batch.len();
                }
                ControlFlow::Continue(())
            })
            .expect("csv");
            rows
        })
    });
    group.bench_function("flowkey_whole_file_maps", |b| {
        b.iter(|| read_csv(black_box(bytes)).expect("csv").rows.len())
    });
    group.finish();
}

criterion_group!(benches, id_parsing, csv_to_rows);
criterion_main!(benches);
