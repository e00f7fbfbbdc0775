"""POST /scenario/init answers 429 (JSON, Retry-After) while max_starting_scenarios are still starting;
replays of an existing Idempotency-Key still answer 200."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.api.api_test_support import add_scenario
from vap_api.settings import ApiSettings
from vap_common.lifecycle import ScenarioStatus
from vap_common.schema import OutboxScenario, Scenario

INIT = "/api/v1/scenario/init"
BODY = {"camera_url": "rtsp://cam.example/queue"}


@pytest.fixture
def small_queue_client(api_settings: ApiSettings, make_client: Callable[..., TestClient]) -> Iterator[TestClient]:
    settings = api_settings.model_copy(update={"max_starting_scenarios": 2})
    with make_client(settings, raise_server_exceptions=False) as client:
        yield client


def _rows(factory: sessionmaker[Session]) -> tuple[int, int]:
    with factory() as session:
        return (
            int(session.scalar(select(func.count()).select_from(Scenario)) or 0),
            int(session.scalar(select(func.count()).select_from(OutboxScenario)) or 0),
        )


def test_init_is_429_while_the_start_queue_is_full_and_admits_again_once_one_started(
    small_queue_client: TestClient, session_factory: sessionmaker[Session], db_engine: Engine
) -> None:
    for status in (ScenarioStatus.ACTIVE, ScenarioStatus.INACTIVE, ScenarioStatus.FAILED, ScenarioStatus.INIT_SHUTDOWN):
        add_scenario(session_factory, status=status)  # not starting: not counted
    first = small_queue_client.post(INIT, json=BODY)
    starting = add_scenario(session_factory, status=ScenarioStatus.IN_STARTUP_PROCESSING)

    refused = small_queue_client.post(INIT, json=BODY, headers={"Idempotency-Key": "later"})

    assert first.status_code == 201
    assert refused.status_code == 429, refused.text
    assert refused.headers["retry-after"] == "5" and refused.headers["content-type"] == "application/json"
    assert refused.json() == {"detail": "2 or more scenarios are still starting; retry later"}
    assert _rows(session_factory) == (6, 1)
    with db_engine.begin() as connection:
        connection.execute(text("UPDATE scenarios SET status = 'active' WHERE scenario_uuid = :u"), {"u": starting})
    assert small_queue_client.post(INIT, json=BODY, headers={"Idempotency-Key": "later"}).status_code == 201


def test_replay_of_an_existing_idempotency_key_is_200_even_when_the_start_queue_is_full(
    small_queue_client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    first = small_queue_client.post(INIT, json=BODY, headers={"Idempotency-Key": "cam-1"})
    small_queue_client.post(INIT, json=BODY)

    replay = small_queue_client.post(INIT, json=BODY, headers={"Idempotency-Key": "cam-1"})
    changed = small_queue_client.post(
        INIT, json={"camera_url": "rtsp://cam.example/other"}, headers={"Idempotency-Key": "cam-1"}
    )
    new_key = small_queue_client.post(INIT, json=BODY, headers={"Idempotency-Key": "cam-2"})

    assert first.status_code == 201
    assert replay.status_code == 200 and replay.json() == first.json()
    assert changed.status_code == 422 and "different request" in changed.json()["detail"]
    assert new_key.status_code == 429 and new_key.headers["retry-after"] == "5"
    assert _rows(session_factory) == (2, 2)


def test_the_start_queue_limit_and_retry_after_come_from_the_settings(
    api_settings: ApiSettings, make_client: Callable[..., TestClient]
) -> None:
    settings = api_settings.model_copy(update={"max_starting_scenarios": 1, "start_queue_retry_after_seconds": 17})
    with make_client(settings) as client:
        assert client.post(INIT, json=BODY).status_code == 201
        refused = client.post(INIT, json=BODY)
    assert (refused.status_code, refused.headers["retry-after"]) == (429, "17")
    assert "1 or more scenarios" in refused.json()["detail"]
