"""PostgreSQL goes away under a real uvicorn server: every request answers 503 (JSON, Retry-After) on a
kept-alive connection, fast, logged once without a traceback; the API recovers as soon as it is back.

The app reaches the real PostgreSQL through a TCP proxy (tests/tcp_proxy.py) that the tests cut and restore.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from http.client import HTTPConnection
from typing import Any

import pytest
from sqlalchemy import make_url

from tests.integration.api.api_test_support import bearer, serve
from tests.tcp_proxy import TcpProxy
from vap_api.errors import DATABASE_UNAVAILABLE
from vap_api.main import create_app
from vap_api.settings import ApiSettings
from vap_common.settings import DatabaseSettings

INIT_BODY = {"camera_url": "rtsp://cam.example/outage"}


@pytest.fixture
def proxy(db_settings: DatabaseSettings) -> Iterator[TcpProxy]:
    url = make_url(db_settings.url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as running:
        yield running


class ApiConnection(HTTPConnection):
    """A keep-alive connection to the served app that sends the test's API key."""

    def __init__(self, port: int, api_key: str, *, timeout: float) -> None:
        super().__init__("127.0.0.1", port, timeout=timeout)
        self.auth = bearer(api_key)


@pytest.fixture
def connect(db_settings: DatabaseSettings, proxy: TcpProxy, api_key: str) -> Iterator[Callable[..., ApiConnection]]:
    """``connect(timeout=...)``: a connection to the real app under uvicorn, its database URL pointing
    at the proxy (same schema)."""
    proxied = make_url(db_settings.url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = ApiSettings(
        database=db_settings.model_copy(update={"url": proxied}), environment="test", access_log=False
    )
    with serve(create_app(settings)) as port:
        yield partial(ApiConnection, port, api_key)


def _request(
    connection: ApiConnection, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, dict[str, str], Any]:
    payload = json.dumps(body).encode() if body is not None else None
    headers = {**connection.auth, **({"Content-Type": "application/json"} if payload else {})}
    connection.request(method, path, body=payload, headers=headers)
    response = connection.getresponse()
    return response.status, {name.lower(): value for name, value in response.getheaders()}, json.loads(response.read())


def _outage_requests(scenario_uuid: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("GET", f"/api/v1/scenario/{scenario_uuid}", None),
        ("GET", f"/api/v1/prediction/{scenario_uuid}", None),
        ("POST", "/api/v1/scenario/init", INIT_BODY),
        ("GET", "/readyz", None),
    ]


def test_requests_answer_503_with_retry_after_while_postgresql_is_cut_and_recover_within_2_s(
    connect: Callable[..., ApiConnection],
    proxy: TcpProxy,
    db_settings: DatabaseSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    connection = connect(timeout=15)
    status, _, created = _request(connection, "POST", "/api/v1/scenario/init", INIT_BODY)
    assert status == 201
    requests = _outage_requests(created["scenario_uuid"])
    assert [_request(connection, method, path, body)[0] for method, path, body in requests] == [200, 200, 201, 200]
    kept_alive = connection.sock

    caplog.set_level(logging.INFO)
    proxy.cut()
    answers = []
    for method, path, body in requests:
        started = time.monotonic()
        answers.append((*_request(connection, method, path, body), time.monotonic() - started))
        assert connection.sock is kept_alive, f"{method} {path}: the server closed the client's connection"
    proxy.restore()
    restored = time.monotonic()
    status, _, _ = _request(connection, "GET", f"/api/v1/scenario/{created['scenario_uuid']}")
    recovery_seconds = time.monotonic() - restored

    for (method, path, _body), (status_code, headers, answer, seconds) in zip(requests, answers, strict=True):
        assert status_code == 503, (method, path, answer)
        assert headers["content-type"] == "application/json" and headers["retry-after"] == "2"
        assert answer == (
            {"status": "unavailable", "detail": "database unreachable"}
            if path == "/readyz"
            else {"detail": DATABASE_UNAVAILABLE}
        )
        assert seconds < 1.0, f"{method} {path} took {seconds:.2f} s to answer"
    assert status == 200 and recovery_seconds < 2.0, recovery_seconds
    assert connection.sock is kept_alive
    warnings = [record for record in caplog.records if record.getMessage() == "database unavailable"]
    assert [(record.levelno, getattr(record, "path", "")) for record in warnings] == [
        (logging.WARNING, path) for _, path, _ in requests[:3]
    ]
    assert not [record for record in caplog.records if record.exc_info or record.levelno >= logging.ERROR]
    password = make_url(db_settings.url).password
    assert password and all(
        password not in record.getMessage() + json.dumps(record.__dict__, default=str) for record in caplog.records
    )


def test_a_database_that_accepts_but_never_answers_is_a_503_within_the_connect_timeout(
    connect: Callable[..., ApiConnection], proxy: TcpProxy
) -> None:
    connection = connect(timeout=30)
    status, _, created = _request(connection, "POST", "/api/v1/scenario/init", INIT_BODY)
    assert status == 201

    proxy.cut(stall=True)
    for method, path, body in _outage_requests(created["scenario_uuid"]):
        started = time.monotonic()
        status, headers, _ = _request(connection, method, path, body)
        seconds = time.monotonic() - started
        assert (status, headers["retry-after"]) == (503, "2") and seconds < 4.0, (method, path, status, seconds)


def test_more_concurrent_requests_than_pooled_connections_all_answer_503_within_seconds(
    connect: Callable[..., ApiConnection], proxy: TcpProxy
) -> None:
    proxy.cut(stall=True)
    results: list[tuple[int, float]] = []
    lock = threading.Lock()

    def get_one() -> None:
        connection = connect(timeout=30)
        started = time.monotonic()
        status, _, _ = _request(connection, "GET", f"/api/v1/scenario/{uuid.uuid4()}")
        with lock:
            results.append((status, time.monotonic() - started))

    # More requests than the pool has connections (5 + 10 overflow): the rest wait for one, at most
    # db_pool_timeout_seconds, then either time out or connect and time out (2 + 2 s).
    threads = [threading.Thread(target=get_one) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(status for status, _ in results) == [503] * 20
    assert max(seconds for _, seconds in results) < 6.0, sorted(seconds for _, seconds in results)
