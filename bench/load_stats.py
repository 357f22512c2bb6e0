#!/usr/bin/env python3
"""Latency percentiles and errors of the legacy load (pgbench per-transaction logs), alone and
during `upgrade head`; prints one JSON line per figure for results.jsonl.

pgbench log line: client_id transaction_no latency_us script_no epoch_s epoch_us
Script 0 is the reader (read.sql), script 1 the writer (write.sql)."""
import argparse
import glob
import json
import os
import re

SCRIPTS = {"0": "read", "1": "write"}


def transactions(directory, window=None):
    """(script, latency_ms) of every transaction, only those ending inside `window` if given."""
    out = []
    for path in glob.glob(os.path.join(directory, "load.*")):
        with open(path) as log:
            for line in log:
                parts = line.split()
                if len(parts) < 6 or not parts[2].isdigit():
                    continue
                end = int(parts[4]) + int(parts[5]) / 1e6
                latency_ms = int(parts[2]) / 1000.0
                start = end - latency_ms / 1000.0
                # A transaction counts when it overlaps the window (it may have waited in it).
                if window and (end < window[0] or start > window[1]):
                    continue
                out.append((SCRIPTS.get(parts[3], parts[3]), latency_ms))
    return out


def percentile(values, p):
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(p / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[index]


def errors(directory):
    count = 0
    out_path = os.path.join(directory, "pgbench.out")
    err_path = os.path.join(directory, "pgbench.err")
    if os.path.exists(out_path):
        text = open(out_path).read()
        match = re.search(r"number of failed transactions: (\d+)", text)
        if match:
            count += int(match.group(1))
    if os.path.exists(err_path):
        for line in open(err_path):
            if "aborted" in line or "ERROR" in line or "error" in line:
                count += 1
    return count


def lock_waits(directory):
    """Longest lock wait seen by the sampler, per kind of waiter (flowkey or the load)."""
    longest = {"load": 0.0, "flowkey": 0.0}
    path = os.path.join(directory, "lock_waits.txt")
    if not os.path.exists(path):
        return longest
    for line in open(path):
        parts = line.rstrip("\n").split("|")
        if len(parts) < 4:
            continue
        try:
            waited = float(parts[2])
        except ValueError:
            continue
        who = "load" if parts[1] == "pgbench" else "flowkey"
        longest[who] = max(longest[who], waited)
    return longest


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--alone", required=True)
    parser.add_argument("--migration", required=True)
    parser.add_argument("--window", nargs=2, type=float, required=True)
    args = parser.parse_args()

    def emit(metric, value):
        print(json.dumps({"engine": args.engine, "size": args.size, "metric": metric, "value": value}))

    for label, directory, window in (
        ("load_alone", args.alone, None),
        ("load_during_upgrade", args.migration, tuple(args.window)),
    ):
        txs = transactions(directory, window)
        for kind in ("read", "write", "all"):
            lat = [ms for script, ms in txs if kind == "all" or script == kind]
            emit(f"{label}_{kind}_count", len(lat))
            emit(f"{label}_{kind}_p50_ms", round(percentile(lat, 50), 3))
            emit(f"{label}_{kind}_p99_ms", round(percentile(lat, 99), 3))
            emit(f"{label}_{kind}_max_ms", round(max(lat, default=0.0), 3))
        emit(f"{label}_errors", errors(directory))
    waits = lock_waits(args.migration)
    emit("load_during_upgrade_longest_sampled_lock_wait_ms", waits["load"])
    emit("flowkey_longest_sampled_lock_wait_ms", waits["flowkey"])


if __name__ == "__main__":
    main()
