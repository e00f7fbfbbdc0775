"""The Kafka broker fails under load: killed for a short outage, killed for an outage longer than the
consumers' session timeout plus their stall timeout, and frozen (SIGSTOP: a broker starved of CPU)
for longer than the session timeout. Every consumer must recover by itself (or exit and be restarted
by supervisord, never by a person), and every result a runner published is stored and served once.
"""

from __future__ import annotations

import time
import uuid

from tests.e2e.e2e_support import CAR_URL
from tests.faults.conftest import SESSION_TIMEOUT_SECONDS, STALL_TIMEOUT_SECONDS, PlatformFactory, Report
from tests.faults.harness import FaultEnd, Figures, db_now, run_case

# Up to 400 ms per frame (200 ms on average): a file scenario lasts ~15-30 s on 2 cores.
SLOW = {"delay_ms": 400}


def test_broker_killed_for_a_short_outage(make_platform: PlatformFactory, report: Report) -> None:
    platform = make_platform()

    def fault(_scenarios: list[uuid.UUID]) -> FaultEnd:
        killed = time.monotonic()
        platform.broker.kill()
        during = platform.api.init(CAR_URL, name="registered while the broker is down")
        time.sleep(max(0.0, 5 - (time.monotonic() - killed)))
        platform.broker.start()
        platform.broker.wait_ready()
        return FaultEnd(
            f"broker killed (-9), restarted after 5 s, serving again {time.monotonic() - killed:.1f}s after the kill",
            db_now(platform.engine),
            registered_during=(during,),
        )

    run_case(platform, report, "broker-kill-short", fault, camera_url=CAR_URL, settings=SLOW)


def test_broker_killed_for_longer_than_session_and_stall_timeouts(
    make_platform: PlatformFactory, report: Report
) -> None:
    platform = make_platform()
    # The broker is away longer than the session timeout (every member loses its assignment) plus the
    # stall timeout; the runners hold their results meanwhile (they give up only after
    # VAP_DOWNSTREAM_OUTAGE_LIMIT_SECONDS, an hour by default).
    down_seconds = SESSION_TIMEOUT_SECONDS + STALL_TIMEOUT_SECONDS + 1

    def fault(_scenarios: list[uuid.UUID]) -> FaultEnd:
        killed = time.monotonic()
        platform.broker.kill()
        during = platform.api.init(CAR_URL, name="registered while the broker is down")
        time.sleep(max(0.0, down_seconds - (time.monotonic() - killed)))
        platform.broker.start()
        platform.broker.wait_ready()
        outage = time.monotonic() - killed
        return FaultEnd(
            f"broker killed (-9), restarted after {down_seconds} s, serving again {outage:.1f}s after the kill",
            db_now(platform.engine),
            registered_during=(during,),
        )

    figures = run_case(platform, report, "broker-kill-long", fault, camera_url=CAR_URL, settings=SLOW, load=3)
    check_assignments_lost(figures)


def test_broker_frozen_longer_than_the_session_timeout(make_platform: PlatformFactory, report: Report) -> None:
    platform = make_platform()
    frozen_seconds = 3 * SESSION_TIMEOUT_SECONDS

    def fault(_scenarios: list[uuid.UUID]) -> FaultEnd:
        frozen = time.monotonic()
        platform.broker.freeze()
        try:
            during = platform.api.init(CAR_URL, name="registered while the broker is frozen")
            time.sleep(max(0.0, frozen_seconds - (time.monotonic() - frozen)))
        finally:
            platform.broker.thaw()
        return FaultEnd(
            f"broker frozen (SIGSTOP) {frozen_seconds} s, then thawed",
            db_now(platform.engine),
            registered_during=(during,),
        )

    figures = run_case(platform, report, "broker-frozen", fault, camera_url=CAR_URL, settings=SLOW)
    check_assignments_lost(figures)


def check_assignments_lost(figures: Figures) -> None:
    """The case took the path it is about: the inbox's and the operator's consumers lost their group
    session (and with it their assignment), and came back without a person."""
    for service in ("inbox", "operator"):
        assert figures.signals.get(service, {}).get("session timed out"), (
            f"the {service}'s consumers never lost their session: {figures.signals}"
        )
