"""The local runtime: runner child processes on this machine, driven by the same to_deploy stream.

The runner is a stand-in script with scripted exits (stand_in_runner.py) so each exit-code rule is
tested on purpose; the real runner on a sample video is in test_local_runtime_real_runner.py.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

from operator_test_support import STAND_IN_RUNNER, StatusLog, produce, shutdown, start
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import pids_with_env, wait_until
from vap_common.schema import Worker
from vap_common.settings import KafkaSettings
from vap_common.topics import Topic

STAND_IN = [sys.executable, str(STAND_IN_RUNNER)]


def row(sessions: sessionmaker[Session], scenario: uuid.UUID) -> Worker | None:
    with sessions() as session:
        return session.scalars(select(Worker).where(Worker.scenario_uuid == scenario)).one_or_none()


def live_pid(sessions: sessionmaker[Session], scenario: uuid.UUID) -> int | None:
    stored = row(sessions, scenario)
    pid = stored.process_pid if stored else None
    return pid if pid and pid in pids_with_env(f"VAP_SCENARIO_UUID={scenario}") else None


def environ(pid: int) -> dict[str, str]:
    pairs = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(pair.decode().split("=", 1) for pair in pairs if b"=" in pair)


def starts(record: Path) -> list[int]:
    return [int(line) for line in record.read_text().split()] if record.exists() else []


def test_runner_processes_start_and_stop_cleanly_and_a_stubborn_one_is_killed_after_the_grace(
    start_local_runtime: Any, kafka_settings: KafkaSettings, status_log: StatusLog, sessions: sessionmaker[Session]
) -> None:
    start_local_runtime(runner_command=STAND_IN)  # grace period 1 s
    polite, stubborn = uuid.uuid4(), uuid.uuid4()
    produce(kafka_settings, Topic.INIT_SCENARIO, [start(polite, name="stand-in", settings={"mode": "serve"}), start(stubborn, settings={"mode": "stubborn"})])
    pid = wait_until(lambda: live_pid(sessions, polite), what="the runner process")
    wait_until(lambda: live_pid(sessions, stubborn), what="the stubborn runner process")

    env = environ(pid)
    assert (env["VAP_SCENARIO_UUID"], env["VAP_WORKER_ID"], env["VAP_CAMERA_URL"]) == (str(polite), f"w-{polite}", "rtsp://cam.example/stream")
    assert env["VAP_KAFKA__TOPIC_PREFIX"] == kafka_settings.topic_prefix and int(env["VAP_HTTP_PORT"]) > 0
    assert "VAP_DATABASE__URL" not in env  # the runner gets its own settings only
    assert os.getpgid(pid) == pid  # its own process group

    produce(kafka_settings, Topic.INIT_SCENARIO, [shutdown(polite), shutdown(stubborn)])
    for scenario in (polite, stubborn):
        status_log.wait_for(scenario, [("in_startup_processing", None), ("in_shutdown_processing", None), ("inactive", None)])
        wait_until(lambda: not pids_with_env(f"VAP_SCENARIO_UUID={scenario}"), what="no process of the scenario left")  # noqa: B023
        stored = row(sessions, scenario)
        assert stored is not None and (stored.status, stored.process_pid) == ("inactive", None) and stored.stopped_at is not None


def test_crashes_restart_with_backoff_a_crash_loop_fails_exit_3_and_exit_0_are_final(
    start_local_runtime: Any, kafka_settings: KafkaSettings, status_log: StatusLog, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    start_local_runtime(runner_command=STAND_IN)  # crash loop: 3 crashes within 60 s; backoff 0.5 s doubling
    flaky, looping, giving_up, finishing = (uuid.uuid4() for _ in range(4))
    records = {scenario: tmp_path / f"{scenario}.starts" for scenario in (flaky, looping, giving_up, finishing)}
    produce(
        kafka_settings,
        Topic.INIT_SCENARIO,
        [
            start(flaky, settings={"mode": "crash", "crashes": 2, "record": str(records[flaky])}),
            start(looping, settings={"mode": "crash", "record": str(records[looping])}),
            start(giving_up, settings={"mode": "give_up", "record": str(records[giving_up])}),
            start(finishing, settings={"mode": "finish", "record": str(records[finishing])}),
        ],
    )

    # Crashed twice, restarted twice, now up: a new process each time, not failed.
    wait_until(lambda: len(starts(records[flaky])) == 3 and live_pid(sessions, flaky) == starts(records[flaky])[-1], what="the third start of flaky")
    flaky_row = row(sessions, flaky)
    assert flaky_row is not None and (flaky_row.restart_count, flaky_row.status) == (2, "in_startup_processing")
    assert "RunnerCrashed" in (flaky_row.last_error or "")

    status_log.wait_for(looping, [("in_startup_processing", None), ("failed", "RunnerCrashLoop")])
    assert len(starts(records[looping])) == 3
    looping_row = row(sessions, looping)
    assert looping_row is not None and (looping_row.status, looping_row.restart_count, looping_row.process_pid) == ("failed", 2, None)

    status_log.wait_for(finishing, [("in_startup_processing", None), ("inactive", None)])
    wait_until(lambda: (r := row(sessions, giving_up)) is not None and r.status == "failed", what="giving_up failed")
    status_log.poll()
    assert status_log.steps(giving_up) == [("in_startup_processing", None)]  # exit 3: the runner reported it, not us
    assert len(starts(records[giving_up])) == 1 and len(starts(records[finishing])) == 1  # never restarted
    assert status_log.of(looping).count(("failed", "RunnerCrashLoop")) == 1


def test_stopping_the_runtime_leaves_no_orphans_and_the_next_runtime_resumes_and_cleans_up(
    start_local_runtime: Any, kafka_settings: KafkaSettings, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    scenario = uuid.uuid4()
    marker = f"VAP_SCENARIO_UUID={scenario}"
    record = tmp_path / "starts"
    runtime = start_local_runtime(runner_command=STAND_IN)
    produce(kafka_settings, Topic.INIT_SCENARIO, [start(scenario, settings={"mode": "family", "record": str(record)})])
    wait_until(lambda: len(pids_with_env(marker)) == 2, what="the runner and its child")

    assert runtime.stop() == 0  # SIGTERM: every runner group is stopped before the runtime exits
    assert pids_with_env(marker) == []
    stored = row(sessions, scenario)
    assert stored is not None and (stored.process_pid, stored.desired_state, stored.status) == (None, "active", "in_startup_processing")

    # A new runtime resumes the scenario from the workers table (its to_deploy offsets are committed).
    runtime = start_local_runtime(runner_command=STAND_IN)
    wait_until(lambda: len(starts(record)) == 2 and len(pids_with_env(marker)) == 2, what="the resumed runner and its child")
    leftover_child = next(pid for pid in pids_with_env(marker) if pid != starts(record)[-1])

    # SIGKILL: the runner dies with its parent (PR_SET_PDEATHSIG); its child is orphaned ...
    runtime.kill()
    wait_until(lambda: starts(record)[-1] not in pids_with_env(marker), what="the runner to die with the runtime")
    assert leftover_child in pids_with_env(marker)
    # ... until the next runtime finds the group by the scenario's environment and kills it.
    start_local_runtime(runner_command=STAND_IN)
    wait_until(lambda: len(starts(record)) == 3, what="the third start")
    wait_until(lambda: leftover_child not in pids_with_env(marker), what="the orphan to be killed")
    wait_until(lambda: len(pids_with_env(marker)) == 2, what="only the new runner and its child")


def test_a_second_local_runtime_on_the_same_database_refuses_to_start(start_local_runtime: Any) -> None:
    first = start_local_runtime(runner_command=STAND_IN)
    wait_until(lambda: "local runtime running" in first.log(), what="the first runtime")
    second = start_local_runtime(runner_command=STAND_IN)
    assert second.popen.wait(30) != 0
    assert "another local runtime holds the lock" in second.log()
    assert first.alive()
