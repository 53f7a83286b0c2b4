"""The call log's migrations on PostgreSQL: the same named list as DuckDB's, applied under an advisory lock.

Why the same list: a database is "at migration 012" on either backend, and a
migration appended to ``schema.MIGRATIONS`` reaches PostgreSQL without a
second copy to forget. Each one is translated (``to_postgres``: DuckDB's
``DOUBLE`` is ``DOUBLE PRECISION`` here; ``VARCHAR``, ``DECIMAL(18, 10)``,
``TIMESTAMPTZ``, ``JSON``, ``BIGINT`` and ``BOOLEAN`` mean the same), except
the few that exist for DuckDB's sake (``POSTGRES_VERSIONS``), and followed by
the ones only PostgreSQL has (``analytics/pg_rollup.py``'s triggers that keep
the rollups current):

* ``005_requests_without_key_indexes`` dropped the primary keys of
  ``requests`` and ``attempts`` because DuckDB's ART index cost ~5x per
  insert. PostgreSQL's B-tree costs far less, and the keys are what make a
  replayed journal, a second ``taelio log copy`` or two replicas replaying
  the same crash land each request exactly once (``ON CONFLICT DO NOTHING``).
  So on PostgreSQL 005 keeps the keys and adds what the reads need instead:
  B-tree indexes on ``ts``.
* ``014_attempt_rollup_simulated`` only adds the column here (there is no
  ``rowid`` to backfill by): ``pg_rollup.ATTEMPT_SIMULATED`` re-keys the
  rollup, re-creates the fold triggers and refolds it from the raw rows.

Several processes may open a fresh database at once (replicas starting
together): ``migrate`` holds ``pg_advisory_lock`` while it reads
``_migrations`` and applies what is missing, so exactly one applies each
migration and the others find it done.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from taelio_core.calllog.schema import MIGRATIONS

__all__ = ["MIGRATION_LOCK", "POSTGRES_VERSIONS", "migrate", "postgres_migrations", "to_postgres"]

# pg_advisory_lock's key: any bigint no other program on the database uses; this one spells "taelio\0\1".
MIGRATION_LOCK = 0x7461656C696F0001

POSTGRES_VERSIONS: dict[str, str] = {
    "005_requests_without_key_indexes": """
-- DuckDB dropped the keys here (its index cost ~5x per insert). On PostgreSQL the keys stay: they make a
-- replayed journal or a repeated copy land each request exactly once. The reads want ts indexes instead.
CREATE INDEX requests_ts ON requests (ts);
CREATE INDEX attempts_ts ON attempts (ts);
""",
    "014_attempt_rollup_simulated": """
ALTER TABLE attempt_rollup ADD COLUMN simulated BOOLEAN NOT NULL DEFAULT false;
""",
}

_DOUBLE = re.compile(r"\bDOUBLE\b(?!\s+PRECISION)", re.IGNORECASE)


def to_postgres(sql: str) -> str:
    """A DuckDB migration's DDL in PostgreSQL's dialect."""
    return _DOUBLE.sub("DOUBLE PRECISION", sql)


def postgres_migrations() -> list[tuple[str, str]]:
    """DuckDB's named migrations in PostgreSQL's dialect, then the ones only PostgreSQL has (rollup triggers)."""
    from taelio_core.analytics import pg_rollup     # analytics imports calllog: not at the top
    return [(name, POSTGRES_VERSIONS.get(name) or to_postgres(sql)) for name, sql in MIGRATIONS] + list(
        pg_rollup.MIGRATIONS)


def migrate(conn: Any, migrations: Sequence[tuple[str, str]] | None = None) -> list[str]:  # noqa: ANN401
    """Apply the migrations the database lacks, each in its own transaction, under the advisory lock.

    ``conn`` is a psycopg connection in autocommit mode. Returns the names applied by this call.
    """
    conn.execute("SELECT pg_advisory_lock(%s)", [MIGRATION_LOCK])
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)")
        done = {row[0] for row in conn.execute("SELECT name FROM _migrations").fetchall()}
        applied = []
        for name, sql in (postgres_migrations() if migrations is None else migrations):
            if name in done:
                continue
            with conn.transaction():
                conn.execute(sql)
                conn.execute("INSERT INTO _migrations VALUES (%s, now())", [name])
            applied.append(name)
        return applied
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", [MIGRATION_LOCK])
