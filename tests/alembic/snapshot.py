"""Prints everything of a platform database that is not flowkey's or Alembic's book, in a
form two databases can be compared by: the schema (pg_dump's, or SQLite's own DDL) and every
table's rows, sorted. Usage: snapshot.py SQLALCHEMY_URL [SCHEMA]"""
import subprocess
import sys

from sqlalchemy import MetaData, create_engine, pool, select, text

from flowkey_alembic_filter import is_flowkey_table

SKIPPED = {"alembic_version"}


def main(url, schema):
    connect_args = {"options": "-csearch_path=%s" % schema} if schema else {}
    engine = create_engine(url, poolclass=pool.NullPool, connect_args=connect_args)
    if engine.dialect.name == "postgresql":
        dump = subprocess.run(
            ["pg_dump", "--schema-only", "--no-owner", "--no-privileges",
             "--schema", schema or "public",
             "--exclude-table", "%s.flowkey_*" % (schema or "public"),
             "--exclude-table", "%s.session_flow_mapping" % (schema or "public"),
             "--exclude-table", "%s.alembic_version" % (schema or "public"),
             "--dbname", engine.url.set(drivername="postgresql").render_as_string(False)],
            check=True, capture_output=True, text=True).stdout
        # Comments, and pg_dump's per-dump random \restrict keys, say nothing of the schema.
        print("\n".join(line for line in dump.splitlines()
                        if not line.startswith(("--", "\\restrict", "\\unrestrict"))))
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            for kind, name, table, sql in connection.execute(text(
                    "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")):
                if not (is_flowkey_table(table) or table in SKIPPED):
                    print(kind, name, sql)
        metadata = MetaData()
        metadata.reflect(bind=connection)
        for table in sorted(metadata.tables.values(), key=lambda t: t.name):
            if is_flowkey_table(table.name) or table.name in SKIPPED:
                continue
            rows = [tuple(map(repr, row)) for row in connection.execute(select(table))]
            print("table", table.name, len(rows))
            for row in sorted(rows):
                print("  ", row)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
