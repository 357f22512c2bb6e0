"""env.py as the platform writes it: the URL from the environment, the platform's schema on
the search_path and as the version table's schema; plus flowkey's include_object filter.

PLATFORM_DATABASE_URL  SQLAlchemy URL of the platform database
PLATFORM_SCHEMA        PostgreSQL schema (the platform's `migration`); empty for SQLite
PRISTINE_DATABASE_URL  a copy of the database before flowkey: the models autogenerate compares
USE_FLOWKEY_FILTER     0 to leave the filter out (the test shows what autogenerate then does)
"""
import os

from alembic import context
from sqlalchemy import MetaData, create_engine, pool

from flowkey_alembic_filter import include_object

URL = os.environ["PLATFORM_DATABASE_URL"]
SCHEMA = os.environ.get("PLATFORM_SCHEMA") or None
PRISTINE = os.environ.get("PRISTINE_DATABASE_URL")
FILTER = include_object if os.environ.get("USE_FLOWKEY_FILTER", "1") == "1" else None


def engine(url):
    connect_args = {"options": "-csearch_path=%s" % SCHEMA} if SCHEMA else {}
    return create_engine(url, poolclass=pool.NullPool, connect_args=connect_args)


def target_metadata():
    # The platform's models, stood in for by the database as it was before flowkey ran.
    if not PRISTINE:
        return None
    metadata = MetaData()
    with engine(PRISTINE).connect() as connection:
        metadata.reflect(bind=connection)
    return metadata


def run_migrations_offline():
    context.configure(
        url=URL,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        version_table_schema=SCHEMA,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online():
    with engine(URL).connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata(),
            version_table_schema=SCHEMA,
            include_object=FILTER,
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
