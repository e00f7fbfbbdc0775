"""status.runner, the Pod watcher's mirror: every write must be a change kopf sees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vap_operator.decisions import ObservedPod, PodPhase
from vap_operator.kube.status import runner_summary

MOMENT = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_summary_of_a_pod_carries_its_state() -> None:
    pod = ObservedPod(uid="u1", phase=PodPhase.FAILED, exit_code=1)
    summary = runner_summary(pod, observed_at=MOMENT)
    assert summary == {
        "present": True,
        "observedAt": "2026-11-30T12:00:00.000000Z",
        "uid": "u1",
        "phase": "Failed",
        "ready": False,
        "exitCode": 1,
        "deleting": False,
    }


def test_no_pod_observed_twice_is_still_two_different_writes() -> None:
    # "No Pod" before the first Pod and "no Pod" after a crashed one was deleted must differ, or kopf
    # sees no change and drops the reconciler's pending restart.
    first = runner_summary(None, observed_at=MOMENT)
    later = runner_summary(None, observed_at=MOMENT + timedelta(microseconds=1))
    assert first["present"] is False and later["present"] is False
    assert first != later
