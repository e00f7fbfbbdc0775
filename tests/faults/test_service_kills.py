"""Each service killed with SIGKILL under load; supervisord (./dev/services) restarts it, nobody else
does. Every scenario ends final, every result is stored and served once, and a scenario registered
after the kill runs through the restarted service. A killed operator's runners are adopted by its
successor: no new run. And the inbox or the operator frozen (SIGSTOP, starved of CPU) for longer than
its consumers' session timeout, then thawed: it takes up its work again without a person.
"""

from __future__ import annotations

import os
import signal
import time
import uuid

from tests.e2e.e2e_support import CAR_URL
from tests.faults.conftest import SESSION_TIMEOUT_SECONDS, PlatformFactory, Report
from tests.faults.harness import SERVICES, FaultEnd, api_reachable, db_now, run_case

SLOW = {"delay_ms": 400}


def test_each_service_killed_in_turn_is_restarted_by_supervisord(
    make_platform: PlatformFactory, report: Report
) -> None:
    """One platform, one load: the operator (its runners mid-file), then the other services killed one
    after the other (each once its predecessor is back), so a single run covers the four restarts."""
    platform = make_platform()

    def fault(_scenarios: list[uuid.UUID]) -> FaultEnd:
        steps = []
        for service in (
            "operator",
            *(name for name in SERVICES if name != "operator"),
        ):  # the operator while its runners run
            killed = time.monotonic()
            old = platform.supervised.kill(service)  # returns once supervisord has spawned its successor
            respawned = time.monotonic() - killed
            new = platform.supervised.wait_running(service, other_than=old, timeout_seconds=60)
            if service == "api":
                while not api_reachable(platform.supervised.api_url):
                    assert time.monotonic() - killed < 60, "the restarted API is not ready after 60 s"
                    time.sleep(0.2)
            steps.append(
                f"{service} respawned {respawned:.1f}s after (pid {old} -> {new}), "
                f"RUNNING {time.monotonic() - killed:.1f}s after"
            )
        return FaultEnd(
            "each service killed (-9) in turn: " + "; ".join(steps),
            db_now(platform.engine),
            recovery_from="first result stored after the last respawn",
        )

    # Slower frames (~40 s a file): the scenarios outlast the four kills (~25 s) and store after them.
    figures = run_case(
        platform, report, "kill-each-service", fault, camera_url=CAR_URL, settings={"delay_ms": 1000}, load=3
    )
    assert figures.exits == dict.fromkeys(SERVICES, 1), (
        f"supervisord should have seen each service exit once: {figures.exits}"
    )
    loaded = figures.scenarios[:-1]  # the last one was registered after the kills
    assert all(s.runs == 1 for s in loaded), (
        f"the restarted operator did not adopt every runner: { {str(s.scenario_uuid): s.runs for s in loaded} }"
    )


def test_consumer_services_frozen_longer_than_the_session_timeout(
    make_platform: PlatformFactory, report: Report
) -> None:
    """A consumer starved of CPU (SIGSTOP) past its session timeout: the broker gives its partitions
    away, and when it runs again its assignment is lost (_ASSIGNMENT_LOST, issue 12 defect 1). It must
    take its partitions back by itself, or exit and be restarted by supervisord, and a scenario
    registered while it was frozen must run. The inbox, then the operator."""
    platform = make_platform()
    frozen_seconds = 3 * SESSION_TIMEOUT_SECONDS

    def fault(_scenarios: list[uuid.UUID]) -> FaultEnd:
        during = []
        for service in ("inbox", "operator"):
            pid = platform.pids()[service]
            frozen = time.monotonic()
            os.kill(pid, signal.SIGSTOP)
            try:
                during.append(platform.api.init(CAR_URL, name=f"registered while the {service} is frozen"))
                time.sleep(max(0.0, frozen_seconds - (time.monotonic() - frozen)))
            finally:
                os.kill(pid, signal.SIGCONT)
        return FaultEnd(
            f"inbox, then operator frozen (SIGSTOP) {frozen_seconds} s each, then thawed",
            db_now(platform.engine),
            registered_during=tuple(during),
        )

    run_case(platform, report, "frozen-inbox-then-operator", fault, camera_url=CAR_URL, settings=SLOW, load=3)
