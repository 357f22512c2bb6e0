#!/usr/bin/env python3
"""Usage: report.py OUTDIR [OUTDIR...]. Turns runs' results.jsonl (+ machine.txt) into the markdown tables of docs/benchmarks.md,
with the verdicts against the project's targets computed from the figures."""
import json
import os
import sys
from collections import defaultdict


def load(outs):
    """Figures of one or more runs (a later run's figure replaces an earlier one's)."""
    figures = defaultdict(dict)
    for out in outs:
        with open(os.path.join(out, "results.jsonl")) as f:
            for line in f:
                line = line.strip()
                if line:
                    r = json.loads(line)
                    figures[(r["engine"], r["size"])][r["metric"]] = r["value"]
    return figures


def fmt(value, digits=0):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:,.{digits}f}"


def ratio(a, b):
    return a / b if a is not None and b else None


def main():
    outs = sys.argv[1:]
    out = outs[0]
    figures = load(outs)
    keys = sorted(k for k in figures if k[1] > 0)
    engines = sorted({e for e, _ in keys})
    lines = []
    if os.path.exists(os.path.join(out, "machine.txt")):
        lines.append("Machine and run:\n")
        lines.append("```")
        lines.append(open(os.path.join(out, "machine.txt")).read().rstrip())
        lines.append("```\n")
    verdicts = []

    lines.append("### Backfill: online (`upgrade flow_backfill`) vs one offline `UPDATE ... FROM`\n")
    lines.append("Rows = every row of the six tables that get a `flow_id`; both from `flow_expand`, on copies of the same seeded database; wall time of the whole process.\n")
    lines.append("| engine | raw records | rows | online s | online rows/s | offline s | offline rows/s | online/offline | online rows/s vs smallest size | in-process online/offline (revision vs SQL time) | raw_import_records rows/s (audit) |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    first_rate = {}
    for engine, size in keys:
        f = figures[(engine, size)]
        rows = f.get("flow_table_rows")
        on_rate = ratio(rows, f.get("backfill_online_seconds"))
        off_rate = ratio(rows, f.get("backfill_offline_seconds"))
        first_rate.setdefault(engine, on_rate)
        vs_first = ratio(on_rate, first_rate[engine])
        r = ratio(on_rate, off_rate)
        lines.append(
            f"| {engine} | {fmt(f.get('raw_import_records'))} | {fmt(rows)} | {fmt(f.get('backfill_online_seconds'), 2)} | {fmt(on_rate)} "
            f"| {fmt(f.get('backfill_offline_seconds'), 2)} | {fmt(off_rate)} | {fmt(r, 2)}x | {fmt(vs_first, 2)}x "
            f"| {fmt(ratio(f.get('backfill_offline_sql_seconds'), f.get('backfill_online_revision_seconds')), 2)}x | {fmt(f.get('backfill_online_raw_rows_per_second'))} |"
        )
        if r is not None:
            verdicts.append((f"online backfill >= 0.5x offline UPDATE ({engine}, {size:,} raw)", r >= 0.5, f"{r:.2f}x"))
    for engine in engines:
        sizes = [s for e, s in keys if e == engine]
        if len(sizes) >= 2:
            small, large = figures[(engine, sizes[0])], figures[(engine, sizes[-1])]
            a = ratio(small.get("flow_table_rows"), small.get("backfill_online_seconds"))
            b = ratio(large.get("flow_table_rows"), large.get("backfill_online_seconds"))
            if a and b:
                verdicts.append((f"rows/s at {sizes[-1]:,} within 20% of {sizes[0]:,} ({engine})", b >= 0.8 * a, f"{b / a:.2f}x"))

    lines.append("\n### Whole `upgrade head`, `verify`, `downgrade legacy`: wall time and peak RSS\n")
    lines.append("| engine | raw records | upgrade head s | peak RSS MiB | RSS vs smallest | verify s | verify rows/s | downgrade legacy s | peak RSS MiB | longest DDL lock wait (audit) ms |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    first_rss = {}
    for engine, size in keys:
        f = figures[(engine, size)]
        rss = f.get("upgrade_head_peak_rss_kb")
        first_rss.setdefault(engine, rss)
        lines.append(
            f"| {engine} | {fmt(f.get('raw_import_records'))} | {fmt(f.get('upgrade_head_seconds'), 2)} | {fmt(ratio(rss, 1024), 1)} "
            f"| {fmt(ratio(rss, first_rss[engine]), 2)}x | {fmt(f.get('verify_seconds'), 2)} | {fmt(ratio(f.get('flow_table_rows'), f.get('verify_seconds')))} "
            f"| {fmt(f.get('downgrade_legacy_seconds'), 2)} | {fmt(ratio(f.get('downgrade_legacy_peak_rss_kb'), 1024), 1)} | {fmt(f.get('upgrade_head_max_ddl_lock_wait_ms'), 1)} |"
        )
    for engine in engines:
        sizes = [s for e, s in keys if e == engine]
        if len(sizes) >= 2:
            a = figures[(engine, sizes[0])].get("upgrade_head_peak_rss_kb")
            b = figures[(engine, sizes[-1])].get("upgrade_head_peak_rss_kb")
            if a and b:
                verdicts.append((f"upgrade head peak RSS within 2x from {sizes[0]:,} to {sizes[-1]:,} ({engine})", b <= 2 * a, f"{b / a:.2f}x"))

    lock_keys = [k for k in keys if "load_alone_all_count" in figures[k]]
    if lock_keys:
        lines.append("\n### Lock impact: legacy load (pgbench, plain SQL by session_id) alone vs during `upgrade head` (PostgreSQL)\n")
        lines.append("Latencies are per transaction (reader: pick a session + 2 SELECTs; writer: pick + BEGIN, 2 INSERTs with only session_id, COMMIT), in ms; during = transactions overlapping the upgrade's wall-clock window.\n")
        lines.append("| raw records | kind | alone n | alone p50 | alone p99 | alone max | during n | during p50 | during p99 | during max | errors alone/during |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for engine, size in lock_keys:
            f = figures[(engine, size)]
            for kind in ("read", "write", "all"):
                a = lambda m: f.get(f"load_alone_{kind}_{m}")
                d = lambda m: f.get(f"load_during_upgrade_{kind}_{m}")
                lines.append(
                    f"| {fmt(f.get('raw_import_records'))} | {kind} | {fmt(a('count'))} | {fmt(a('p50_ms'), 2)} | {fmt(a('p99_ms'), 2)} | {fmt(a('max_ms'), 1)} "
                    f"| {fmt(d('count'))} | {fmt(d('p50_ms'), 2)} | {fmt(d('p99_ms'), 2)} | {fmt(d('max_ms'), 1)} | {fmt(f.get('load_alone_errors'))}/{fmt(f.get('load_during_upgrade_errors'))} |"
                )
            lines.append(
                f"| {fmt(f.get('raw_import_records'))} | longest lock wait | sampled (load waiting on a lock): {fmt(f.get('load_during_upgrade_longest_sampled_lock_wait_ms'))} ms; "
                f"flowkey DDL waits (audit): {fmt(f.get('upgrade_head_under_load_max_ddl_lock_wait_ms'), 1)} ms; upgrade {'ok' if f.get('upgrade_head_under_load_ok') == 1 else 'FAILED'} in {fmt(f.get('upgrade_head_under_load_seconds'), 2)} s | | | | | | | | | |"
            )
            worst = max(f.get("load_during_upgrade_longest_sampled_lock_wait_ms") or 0, 0)
            verdicts.append((f"no lock wait > 200 ms for the legacy load ({size:,} raw; sampled every 50 ms, max txn {fmt(f.get('load_during_upgrade_all_max_ms'), 1)} ms)", worst <= 200, f"{worst:.0f} ms"))
            errs = f.get("load_during_upgrade_errors")
            verdicts.append((f"zero errors in the legacy load during upgrade ({size:,} raw)", errs == 0, f"{errs}"))

    http_keys = [k for k in figures if k[1] == 0]
    if http_keys:
        lines.append("\n### Compatibility overhead: the same request by legacy session id vs by flow id (one `flowkey serve`)\n")
        lines.append("| engine | route | requests | errors | req/s | p50 ms | p99 ms | legacy - flow p99 ms |")
        lines.append("|---|---|---:|---:|---:|---:|---:|---:|")
        for engine, _ in sorted(http_keys):
            f = figures[(engine, 0)]
            for route in ("flow", "legacy"):
                over = None
                if route == "legacy" and f.get("http_legacy_p99_ms") is not None:
                    over = f["http_legacy_p99_ms"] - f.get("http_flow_p99_ms", 0)
                lines.append(
                    f"| {engine} | {route} | {fmt(f.get(f'http_{route}_count'))} | {fmt(f.get(f'http_{route}_errors'))} | {fmt(f.get(f'http_{route}_rps'))} "
                    f"| {fmt(f.get(f'http_{route}_p50_ms'), 3)} | {fmt(f.get(f'http_{route}_p99_ms'), 3)} | {fmt(over, 3)} |"
                )
            if f.get("http_legacy_p99_ms") is not None:
                over = f["http_legacy_p99_ms"] - f.get("http_flow_p99_ms", 0)
                if over < 0:
                    # The legacy route cannot be cheaper than the flow route it adds work to:
                    # a negative difference is the noise of the run, not a measurement.
                    verdicts.append((f"legacy-id request overhead p99 < 1 ms ({engine})", "inconclusive",
                                     f"{over:.3f} ms: the legacy p99 came out lower, noise of the run; p50 difference "
                                     f"{f.get('http_legacy_p50_ms', 0) - f.get('http_flow_p50_ms', 0):.3f} ms"))
                else:
                    verdicts.append((f"legacy-id request overhead p99 < 1 ms ({engine})", over < 1.0, f"{over:.3f} ms"))

    lines.append("\n### Verdicts against the targets (computed from the figures above)\n")
    lines.append("| target | met | figure |")
    lines.append("|---|---|---|")
    for name, ok, figure in verdicts:
        met = ok if isinstance(ok, str) else ("yes" if ok else "**NO**")
        lines.append(f"| {name} | {met} | {figure} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
