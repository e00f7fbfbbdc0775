"""When a scenario's runtime view is stale (vap_api.scenarios.service.is_stale), no servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vap_api.scenarios.service import is_stale
from vap_common.lifecycle import ScenarioStatus

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)
S = ScenarioStatus


@pytest.mark.parametrize(
    ("status", "heartbeat_age_seconds", "stale"),
    [
        (S.ACTIVE, 0.0, False),
        (S.ACTIVE, 30.0, False),  # exactly the threshold: not yet
        (S.ACTIVE, 30.001, True),
        (S.ACTIVE, None, True),  # should run, but the runtime never renewed a lease
        (S.IN_SHUTDOWN_PROCESSING, 31.0, True),
        (S.IN_SHUTDOWN_PROCESSING, 1.0, False),
        (S.INIT_STARTUP, None, False),  # no runner expected yet
        (S.IN_STARTUP_PROCESSING, None, False),
        (S.INIT_SHUTDOWN, 3600.0, False),
        (S.INACTIVE, 3600.0, False),
        (S.FAILED, None, False),
    ],
)
def test_only_a_scenario_that_should_be_running_with_a_missing_or_lapsed_lease_is_stale(
    status: ScenarioStatus, heartbeat_age_seconds: float | None, stale: bool
) -> None:
    heartbeat_at = None if heartbeat_age_seconds is None else NOW - timedelta(seconds=heartbeat_age_seconds)
    assert is_stale(status=status, heartbeat_at=heartbeat_at, now=NOW, stale_after_seconds=30.0) is stale


def test_a_lease_renewed_after_the_databases_now_is_not_stale() -> None:
    # Both times come from PostgreSQL, but now() is when the reading transaction began: a lease
    # renewed since then lies after it, and is fresh.
    assert (
        is_stale(status=S.ACTIVE, heartbeat_at=NOW + timedelta(seconds=1), now=NOW, stale_after_seconds=30.0) is False
    )
