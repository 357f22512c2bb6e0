//! In-process hot paths. Figures are only meaningful as ratios within one run: the machines
//! that run this are shared and noisy.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use flowkey::ids::{AnyId, FlowId, SessionId};

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

criterion_group!(benches, id_parsing);
criterion_main!(benches);
