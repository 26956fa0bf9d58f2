"""Apply the versioned SQL migrations in ``kouan/db/migrations`` with yoyo-migrations.

yoyo records each applied file in its own table, takes a lock so that two
processes never migrate at once, and runs each file in one transaction.
"""

from __future__ import annotations

import logging
from importlib import resources

from yoyo import get_backend, read_migrations

logger = logging.getLogger(__name__)


def yoyo_url(database_url: str) -> str:
    """Return the yoyo backend URL (SQLAlchemy style) for a libpq URL."""
    for prefix in ("postgresql://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql+psycopg://" + database_url[len(prefix) :]
    raise ValueError(
        f"Database URL {database_url!r} is not a postgresql:// URL; "
        "set KOUAN_DATABASE_URL to postgresql://user@host:port/dbname"
    )


def migrate(database_url: str) -> list[str]:
    """Apply every pending migration and return the ids applied."""
    backend = get_backend(yoyo_url(database_url))
    migrations = read_migrations(str(resources.files("kouan.db").joinpath("migrations")))

    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)

    applied = [migration.id for migration in pending]
    for migration_id in applied:
        logger.info("Applied migration %s", migration_id)
    return applied
