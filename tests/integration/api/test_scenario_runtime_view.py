"""GET /scenario/{uuid} and /scenarios show the runtime's view of each runner (workers row, LEFT JOIN):
its lease, whether it is stale, why it waits, how often it restarted."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.api.api_test_support import add_scenario
from vap_api.settings import ApiSettings
from vap_common.lifecycle import ScenarioStatus

S = ScenarioStatus
NO_WORKER = object()  # the orchestrator has not written a workers row yet


def _add_worker(
    db_engine: Engine,
    scenario_uuid: uuid.UUID,
    *,
    heartbeat_age_seconds: float | None,
    wait_reason: str | None,
    restarts: int,
) -> None:
    """A workers row as the orchestrator and runtime write it; the lease's age set on the database's clock."""
    with db_engine.begin() as connection:
        connection.execute(
            text(
                """
                INSERT INTO workers (worker_id, scenario_uuid, camera_url, status, desired_state, restart_count,
                                     wait_reason, heartbeat_at)
                VALUES (:worker_id, :scenario_uuid, 'rtsp://cam.example/stream', 'running', 'active', :restarts,
                        :wait_reason,
                        CASE WHEN CAST(:age AS float8) IS NULL THEN NULL
                             ELSE now() - make_interval(secs => CAST(:age AS float8)) END)
                """
            ),
            {
                "worker_id": f"w-{scenario_uuid}",
                "scenario_uuid": scenario_uuid,
                "restarts": restarts,
                "wait_reason": wait_reason,
                "age": heartbeat_age_seconds,
            },
        )


@pytest.mark.parametrize(
    ("status", "worker", "stale"),
    [
        (S.ACTIVE, {"heartbeat_age_seconds": 1.0, "wait_reason": None, "restarts": 0}, False),
        (S.ACTIVE, {"heartbeat_age_seconds": 60.0, "wait_reason": None, "restarts": 2}, True),
        (S.ACTIVE, {"heartbeat_age_seconds": None, "wait_reason": None, "restarts": 0}, True),
        (S.ACTIVE, NO_WORKER, True),
        (S.IN_SHUTDOWN_PROCESSING, {"heartbeat_age_seconds": 45.0, "wait_reason": None, "restarts": 1}, True),
        (S.IN_SHUTDOWN_PROCESSING, {"heartbeat_age_seconds": 5.0, "wait_reason": None, "restarts": 1}, False),
        (
            S.IN_STARTUP_PROCESSING,
            {"heartbeat_age_seconds": None, "wait_reason": "runtime at capacity (4 of 4 runners)", "restarts": 0},
            False,
        ),
        (S.INIT_STARTUP, NO_WORKER, False),
        (S.INACTIVE, {"heartbeat_age_seconds": 3600.0, "wait_reason": None, "restarts": 5}, False),
        (S.FAILED, {"heartbeat_age_seconds": None, "wait_reason": None, "restarts": 3}, False),
    ],
)
def test_scenario_shows_its_runtime_lease_staleness_wait_reason_and_restarts(
    client: TestClient,
    session_factory: sessionmaker[Session],
    db_engine: Engine,
    status: ScenarioStatus,
    worker: object,
    stale: bool,
) -> None:
    scenario_uuid = add_scenario(session_factory, status=status)
    if isinstance(worker, dict):
        _add_worker(db_engine, scenario_uuid, **worker)
    expected = (
        worker if isinstance(worker, dict) else {"heartbeat_age_seconds": None, "wait_reason": None, "restarts": 0}
    )

    one = client.get(f"/api/v1/scenario/{scenario_uuid}").json()
    [listed] = client.get("/api/v1/scenarios").json()["items"]

    runtime = one["runtime"]
    assert listed["runtime"] == runtime
    assert (runtime["stale"], runtime["wait_reason"], runtime["restarts"]) == (
        stale,
        expected["wait_reason"],
        expected["restarts"],
    )
    assert (runtime["heartbeat_at"] is None) == (expected["heartbeat_age_seconds"] is None)
    if runtime["heartbeat_at"] is not None:
        with db_engine.connect() as connection:
            age_seconds = connection.execute(
                text("SELECT extract(epoch FROM now() - CAST(:t AS timestamptz))"), {"t": runtime["heartbeat_at"]}
            ).scalar_one()
        assert abs(float(age_seconds) - expected["heartbeat_age_seconds"]) < 5
        assert datetime.fromisoformat(runtime["heartbeat_at"]).tzinfo is not None
    assert one["status"] == status.value  # the lifecycle status itself is left as stored


def test_list_shows_each_scenario_with_its_own_runtime(
    client: TestClient, session_factory: sessionmaker[Session], db_engine: Engine
) -> None:
    fresh = add_scenario(session_factory, status=S.ACTIVE)
    lapsed = add_scenario(session_factory, status=S.ACTIVE)
    waiting = add_scenario(session_factory, status=S.IN_STARTUP_PROCESSING)
    _add_worker(db_engine, fresh, heartbeat_age_seconds=2.0, wait_reason=None, restarts=0)
    _add_worker(db_engine, lapsed, heartbeat_age_seconds=300.0, wait_reason=None, restarts=4)
    _add_worker(db_engine, waiting, heartbeat_age_seconds=None, wait_reason="capacity", restarts=0)

    pages = [client.get("/api/v1/scenarios", params={"limit": 2}).json()]
    pages.append(client.get("/api/v1/scenarios", params={"limit": 2, "cursor": pages[0]["next_cursor"]}).json())
    shown = {item["scenario_uuid"]: item["runtime"] for page in pages for item in page["items"]}

    assert {key: (value["stale"], value["wait_reason"], value["restarts"]) for key, value in shown.items()} == {
        str(fresh): (False, None, 0),
        str(lapsed): (True, None, 4),
        str(waiting): (False, "capacity", 0),
    }


def test_the_stale_threshold_comes_from_the_settings(
    api_settings: ApiSettings,
    make_client: Callable[..., TestClient],
    session_factory: sessionmaker[Session],
    db_engine: Engine,
) -> None:
    scenario_uuid = add_scenario(session_factory, status=S.ACTIVE)
    _add_worker(db_engine, scenario_uuid, heartbeat_age_seconds=10.0, wait_reason=None, restarts=0)
    strict = api_settings.model_copy(update={"runtime_stale_after_seconds": 5.0})

    with make_client(api_settings) as default_client, make_client(strict) as strict_client:
        assert default_client.get(f"/api/v1/scenario/{scenario_uuid}").json()["runtime"]["stale"] is False
        assert strict_client.get(f"/api/v1/scenario/{scenario_uuid}").json()["runtime"]["stale"] is True
