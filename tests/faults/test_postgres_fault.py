"""PostgreSQL stopped (pg_ctl stop -m fast: every session cut) for about 10 s under load, then started
again: the operator and its runners keep running (the same processes, no new run), the inbox and the
relay resume by themselves, and every scenario ends final with every result stored and served once.
"""

from __future__ import annotations

import collections
import time
import uuid

import httpx2
from sqlalchemy import text

from tests.e2e.e2e_support import CAR_URL, Api, runner_pids
from tests.faults.conftest import PlatformFactory, Report
from tests.faults.harness import FaultEnd, db_now, run_case

# Up to 800 ms per frame (400 ms on average): a file scenario lasts ~30 s, longer than the outage.
SLOWER = {"delay_ms": 800}
OUTAGE_SECONDS = 10


def test_postgres_stopped_for_10_seconds(make_platform: PlatformFactory, report: Report) -> None:
    platform = make_platform()
    operator_pid = platform.pids()["operator"]
    survivors: dict[uuid.UUID, int] = {}
    answers: list[tuple[str, int, str | None]] = []

    def fault(scenarios: list[uuid.UUID]) -> FaultEnd:
        with platform.engine.connect() as connection:
            pids: dict[uuid.UUID, int] = dict(
                connection.execute(
                    text(
                        "SELECT scenario_uuid, process_pid FROM workers WHERE scenario_uuid = ANY(CAST(:ids AS uuid[]))"
                    ),
                    {"ids": [str(s) for s in scenarios]},
                ).all()
            )
        assert all(pids.get(s) in runner_pids(s) for s in scenarios), (
            f"workers.process_pid is not the runner of each scenario: {pids}"
        )
        stopped = time.monotonic()
        platform.postgres.stop()
        while time.monotonic() - stopped < OUTAGE_SECONDS:
            answers.extend(probe_api(platform.api, scenarios[0]))
            time.sleep(1)
        platform.postgres.start()
        platform.postgres.wait_ready()
        outage = time.monotonic() - stopped
        # Right after the outage: every runner that ran before it still runs, under the same operator.
        survivors.update({s: pid for s, pid in pids.items() if pid in runner_pids(s)})
        assert platform.pids().get("operator") == operator_pid, (
            f"the operator was restarted during the outage: {platform.exits()}"
        )
        assert survivors == pids, (
            f"runners gone during the outage: {sorted(set(pids.items()) - set(survivors.items()))}"
        )
        codes = collections.Counter(code for _, code, _ in answers)
        return FaultEnd(
            f"PostgreSQL stopped (fast) {outage:.1f}s, runners alive after it {len(survivors)} of {len(pids)}, "
            f"API answers during it {dict(sorted(codes.items()))}",
            db_now(platform.engine),
        )

    figures = run_case(platform, report, "postgres-stop", fault, camera_url=CAR_URL, settings=SLOWER, load=3)
    assert figures.exits["operator"] == 0, f"supervisord restarted the operator: {figures.exits}"
    assert platform.pids()["operator"] == operator_pid
    loaded = [s for s in figures.scenarios if s.scenario_uuid in survivors]
    assert all(s.runs == 1 for s in loaded), (
        f"a runner was replaced by a new run: { {str(s.scenario_uuid): s.runs for s in loaded} }"
    )
    assert figures.runner_restarts == 0, f"runners restarted: {figures.runner_restarts}"
    # The API tells a client to come back later while its database is away (503 + Retry-After), never 500.
    wrong = [answer for answer in answers if answer[1] != 503 or answer[2] is None]
    assert not wrong, (
        f"API answers during the outage other than 503 with Retry-After (path, status, Retry-After): {wrong[:6]}"
    )


def probe_api(api: Api, scenario: uuid.UUID) -> list[tuple[str, int, str | None]]:
    """(path, status code, Retry-After) of the reads a client makes, or 0 when nothing answered."""
    answers = []
    for path in (f"/api/v1/scenario/{scenario}", f"/api/v1/prediction/{scenario}", "/api/v1/scenarios"):
        try:
            response = api.http.get(path, timeout=10)
            answers.append((path, response.status_code, response.headers.get("retry-after")))
        except httpx2.TransportError:
            answers.append((path, 0, None))
    return answers
