"""Helpers of scripts/drill.sh (Python standard library only).

  drill.py jwt SECRET USER CLIENT ENGAGEMENT       a HS256 token (claims grants) on stdout
  drill.py sqlite-writer DB TENANTS STOP LOG NAME  an old-code writer on SQLite until STOP exists
  drill.py sqlite-snapshot DB COLUMNS OUT          one line per legacy row: table, key, hash
  drill.py latency [--window FROM TO] LOG...      p50/p99 of the writers' op durations

The SQLite writer is the legacy application as it writes: plain SQL through the SQLite library
with a 10 s busy timeout (what the runbook asks of the application), session_id only, never
flow_id. Each round: a new session (its own transaction, as the platform creates it), then its
flow the legacy way (discovery_flows.import_session_id) with an import and three raw records
keyed by session_id, an UPDATE of those records by import and row number (the statement that
deadlocked against the backfill in issue 12), an import and a record in a session that existed
before the drill, and the reads by session_id. Every operation is logged as
`ok <ms> <epoch at end> <op>` or `error <ms> <epoch> <op> <message>`; the drill counts the errors.
"""

import base64
import hashlib
import hmac
import json
import os
import random
import sqlite3
import sys
import time
import uuid


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(secret, user, client, engagement):
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "sub": user,
        "exp": int(time.time()) + 6 * 3600,
        "client_account_id": client,
        "engagement_ids": [engagement],
    }
    signing = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), signing.encode(), hashlib.sha256).digest()
    print(signing + "." + b64(signature))


def sqlite_writer(db, tenants_file, stop, log_path, name):
    # Sessions that existed before the drill: id, client, engagement, user.
    with open(tenants_file) as f:
        sessions = [line.split() for line in f if line.strip()]
    rng = random.Random(name)
    conn = sqlite3.connect(db, timeout=10.0, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    log = open(log_path, "a", buffering=1)
    n = 0

    def op(label, statements):
        started = time.perf_counter()
        try:
            if len(statements) > 1:
                conn.execute("BEGIN")
            for sql, args in statements:
                conn.execute(sql, args).fetchall()
            if len(statements) > 1:
                conn.execute("COMMIT")
            log.write(f"ok {(time.perf_counter() - started) * 1000:.3f} {time.time():.3f} {label}\n")
        except sqlite3.Error as err:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            message = str(err).replace("\n", " ")
            log.write(f"error {(time.perf_counter() - started) * 1000:.3f} {time.time():.3f} {label}"
                      f" {message}\n")

    while not os.path.exists(stop):
        n += 1
        old, client, engagement, user = rng.choice(sessions)
        session, flow_row, flow, imp, imp2 = (str(uuid.uuid4()) for _ in range(5))
        op("session", [(
            "INSERT INTO data_import_sessions (id, client_account_id, engagement_id, session_name,"
            " created_by) VALUES (?, ?, ?, ?, ?)",
            (session, client, engagement, f"drill {name} {n}", user))])
        records = [(
            "INSERT INTO raw_import_records (id, data_import_id, client_account_id, engagement_id,"
            " session_id, row_number, raw_data) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (str(uuid.uuid4()), imp, client, engagement, session, row,
             json.dumps({"hostname": f"drill-{name}-{n}-{row}"})))
            for row in (1, 2, 3)]
        op("flow+import", [
            ("INSERT INTO discovery_flows (id, flow_id, client_account_id, engagement_id, user_id,"
             " import_session_id, flow_name) VALUES (?, ?, ?, ?, ?, ?, ?)",
             (flow_row, flow, client, engagement, user, session, f"drill {name} {n}")),
            ("INSERT INTO data_imports (id, client_account_id, engagement_id, session_id,"
             " import_name, import_type, source_filename, imported_by) VALUES"
             " (?, ?, ?, ?, 'drill old code', 'cmdb', 'drill.csv', ?)",
             (imp, client, engagement, session, user)),
        ] + records + [
            ("UPDATE raw_import_records SET is_processed = 1 WHERE data_import_id = ?"
             " AND row_number <= 3", (imp,)),
        ])
        op("old-session import", [
            ("INSERT INTO data_imports (id, client_account_id, engagement_id, session_id,"
             " import_name, import_type, source_filename, imported_by) VALUES"
             " (?, ?, ?, ?, 'drill old code', 'cmdb', 'drill.csv', ?)",
             (imp2, client, engagement, old, user)),
            ("INSERT INTO raw_import_records (id, data_import_id, client_account_id, engagement_id,"
             " session_id, row_number, raw_data) VALUES (?, ?, ?, ?, ?, 1, ?)",
             (str(uuid.uuid4()), imp2, client, engagement, old,
              json.dumps({"hostname": f"drill-{name}-{n}-old"}))),
        ])
        op("read", [
            ("SELECT id, status, total_records FROM data_imports WHERE session_id = ?", (old,)),
        ])
        op("read", [
            ("SELECT id, row_number, raw_data FROM raw_import_records WHERE session_id = ?"
             " LIMIT 20", (session,)),
        ])
        time.sleep(0.25)
    log.close()


def sqlite_snapshot(db, columns_file, out):
    """Every row of every legacy table as `table key hash` over its legacy columns (by name,
    so a column order changed by a round trip does not matter), sorted."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10.0)
    lines = []
    with open(columns_file) as f:
        for line in f:
            table, *columns = line.split()
            select = ", ".join(f'"{c}"' for c in columns)
            for row in conn.execute(f'SELECT {select} FROM "{table}"'):
                digest = hashlib.md5(repr(row).encode()).hexdigest()
                lines.append(f"{table} {row[0]} {digest}")
    lines.sort()
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


def latency(args):
    """`[--window FROM TO] LOG...`: the ops that ended within the window (epoch seconds)."""
    start, end = 0.0, float("inf")
    if args and args[0] == "--window":
        start, end, args = float(args[1]), float(args[2]), args[3:]
    durations = []
    for path in args:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[0] in ("ok", "error"):
                    if start <= float(parts[2]) < end:
                        durations.append(float(parts[1]))
    if not durations:
        print("no operations")
        return
    durations.sort()

    def pct(p):
        return durations[min(len(durations) - 1, int(p * len(durations)))]

    print(f"{len(durations):5} ops, p50 {pct(0.5):6.1f} ms, p99 {pct(0.99):6.1f} ms,"
          f" max {durations[-1]:6.1f} ms")


def main(argv):
    command, args = argv[1], argv[2:]
    if command == "jwt":
        jwt(*args)
    elif command == "sqlite-writer":
        sqlite_writer(*args)
    elif command == "sqlite-snapshot":
        sqlite_snapshot(*args)
    elif command == "latency":
        latency(args)
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv)
