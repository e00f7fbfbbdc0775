"""SQLAlchemy engine and session helpers shared by the services."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from vap_common.settings import DatabaseSettings

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def make_engine(settings: DatabaseSettings, **overrides: object) -> Engine:
    """An engine whose connections use ``settings.schema_name`` (if any) as their search_path."""
    connect_args: dict[str, object] = {"application_name": "vap"}
    if settings.schema_name:
        if not _SCHEMA_NAME.match(settings.schema_name):
            raise ValueError(f"invalid schema name {settings.schema_name!r}")
        # Only that schema: a migrated `public` (the demo's) must never stand in for a missing table.
        connect_args["options"] = f"-csearch_path={settings.schema_name}"
    options: dict[str, object] = {"pool_size": settings.pool_size, "pool_pre_ping": True, "connect_args": connect_args}
    options.update(overrides)
    return create_engine(settings.url, **options)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work commits together on success and rolls back on any error."""
    with factory() as session, session.begin():
        yield session


def migrate(settings: DatabaseSettings, revision: str = "head", *, down: bool = False) -> None:
    """`alembic upgrade <revision>` (or `downgrade`) on the database and schema of ``settings``.

    For code that migrates a schema of its own (tests, benchmarks); operators run the `alembic` CLI.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "vap_common:migrations")
    engine = make_engine(settings, pool_size=1)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            (command.downgrade if down else command.upgrade)(config, revision)
    finally:
        engine.dispose()


# SQLSTATE classes of errors about the data, not the moment: 22 data exception (e.g. a NUL in text,
# a number out of range), 23 integrity constraint violation, 54 program limit exceeded (e.g. an
# index row too large). Retrying such a statement gives the same answer.
_PERMANENT_SQLSTATE_CLASSES = ("22", "23", "54")


def is_permanent_error(error: BaseException) -> bool:
    """True when PostgreSQL (or the driver, before sending) refuses the data for good.

    Connection-level failures (server down, connection reset, timeouts) are transient: False.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        pgcode = getattr(current, "pgcode", None)
        if isinstance(pgcode, str) and pgcode[:2] in _PERMANENT_SQLSTATE_CLASSES:
            return True
        # psycopg2 refuses some values before sending them: NUL in a string, text it cannot encode.
        if isinstance(current, UnicodeError) or (isinstance(current, ValueError) and "NUL" in str(current)):
            return True
        current = getattr(current, "orig", None) or current.__cause__
    return False
