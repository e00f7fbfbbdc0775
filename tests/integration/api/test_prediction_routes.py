"""GET /api/v1/prediction/{uuid} through the real app on PostgreSQL: the shape, stored order, the
cursor across runner restarts (live: every run served; file: each frame once), after_frame, errors."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.api.api_test_support import add_scenario, follow, identities, page, store
from vap_api.settings import ApiSettings
from vap_common.lifecycle import ScenarioStatus

FILE_URL = "file:///media/car-detection.mp4"


def test_prediction_has_the_original_shape_with_run_id_and_next_cursor(
    client: TestClient, db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    scenario_uuid = add_scenario(session_factory, status=ScenarioStatus.ACTIVE)
    store(db_engine, scenario_uuid, [2, 0, 1])  # one transaction, in this order

    body = page(client, scenario_uuid)

    assert body == {
        "scenario_uuid": str(scenario_uuid),
        "status": "active",
        "results": [
            {
                "frame_number": number,
                "run_id": "run-1",
                "detections": [{"class": "person", "confidence": 0.75, "bbox": [1.0, 2.0, 3.5, 4.0]}],
                "timestamp": f"2026-11-25T12:00:00.{number + 1:06d}Z",
            }
            for number in (2, 0, 1)  # the order they were stored
        ],
        "next_cursor": body["next_cursor"],
    }
    assert isinstance(body["next_cursor"], str)
    # The page was short: its cursor is where to go on from, and nothing is there yet.
    assert page(client, scenario_uuid, cursor=body["next_cursor"]) == {**body, "results": []}


def test_a_poller_following_next_cursor_from_an_empty_scenario_gets_each_result_once(
    client: TestClient, db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    scenario_uuid = add_scenario(session_factory)
    empty = page(client, scenario_uuid)
    assert (empty["status"], empty["results"]) == ("init_startup", []) and empty["next_cursor"]
    seen: list[tuple[str, int]] = []
    cursor = empty["next_cursor"]
    for batch in (range(3), range(3, 4), range(4, 9)):
        store(db_engine, scenario_uuid, batch)
        pages, cursor = follow(client, scenario_uuid, cursor=cursor, limit=2)
        seen += identities(result for results in pages for result in results)
        assert page(client, scenario_uuid, cursor=cursor)["results"] == []  # caught up
    assert seen == [("run-1", number) for number in range(9)]


def test_prediction_pages_with_a_bounded_limit_and_keeps_after_frame_as_a_filter(
    api_settings: ApiSettings,
    make_client: Callable[..., TestClient],
    db_engine: Engine,
    session_factory: sessionmaker[Session],
) -> None:
    scenario_uuid = add_scenario(session_factory, status=ScenarioStatus.ACTIVE)
    store(db_engine, scenario_uuid, range(130))
    other = add_scenario(session_factory)
    store(db_engine, other, range(5))
    settings = api_settings.model_copy(update={"prediction_default_limit": 20, "prediction_max_limit": 50})
    with make_client(settings) as client:
        first = page(client, scenario_uuid)
        capped = page(client, scenario_uuid, limit=10_000)
        pages, _ = follow(client, scenario_uuid, limit=50)
        # Older clients: after_frame filters (frame_number > after_frame), with or without the cursor.
        after = page(client, scenario_uuid, after_frame=119, limit=5)
        tail = page(client, scenario_uuid, after_frame=125)
        done = page(client, scenario_uuid, after_frame=129)
        old_style: list[int] = []
        last = -1
        while numbers := [
            item["frame_number"] for item in page(client, scenario_uuid, after_frame=last, limit=50)["results"]
        ]:
            old_style += numbers
            last = numbers[-1]
        filtered, _ = follow(client, scenario_uuid, limit=7, after_frame=100)

    def numbers_of(results: Iterable[dict[str, Any]]) -> list[int]:
        return [item["frame_number"] for item in results]

    assert numbers_of(first["results"]) == list(range(20))
    assert numbers_of(capped["results"]) == list(range(50))
    assert [len(results) for results in pages] == [50, 50, 30]
    assert numbers_of(result for results in pages for result in results) == list(range(130))
    assert numbers_of(after["results"]) == [120, 121, 122, 123, 124]
    assert numbers_of(tail["results"]) == [126, 127, 128, 129]
    assert done["results"] == [] and done["next_cursor"]
    assert old_style == list(range(130))
    assert numbers_of(result for results in filtered for result in results) == list(range(101, 130))


def test_a_live_scenario_serves_every_run_once_in_stored_order_across_a_runner_restart(
    client: TestClient, db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    scenario_uuid = add_scenario(session_factory, status=ScenarioStatus.ACTIVE)  # rtsp://
    store(db_engine, scenario_uuid, range(10), run_id="run-a", label="first-run")
    polled, cursor = follow(client, scenario_uuid, limit=3)  # a poller read run A up to its end
    store(db_engine, scenario_uuid, range(10), run_id="run-b", label="second-run")  # restarted: frames from 0 again
    rest, _ = follow(client, scenario_uuid, cursor=cursor, limit=3)
    from_start, _ = follow(client, scenario_uuid, limit=3)

    run_a, run_b = [("run-a", number) for number in range(10)], [("run-b", number) for number in range(10)]
    assert identities(result for results in polled for result in results) == run_a
    assert identities(result for results in rest for result in results) == run_b
    assert [len(results) for results in from_start] == [3, 3, 3, 3, 3, 3, 2]
    results = [result for results in from_start for result in results]
    assert identities(results) == run_a + run_b
    assert [item["detections"][0]["class"] for item in results] == ["first-run"] * 10 + ["second-run"] * 10
    # Old clients' after_frame cannot tell the runs apart: it hides run B's frames up to the one given.
    assert identities(page(client, scenario_uuid, after_frame=6)["results"]) == [
        ("run-a", 7),
        ("run-a", 8),
        ("run-a", 9),
        *run_b[7:],
    ]


def test_a_file_scenario_rerun_serves_each_frame_once(
    client: TestClient, db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    scenario_uuid = add_scenario(session_factory, status=ScenarioStatus.ACTIVE, camera_url=FILE_URL)
    store(db_engine, scenario_uuid, range(6), run_id="run-a", label="first-run")  # killed after frame 5
    polled, cursor = follow(client, scenario_uuid, limit=4)
    store(db_engine, scenario_uuid, range(4), run_id="run-b", label="second-run")  # re-reads the file from 0
    caught_up, cursor = follow(client, scenario_uuid, cursor=cursor, limit=4)
    store(db_engine, scenario_uuid, range(4, 10), run_id="run-b", label="second-run")
    rest, _ = follow(client, scenario_uuid, cursor=cursor, limit=4)
    from_start, _ = follow(client, scenario_uuid, limit=3)

    assert identities(result for results in polled for result in results) == [("run-a", number) for number in range(6)]
    assert caught_up == [[]]  # run B's frames 0-3 were served already, by run A
    assert identities(result for results in rest for result in results) == [
        ("run-b", number) for number in range(6, 10)
    ]
    assert [len(results) for results in from_start] == [3, 3, 3, 1]  # full pages: duplicates are skipped, not counted
    results = [result for results in from_start for result in results]
    assert [item["frame_number"] for item in results] == list(range(10))
    assert [item["detections"][0]["class"] for item in results] == ["first-run"] * 6 + ["second-run"] * 4
    assert identities(page(client, scenario_uuid, after_frame=3, limit=3)["results"]) == [
        ("run-a", 4),
        ("run-a", 5),
        ("run-b", 6),
    ]


def test_prediction_of_unknown_scenario_is_404(client: TestClient) -> None:
    for params in ({}, {"cursor": "MC4w"}, {"after_frame": 3}):
        response = client.get(f"/api/v1/prediction/{uuid.uuid4()}", params=params)
        assert response.status_code == 404 and "not found" in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "params", "location"),
    [
        ("/api/v1/prediction/xyz", {}, ["path", "scenario_uuid"]),
        ("/api/v1/prediction/{uuid}", {"limit": 0}, ["query", "limit"]),
        ("/api/v1/prediction/{uuid}", {"limit": "ten"}, ["query", "limit"]),
        ("/api/v1/prediction/{uuid}", {"after_frame": -2}, ["query", "after_frame"]),
        ("/api/v1/prediction/{uuid}", {"cursor": "garbage!"}, ["query", "cursor"]),
        ("/api/v1/prediction/{uuid}", {"cursor": "MTIzNA"}, ["query", "cursor"]),  # "1234": no separator
        ("/api/v1/prediction/{uuid}", {"cursor": "x" * 101}, ["query", "cursor"]),
    ],
)
def test_prediction_rejects_malformed_parameters(
    client: TestClient, path: str, params: dict[str, Any], location: list[str]
) -> None:
    response = client.get(path.format(uuid=uuid.uuid4()), params=params)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == location


def test_the_openapi_description_names_the_cursor_as_the_paging_key(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/api/v1/prediction/{scenario_uuid}"]["get"]
    assert "the cursor is the paging key" in operation["description"].lower()
    assert {parameter["name"] for parameter in operation["parameters"]} == {
        "scenario_uuid",
        "cursor",
        "after_frame",
        "limit",
    }
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert {"next_cursor"} <= set(schema["PredictionOut"]["required"]) and "run_id" in schema["FrameOut"]["required"]
