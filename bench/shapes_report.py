#!/usr/bin/env python3
"""Usage: shapes_report.py OUTDIR [OUTDIR...]. Turns the figures of `bench/run.sh --shapes` (results.jsonl
lines with a "shape") into the markdown tables of docs/benchmarks.md: the whole `upgrade head` against
the naive offline migration per data shape, the per-step split from the audit log, and the verdicts
against issue 13's targets."""
import json
import os
import sys
from collections import defaultdict

MIN_ROWS_FOR_A_RATE = 10_000
SHAPE_ORDER = ["default", "issue13", "small-imports", "huge-imports", "many-mappings", "no-flow-sessions", "placeholder"]


def load(outs):
    figures = defaultdict(dict)
    for out in outs:
        with open(os.path.join(out, "results.jsonl")) as f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                r = json.loads(line)
                if "shape" in r:
                    figures[(r["engine"], r["size"], r["shape"])][r["metric"]] = r["value"]
    return figures


def audit_rows(outs, engine, size, shape):
    """Rows each table's backfill walked over, from the saved audit log of `upgrade head`."""
    name = f"fks_{engine}_{size}_{shape.replace('-', '_')}.upgrade_head.audit.json"
    for out in outs:
        path = os.path.join(out, name)
        if os.path.exists(path):
            rows = {}
            for e in json.load(open(path)):
                d = e.get("details") or {}
                if e["event"] == "progress" and "batches_this_run" in d and d.get("table"):
                    rows[d["table"]] = d.get("rows_done")
            return rows
    return {}


def fmt(value, digits=0):
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def ratio(a, b):
    return a / b if a is not None and b else None


def step_sum(f, prefix, exclude=None):
    total = None
    for metric, value in f.items():
        if metric.startswith("step:" + prefix) and (exclude is None or exclude not in metric):
            total = (total or 0) + value
    return total


def step(f, revision, word):
    for metric, value in f.items():
        if metric.startswith(f"step:{revision}/") and word in metric:
            return value
    return None


def main():
    outs = sys.argv[1:]
    figures = load(outs)
    order = {shape: i for i, shape in enumerate(SHAPE_ORDER)}
    keys = sorted(figures, key=lambda k: (k[0], k[1], order.get(k[2], 99), k[2]))
    lines, verdicts = [], []
    machine = os.path.join(outs[0], "machine.txt")
    if os.path.exists(machine):
        lines += ["Machine and run:\n", "```", open(machine).read().rstrip(), "```\n"]

    lines.append("### Whole `upgrade head` against the naive offline migration, per data shape\n")
    lines.append("Both on identical copies of the same seeded database, same run; wall time of the whole process. "
                 "ratio = naive / upgrade head (target >= 0.6). Backfill: the slowest table's rows/s against "
                 "raw_import_records' (target >= 0.5), tables of 10,000 rows or more.\n")
    lines.append("| engine | raw records | shape | field mappings | naive s | upgrade head s | ratio | peak RSS MiB (upgrade) | naive RSS MiB | slowest backfill table (rows/s vs raw) |")
    lines.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for key in keys:
        engine, size, shape = key
        f = figures[key]
        r = ratio(f.get("naive_seconds"), f.get("upgrade_head_seconds"))
        rss = ratio(f.get("upgrade_head_peak_rss_kb"), 1024)
        rates = {m.split(":", 1)[1]: v for m, v in f.items() if m.startswith("backfill_rows_per_second:")}
        walked = audit_rows(outs, engine, size, shape)
        raw_rate = rates.get("raw_import_records")
        slowest = None
        for table, rate in rates.items():
            if table == "raw_import_records" or not raw_rate or rate == 0:
                continue
            # A table of a few thousand rows is done in a few batches: its rows/s is the
            # fixed cost of a batch, not a speed.
            if walked.get(table, f.get(f"rows_{table}", MIN_ROWS_FOR_A_RATE)) < MIN_ROWS_FOR_A_RATE:
                continue
            rel = rate / raw_rate
            if slowest is None or rel < slowest[1]:
                slowest = (table, rel, rate)
        slow_text = f"{slowest[0]} {fmt(slowest[2])} ({slowest[1]:.2f}x)" if slowest else "-"
        upgrade = fmt(f.get("upgrade_head_seconds"), 1)
        if f.get("upgrade_head_timed_out_after_seconds") is not None:
            upgrade = f"> {fmt(f['upgrade_head_timed_out_after_seconds'])} (stopped)"
            r = ratio(f.get("naive_seconds"), f["upgrade_head_timed_out_after_seconds"])
        lines.append(
            f"| {engine} | {fmt(f.get('rows_raw_import_records'))} | {shape} | {fmt(f.get('rows_import_field_mappings'))} "
            f"| {fmt(f.get('naive_seconds'), 1)} | {upgrade} | {fmt(r, 2)} "
            f"| {fmt(rss)} | {fmt(ratio(f.get('naive_peak_rss_kb'), 1024))} | {slow_text} |"
        )
        if r is not None:
            verdicts.append((f"upgrade head >= 0.6x naive ({engine}, {shape}, {size:,})", r >= 0.6, f"{r:.2f}x"))
        if rss is not None:
            verdicts.append((f"peak RSS < 200 MB ({engine}, {shape}, {size:,})", rss * 1.048576 < 200, f"{rss:.0f} MiB"))
        if slowest is not None:
            verdicts.append((f"every backfill >= 0.5x raw rows/s ({engine}, {shape}, {size:,})", slowest[1] >= 0.5,
                             f"{slowest[0]} {slowest[1]:.2f}x"))

    lines.append("\n### Per-step split of `upgrade head` (seconds, from the audit log)\n")
    lines.append("fingerprint = flow_mapping's fingerprint step; verify = flow_constraints' verify step; scan = `SELECT count(*)` "
                 "of every legacy table, as planned (index counts), and read from the tables themselves (`bench fingerprint`, "
                 "same database before the upgrade).\n")
    lines.append("| engine | raw records | shape | mapping | fingerprint | expand | backfill | constraints | verify | other | count(*) s / table scan s | fingerprint / count / table scan | verify / count / table scan |")
    lines.append("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|")
    for key in keys:
        engine, size, shape = key
        f = figures[key]
        fingerprint = step(f, "flow_mapping", "fingerprint")
        mapping = step_sum(f, "flow_mapping/", exclude="fingerprint")
        expand = step_sum(f, "flow_expand/")
        backfill = step_sum(f, "flow_backfill/")
        verify = step(f, "flow_constraints", "verif")
        constraints = step_sum(f, "flow_constraints/", exclude="verif")
        known = sum(v for v in (fingerprint, mapping, expand, backfill, verify, constraints) if v is not None)
        total_steps = step_sum(f, "")
        other = (total_steps - known) if total_steps is not None else None
        count, scan, fp = f.get("fpbench_count_seconds"), f.get("fpbench_table_scan_seconds"), f.get("fpbench_fingerprint_seconds")
        lines.append(
            f"| {engine} | {fmt(f.get('rows_raw_import_records'))} | {shape} | {fmt(mapping, 1)} | {fmt(fingerprint, 2)} | {fmt(expand, 1)} "
            f"| {fmt(backfill, 1)} | {fmt(constraints, 1)} | {fmt(verify, 1)} | {fmt(other, 1)} | {fmt(count, 3)} / {fmt(scan, 3)} "
            f"| {fmt(fp, 2)} s: {fmt(ratio(fp, count), 1)}x / {fmt(ratio(fp, scan), 1)}x | {fmt(ratio(verify, count), 0)}x / {fmt(ratio(verify, scan), 0)}x |"
        )
        if fp is not None and count:
            verdicts.append((f"fingerprint within 3x count(*) ({engine}, {shape}, {size:,})", fp <= 3 * count,
                             f"{fp / count:.1f}x count, {ratio(fp, scan) or 0:.1f}x table scan"))
        if verify is not None and count:
            verdicts.append((f"verify within 3x count(*) ({engine}, {shape}, {size:,})", verify <= 3 * count,
                             f"{verify / count:.0f}x count, {ratio(verify, scan) or 0:.0f}x table scan"))

    lines.append("\n### Backfill rows/s per table (audit log)\n")
    tables = ["data_imports", "raw_import_records", "import_field_mappings", "assets", "access_audit_log", "llm_usage_logs"]
    lines.append("| engine | raw records | shape | " + " | ".join(tables) + " |")
    lines.append("|---|---:|---|" + "---:|" * len(tables))
    for key in keys:
        engine, size, shape = key
        f = figures[key]
        cells = [fmt(f.get(f"backfill_rows_per_second:{t}")) for t in tables]
        lines.append(f"| {engine} | {fmt(f.get('rows_raw_import_records'))} | {shape} | " + " | ".join(cells) + " |")

    lines.append("\n### Verdicts against issue 13's targets\n")
    lines.append("| target | met | figure |")
    lines.append("|---|---|---|")
    for name, ok, figure in verdicts:
        lines.append(f"| {name} | {'yes' if ok else '**no**'} | {figure} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
