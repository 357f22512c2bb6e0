"""The platform's own head (the revision ../shared/platform stamps in alembic_version); its
schema is already in the database.

Revision ID: add_v3_persistence_001
Revises:
"""

revision = "add_v3_persistence_001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
