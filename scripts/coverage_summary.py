#!/usr/bin/env python3
"""Summarises one or more lcov files (merged: a line counts as covered if any run hit it).

Usage: coverage_summary.py [--uncovered] [--floor FILE] LCOV [LCOV ...]

Prints the overall line coverage, the coverage of the migration code (src/migrate/** and
src/db/introspect.rs) per file, and with --uncovered every uncovered line of that code as
ranges with the first line of source text. With --floor, exits 1 when the migration code's
figure is below the percentage written in FILE (its first line that is not a comment).
"""
import os
import sys
from collections import defaultdict

MIGRATION_PREFIXES = ("src/migrate/", "src/db/introspect.rs")


def relative(path, root):
    path = os.path.normpath(path)
    if os.path.isabs(path):
        try:
            return os.path.relpath(path, root)
        except ValueError:
            return path
    return path


def read(paths, root):
    hits = defaultdict(dict)  # file -> line -> max hit count
    for lcov in paths:
        current = None
        with open(lcov, encoding="utf-8") as handle:
            for line in handle:
                line = line.strip()
                if line.startswith("SF:"):
                    current = relative(line[3:], root)
                elif line.startswith("DA:") and current:
                    number, count = line[3:].split(",")[:2]
                    number, count = int(number), int(count)
                    hits[current][number] = max(hits[current].get(number, 0), count)
                elif line == "end_of_record":
                    current = None
    return hits


def ranges(numbers):
    out = []
    for number in sorted(numbers):
        if out and number == out[-1][1] + 1:
            out[-1][1] = number
        else:
            out.append([number, number])
    return out


def figure(lines):
    total = len(lines)
    covered = sum(1 for count in lines.values() if count > 0)
    return covered, total, (100.0 * covered / total) if total else 100.0


def read_floor(path):
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#"):
                return float(line)
    raise SystemExit(f"{path}: no floor figure in it")


def main():
    args = sys.argv[1:]
    show_uncovered = "--uncovered" in args
    args = [arg for arg in args if arg != "--uncovered"]
    floor = None
    if "--floor" in args:
        at = args.index("--floor")
        floor = read_floor(args[at + 1])
        del args[at : at + 2]
    root = os.getcwd()
    hits = read(args, root)
    files = {f: l for f, l in hits.items() if f.startswith("src/")}
    all_lines = {(f, n): c for f, l in files.items() for n, c in l.items()}
    covered, total, percent = figure(all_lines)
    print(f"overall (src/): {covered}/{total} lines, {percent:.2f}%")
    migration = {f: l for f, l in files.items() if f.startswith(MIGRATION_PREFIXES)}
    only_migrate = {(f, n): c for f, l in migration.items() for n, c in l.items() if f.startswith("src/migrate/")}
    covered, total, percent = figure(only_migrate)
    migrate_total = total
    print(f"src/migrate/**: {covered}/{total} lines, {percent:.2f}%")
    both = {(f, n): c for f, l in migration.items() for n, c in l.items()}
    covered, total, percent = figure(both)
    migration_percent = percent
    migration_missing, migration_total = total - covered, total
    print(f"src/migrate/** + src/db/introspect.rs: {covered}/{total} lines, {percent:.2f}%")
    print()
    print("| file | covered | lines | % |")
    print("|---|---:|---:|---:|")
    for name in sorted(migration):
        covered, total, percent = figure(migration[name])
        print(f"| {name} | {covered} | {total} | {percent:.1f} |")
    if show_uncovered:
        for name in sorted(migration):
            missing = [n for n, c in migration[name].items() if c == 0]
            if not missing:
                continue
            print(f"\n### {name}")
            try:
                with open(name, encoding="utf-8") as handle:
                    source = handle.read().splitlines()
            except OSError:
                source = []
            for start, end in ranges(missing):
                text = source[start - 1].strip() if start - 1 < len(source) else ""
                where = f"{start}" if start == end else f"{start}-{end}"
                print(f"- {where}: `{text[:90]}`")
    if floor is not None:
        if migration_total == 0 or migrate_total == 0:
            print("\ncoverage: no line of the migration code in the report: nothing was measured")
            sys.exit(1)
        # Compared at the printed precision, so that the recorded figure itself passes; a
        # floor of 100 allows no uncovered line at all, however many lines there are.
        below = round(migration_percent, 2) < floor or (floor >= 100 and migration_missing > 0)
        if below:
            print(
                f"\ncoverage: the migration code is at {migration_percent:.2f}%, below the floor of "
                f"{floor:.2f}% (scripts/coverage-floor.txt): cover the new lines with a test"
            )
            sys.exit(1)
        print(f"\ncoverage: {migration_percent:.2f}% is at or above the floor of {floor:.2f}%")


if __name__ == "__main__":
    main()
