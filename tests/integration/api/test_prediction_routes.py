"""GET /api/v1/prediction/{uuid}: the original shape, frame order, paging, one row per frame."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

import pytest
from api_test_support import add_scenario
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from vap_api.main import create_app
from vap_api.settings import ApiSettings
from vap_common.lifecycle import ScenarioStatus

_INSERT = text(
    "INSERT INTO scenario_results (scenario_uuid, run_id, frame_number, detections, timestamp) "
    "VALUES (:scenario_uuid, :run_id, :frame_number, CAST(:detections AS jsonb), :timestamp)"
)


def _store(engine: Engine, scenario_uuid: uuid.UUID, frames: Iterable[int], *, run_id: str = "run-1", label: str = "person") -> None:
    rows = [
        {
            "scenario_uuid": scenario_uuid,
            "run_id": run_id,
            "frame_number": number,
            "detections": json.dumps([{"class": label, "confidence": 0.75, "bbox": [1.0, 2.0, 3.5, 4.0]}]),
            "timestamp": f"2026-11-25T12:00:00.{number + 1:06d}Z",
        }
        for number in frames
    ]
    with engine.begin() as connection:
        connection.execute(_INSERT, rows)


def _frames(response: Any) -> list[int]:
    return [item["frame_number"] for item in response.json()["results"]]


def test_prediction_has_the_original_shape_ordered_by_frame(client: TestClient, db_engine: Engine, session_factory: sessionmaker[Session]) -> None:
    scenario_uuid = add_scenario(session_factory, status=ScenarioStatus.ACTIVE)
    _store(db_engine, scenario_uuid, [2, 0, 1])  # stored out of order

    response = client.get(f"/api/v1/prediction/{scenario_uuid}")

    assert response.status_code == 200
    assert response.json() == {
        "scenario_uuid": str(scenario_uuid),
        "status": "active",
        "results": [
            {
                "frame_number": number,
                "detections": [{"class": "person", "confidence": 0.75, "bbox": [1.0, 2.0, 3.5, 4.0]}],
                "timestamp": f"2026-11-25T12:00:00.{number + 1:06d}Z",
            }
            for number in (0, 1, 2)
        ],
    }


def test_prediction_of_a_scenario_without_results_is_empty(client: TestClient, session_factory: sessionmaker[Session]) -> None:
    scenario_uuid = add_scenario(session_factory)
    assert client.get(f"/api/v1/prediction/{scenario_uuid}").json() == {"scenario_uuid": str(scenario_uuid), "status": "init_startup", "results": []}


def test_prediction_pages_with_after_frame_and_a_bounded_limit(api_settings: ApiSettings, db_engine: Engine, session_factory: sessionmaker[Session]) -> None:
    scenario_uuid = add_scenario(session_factory, status=ScenarioStatus.ACTIVE)
    _store(db_engine, scenario_uuid, range(130))
    other = add_scenario(session_factory)
    _store(db_engine, other, range(5))
    settings = api_settings.model_copy(update={"prediction_default_limit": 20, "prediction_max_limit": 50})
    with TestClient(create_app(settings)) as client:
        url = f"/api/v1/prediction/{scenario_uuid}"
        first = client.get(url)
        capped = client.get(url, params={"limit": 10_000})
        after = client.get(url, params={"after_frame": 119, "limit": 5})
        tail = client.get(url, params={"after_frame": 125})
        done = client.get(url, params={"after_frame": 129})

        seen: list[int] = []
        last = -1
        while page := _frames(client.get(url, params={"after_frame": last, "limit": 50})):
            seen += page
            last = page[-1]

    assert _frames(first) == list(range(20))
    assert _frames(capped) == list(range(50))
    assert _frames(after) == [120, 121, 122, 123, 124]
    assert _frames(tail) == [126, 127, 128, 129]
    assert _frames(done) == []
    assert seen == list(range(130))


def test_prediction_returns_each_frame_once_across_runner_restarts(client: TestClient, db_engine: Engine, session_factory: sessionmaker[Session]) -> None:
    scenario_uuid = add_scenario(session_factory, status=ScenarioStatus.ACTIVE)
    _store(db_engine, scenario_uuid, range(6), run_id="run-1", label="first-run")
    _store(db_engine, scenario_uuid, range(4, 10), run_id="run-2", label="second-run")  # restarted, re-analysed 4 and 5

    results = client.get(f"/api/v1/prediction/{scenario_uuid}").json()["results"]

    assert [item["frame_number"] for item in results] == list(range(10))
    assert [item["detections"][0]["class"] for item in results] == ["first-run"] * 6 + ["second-run"] * 4


def test_prediction_of_unknown_scenario_is_404(client: TestClient) -> None:
    response = client.get(f"/api/v1/prediction/{uuid.uuid4()}")
    assert response.status_code == 404 and "not found" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "params", "location"),
    [
        ("/api/v1/prediction/xyz", {}, ["path", "scenario_uuid"]),
        ("/api/v1/prediction/{uuid}", {"limit": 0}, ["query", "limit"]),
        ("/api/v1/prediction/{uuid}", {"limit": "ten"}, ["query", "limit"]),
        ("/api/v1/prediction/{uuid}", {"after_frame": -2}, ["query", "after_frame"]),
    ],
)
def test_prediction_rejects_malformed_parameters(client: TestClient, path: str, params: dict[str, Any], location: list[str]) -> None:
    response = client.get(path.format(uuid=uuid.uuid4()), params=params)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == location
