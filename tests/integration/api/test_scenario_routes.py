"""Scenario endpoints on the real app and PostgreSQL: success and error paths, outbox atomicity."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.api.api_test_support import add_scenario
from vap_api.settings import ApiSettings
from vap_common.contracts import ScenarioCommand
from vap_common.lifecycle import SHUTDOWN_NOOP_STATES, ScenarioStatus
from vap_common.schema import OutboxScenario, Scenario

INIT = "/api/v1/scenario/init"


def _outbox(factory: sessionmaker[Session]) -> list[OutboxScenario]:
    with factory() as session:
        return list(session.scalars(select(OutboxScenario).order_by(OutboxScenario.id)))


def _count(factory: sessionmaker[Session], model: type[Any]) -> int:
    with factory() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


# --- init ------------------------------------------------------------------------------------------


def test_init_writes_scenario_and_start_command_together(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    body = {
        "camera_url": "rtsp://cam.example:8554/live",
        "name": "gate",
        "detector": {"name": "hog_person", "settings": {"hit_threshold": 0.4}},
    }
    response = client.post(INIT, json=body)

    assert response.status_code == 201
    answer = response.json()
    assert answer == {"scenario_uuid": answer["scenario_uuid"], "status": "init_startup"}
    scenario_uuid = uuid.UUID(answer["scenario_uuid"])
    with session_factory() as session:
        scenario = session.get(Scenario, scenario_uuid)
    assert scenario is not None
    assert (scenario.status, scenario.camera_url, scenario.name, scenario.detector, scenario.detector_settings) == (
        "init_startup",
        "rtsp://cam.example:8554/live",
        "gate",
        "hog_person",
        {"hit_threshold": 0.4},
    )
    [row] = _outbox(session_factory)
    assert (row.scenario_uuid, row.topic, row.event_type, row.published_at) == (
        scenario_uuid,
        "init_scenario",
        "start",
        None,
    )
    command = ScenarioCommand.model_validate(row.payload)
    assert (command.command, command.camera_url, command.detector.name, command.detector.settings) == (
        "start",
        "rtsp://cam.example:8554/live",
        "hog_person",
        {"hit_threshold": 0.4},
    )


def test_init_stores_the_camera_url_with_its_scheme_lower_cased(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    """RTSP://... was stored as sent and then failed by the kubernetes runtime (InvalidConfig)."""
    scenario_uuid = uuid.UUID(client.post(INIT, json={"camera_url": "RTSP://Cam.Example/Live"}).json()["scenario_uuid"])
    with session_factory() as session:
        scenario = session.get(Scenario, scenario_uuid)
        command = session.scalars(select(OutboxScenario).where(OutboxScenario.scenario_uuid == scenario_uuid)).one()
    assert scenario is not None and scenario.camera_url == "rtsp://Cam.Example/Live"
    assert command.payload["camera_url"] == "rtsp://Cam.Example/Live"


def test_init_defaults_to_the_mock_detector(client: TestClient) -> None:
    scenario_uuid = client.post(INIT, json={"camera_url": "https://cam.example/mjpeg"}).json()["scenario_uuid"]
    scenario = client.get(f"/api/v1/scenario/{scenario_uuid}").json()
    assert scenario["detector"] == {"name": "mock", "settings": {}} and scenario["name"] is None


@pytest.mark.parametrize(
    ("body", "location", "message"),
    [
        ({"camera_url": "ftp://cam.example/x"}, ["body", "camera_url"], "scheme 'ftp' is not allowed"),
        ({"camera_url": "cam.example/stream"}, ["body", "camera_url"], "scheme missing is not allowed"),
        ({"camera_url": "rtsp:///stream"}, ["body", "camera_url"], "needs a host"),
        ({"camera_url": "rtsp://cam.example:99999/s"}, ["body", "camera_url"], "not a valid URL"),
        ({"camera_url": "rtsp://cam.example/a b"}, ["body", "camera_url"], "whitespace"),
        ({"camera_url": "rtsp://cam.example/" + "a" * 3000}, ["body", "camera_url"], "longer than 2048"),
        ({"camera_url": "file:///videos/a.mp4"}, ["body", "camera_url"], "scheme 'file' is not allowed"),
        ({"camera_url": ""}, ["body", "camera_url"], "at least 1 character"),
        ({}, ["body", "camera_url"], "Field required"),
        ({"camera_url": 7}, ["body", "camera_url"], "valid string"),
        ({"camera_url": "rtsp://c/s", "extra": 1}, ["body", "extra"], "Extra inputs"),
        (
            {"camera_url": "rtsp://c/s", "detector": {"name": "mock", "settings": {"max_detections": -1}}},
            ["body", "detector", "settings", "max_detections"],
            "greater than or equal to 0",
        ),
        (
            {"camera_url": "rtsp://c/s", "detector": {"name": "yolo"}},
            ["body", "detector", "name"],
            "unknown detector 'yolo'",
        ),
        (
            {"camera_url": "rtsp://c/s", "detector": {"settings": [1, 2]}},
            ["body", "detector", "settings"],
            "valid dictionary",
        ),
        (
            {"camera_url": "rtsp://c/s", "detector": {"settings": {"x": "y" * 20000}}},
            ["body", "detector", "settings"],
            "the limit is 16384",
        ),
        ({"camera_url": "rtsp://c/s", "name": "n" * 201}, ["body", "name"], "at most 200"),
    ],
)
def test_init_rejects_invalid_requests_with_422_and_writes_nothing(
    client: TestClient, session_factory: sessionmaker[Session], body: dict[str, Any], location: list[str], message: str
) -> None:
    response = client.post(INIT, json=body)

    assert response.status_code == 422, response.text
    [error] = [item for item in response.json()["detail"] if item["loc"] == location]
    assert message in error["msg"]
    assert "input" not in error  # pydantic would echo the rejected value (a URL may carry a password)
    assert _count(session_factory, Scenario) == 0 and _count(session_factory, OutboxScenario) == 0


def test_init_rejects_a_body_that_is_not_json(client: TestClient) -> None:
    response = client.post(INIT, content=b"camera_url=rtsp://c/s", headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"][0]["type"] == "json_invalid"


def test_file_urls_are_accepted_only_when_enabled(
    api_settings: ApiSettings, make_client: Callable[..., TestClient]
) -> None:
    settings = api_settings.model_copy(update={"allow_file_urls": True})
    with make_client(settings) as client:
        assert client.post(INIT, json={"camera_url": "file:///srv/media/people.mp4"}).status_code == 201
        response = client.post(INIT, json={"camera_url": "file://otherhost/srv/media/people.mp4"})
    assert response.status_code == 422 and "file:///absolute/path" in response.json()["detail"][0]["msg"]


def test_same_idempotency_key_returns_the_same_scenario(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    body = {"camera_url": "rtsp://cam.example/s"}
    first = client.post(INIT, json=body, headers={"Idempotency-Key": "order-42"})
    again = client.post(INIT, json=body, headers={"Idempotency-Key": "order-42"})
    other = client.post(INIT, json=body, headers={"Idempotency-Key": "order-43"})

    assert (first.status_code, again.status_code, other.status_code) == (201, 200, 201)
    assert again.json() == first.json()
    assert other.json()["scenario_uuid"] != first.json()["scenario_uuid"]
    assert _count(session_factory, Scenario) == 2 and _count(session_factory, OutboxScenario) == 2


def test_concurrent_requests_with_one_idempotency_key_create_one_scenario(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    barrier = threading.Barrier(6)
    answers: list[tuple[int, str]] = []

    def post() -> None:
        barrier.wait()
        response = client.post(INIT, json={"camera_url": "rtsp://cam.example/s"}, headers={"Idempotency-Key": "race"})
        answers.append((response.status_code, response.json()["scenario_uuid"]))

    threads = [threading.Thread(target=post) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(code for code, _ in answers) == [200] * 5 + [201]
    assert len({scenario_uuid for _, scenario_uuid in answers}) == 1
    assert _count(session_factory, Scenario) == 1 and _count(session_factory, OutboxScenario) == 1


def test_idempotency_key_reused_with_another_body_is_rejected(client: TestClient) -> None:
    assert client.post(INIT, json={"camera_url": "rtsp://a/s"}, headers={"Idempotency-Key": "k"}).status_code == 201
    response = client.post(INIT, json={"camera_url": "rtsp://b/s"}, headers={"Idempotency-Key": "k"})
    assert response.status_code == 422 and "different request" in response.json()["detail"]
    too_long = client.post(INIT, json={"camera_url": "rtsp://a/s"}, headers={"Idempotency-Key": "k" * 201})
    assert too_long.status_code == 422 and too_long.json()["detail"][0]["loc"] == ["header", "idempotency-key"]


def test_failure_after_the_scenario_insert_leaves_neither_row(
    client: TestClient, db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    # A real failure of the second statement of the transaction: the outbox refuses every new row.
    with db_engine.begin() as connection:
        connection.execute(text("ALTER TABLE outbox_scenario ADD CONSTRAINT ck_test_refuse CHECK (false) NOT VALID"))

    response = client.post(INIT, json={"camera_url": "rtsp://cam.example/s"})

    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}
    assert _count(session_factory, Scenario) == 0 and _count(session_factory, OutboxScenario) == 0


# --- get and list ----------------------------------------------------------------------------------


def test_get_returns_the_scenario_with_its_failure(client: TestClient, db_engine: Engine) -> None:
    scenario_uuid = client.post(INIT, json={"camera_url": "rtsp://cam.example/s"}).json()["scenario_uuid"]
    with db_engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE scenarios SET status = 'failed', error_reason = 'SourceUnreachable', "
                "error_message = 'no route' WHERE scenario_uuid = :u"
            ),
            {"u": scenario_uuid},
        )

    scenario = client.get(f"/api/v1/scenario/{scenario_uuid}").json()

    assert set(scenario) == {
        "scenario_uuid",
        "name",
        "status",
        "camera_url",
        "detector",
        "analysis_fps",
        "error_reason",
        "error_message",
        "created_at",
        "updated_at",
        "runtime",
    }
    assert (scenario["status"], scenario["error_reason"], scenario["error_message"]) == (
        "failed",
        "SourceUnreachable",
        "no route",
    )


def test_get_unknown_scenario_is_404_and_malformed_uuid_422(client: TestClient) -> None:
    missing = client.get(f"/api/v1/scenario/{uuid.uuid4()}")
    malformed = client.get("/api/v1/scenario/not-a-uuid")
    assert missing.status_code == 404 and "not found" in missing.json()["detail"]
    assert malformed.status_code == 422 and malformed.json()["detail"][0]["loc"] == ["path", "scenario_uuid"]


def test_list_filters_by_status_and_pages_with_a_cursor(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    created = [
        client.post(INIT, json={"camera_url": f"rtsp://cam{index}.example/s"}).json()["scenario_uuid"]
        for index in range(5)
    ]
    for scenario_uuid in created[:2]:
        assert client.post(f"/api/v1/scenario/{scenario_uuid}/shutdown").status_code == 202

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/scenarios", params=params).json()
        pages.append([item["scenario_uuid"] for item in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    stopping = client.get("/api/v1/scenarios", params={"status": "init_shutdown"}).json()

    assert [len(page) for page in pages] == [2, 2, 1]
    assert [item for page in pages for item in page] == list(reversed(created))  # newest first, each once
    assert sorted(item["scenario_uuid"] for item in stopping["items"]) == sorted(created[:2])
    assert all(item["status"] == "init_shutdown" for item in stopping["items"]) and stopping["next_cursor"] is None


@pytest.mark.parametrize(
    "params", [{"status": "running"}, {"limit": 0}, {"cursor": "garbage!"}, {"cursor": "MjAyNnxub3QtYS11dWlk"}]
)
def test_list_rejects_invalid_parameters(client: TestClient, params: dict[str, Any]) -> None:
    response = client.get("/api/v1/scenarios", params=params)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"][0] == "query"


# --- shutdown --------------------------------------------------------------------------------------


def test_shutdown_moves_to_init_shutdown_and_queues_the_command_after_the_start(
    client: TestClient, session_factory: sessionmaker[Session]
) -> None:
    scenario_uuid = client.post(
        INIT, json={"camera_url": "rtsp://cam.example/s", "detector": {"name": "motion"}}
    ).json()["scenario_uuid"]
    before = client.get(f"/api/v1/scenario/{scenario_uuid}").json()

    response = client.post(f"/api/v1/scenario/{scenario_uuid}/shutdown")

    assert response.status_code == 202
    assert response.json() == {"scenario_uuid": scenario_uuid, "status": "init_shutdown"}
    after = client.get(f"/api/v1/scenario/{scenario_uuid}").json()
    assert after["status"] == "init_shutdown" and after["updated_at"] > before["updated_at"]
    start, shutdown = _outbox(session_factory)
    assert (start.event_type, shutdown.event_type) == ("start", "shutdown") and start.id < shutdown.id
    command = ScenarioCommand.model_validate(shutdown.payload)
    assert (command.command, command.scenario_uuid, command.camera_url, command.detector.name) == (
        "shutdown",
        uuid.UUID(scenario_uuid),
        "rtsp://cam.example/s",
        "motion",
    )


@pytest.mark.parametrize("state", sorted(SHUTDOWN_NOOP_STATES))
def test_shutdown_of_stopping_or_stopped_scenario_is_noop(
    client: TestClient, session_factory: sessionmaker[Session], state: ScenarioStatus
) -> None:
    scenario_uuid = add_scenario(session_factory, status=state)

    response = client.post(f"/api/v1/scenario/{scenario_uuid}/shutdown")

    assert response.status_code == 200
    assert response.json() == {"scenario_uuid": str(scenario_uuid), "status": state.value}
    assert _outbox(session_factory) == []


@pytest.mark.parametrize("state", [ScenarioStatus.IN_STARTUP_PROCESSING, ScenarioStatus.ACTIVE])
def test_shutdown_of_starting_or_active_scenario_is_accepted(
    client: TestClient, session_factory: sessionmaker[Session], state: ScenarioStatus
) -> None:
    scenario_uuid = add_scenario(session_factory, status=state)
    assert client.post(f"/api/v1/scenario/{scenario_uuid}/shutdown").status_code == 202
    assert [row.event_type for row in _outbox(session_factory)] == ["shutdown"]


def test_repeated_shutdown_writes_one_command(client: TestClient, session_factory: sessionmaker[Session]) -> None:
    scenario_uuid = client.post(INIT, json={"camera_url": "rtsp://cam.example/s"}).json()["scenario_uuid"]
    codes = [client.post(f"/api/v1/scenario/{scenario_uuid}/shutdown").status_code for _ in range(3)]
    assert codes == [202, 200, 200]
    assert [row.event_type for row in _outbox(session_factory)] == ["start", "shutdown"]


def test_shutdown_unknown_scenario_is_404_and_malformed_uuid_422(client: TestClient) -> None:
    assert client.post(f"/api/v1/scenario/{uuid.uuid4()}/shutdown").status_code == 404
    assert client.post("/api/v1/scenario/1234/shutdown").status_code == 422
