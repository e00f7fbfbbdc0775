"""Which errors mean "database unavailable" (503) and how domain errors carry headers, no servers."""

from __future__ import annotations

import psycopg2
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from vap_api.errors import NotFound, TooManyRequests, is_database_unavailable
from vap_api.main import create_app
from vap_api.settings import ApiSettings


def _wrapped(kind: type[DBAPIError], *, invalidated: bool = False) -> DBAPIError:
    return kind("SELECT 1", None, Exception("driver says no"), connection_invalidated=invalidated)


@pytest.mark.parametrize(
    ("error", "unavailable"),
    [
        (_wrapped(OperationalError), True),  # refused, lost, timed out
        (_wrapped(InterfaceError), True),  # the driver's connection is closed
        (_wrapped(DBAPIError, invalidated=True), True),  # a disconnect SQLAlchemy recognised
        (PoolTimeoutError("QueuePool limit of size 5 overflow 10 reached"), True),
        (psycopg2.OperationalError("could not connect"), True),  # the driver's own, unwrapped
        (_wrapped(DBAPIError), False),
        (_wrapped(IntegrityError), False),  # a statement the database refused: a bug, 500
        (_wrapped(ProgrammingError), False),
        (ValueError("A string literal cannot contain NUL (0x00) characters."), False),
    ],
)
def test_only_connection_level_failures_count_as_database_unavailable(error: Exception, unavailable: bool) -> None:
    driver_errors = (psycopg2.OperationalError, psycopg2.InterfaceError)
    assert is_database_unavailable(error, driver_errors=driver_errors) is unavailable


def test_too_many_requests_carries_its_retry_after_header() -> None:
    error = TooManyRequests("busy", retry_after_seconds=7)
    assert (error.status_code, error.detail, error.headers()) == (429, "busy", {"Retry-After": "7"})
    assert NotFound("gone").headers() == {}


def test_the_api_engine_waits_briefly_for_a_pooled_connection() -> None:
    app = create_app(ApiSettings(db_pool_timeout_seconds=1.5))
    assert app.state.engine.pool.timeout() == 1.5
