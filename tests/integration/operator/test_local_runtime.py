"""The local runtime: runner child processes on this machine, driven by the same to_deploy stream.

The runner is a stand-in script with scripted exits (stand_in_runner.py) so each exit-code rule is
tested on purpose; the real runner on a sample video is in test_local_runtime_real_runner.py.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import make_url, select
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import CAMERA_KEYS, consume, pids_with_env, wait_until
from tests.integration.operator.operator_test_support import STAND_IN_RUNNER, StatusLog, produce, shutdown, start
from tests.tcp_proxy import TcpProxy
from vap_common.camera_secrets import CameraKeyring, generate_key
from vap_common.contracts import DeployCommand
from vap_common.schema import Worker
from vap_common.settings import DatabaseSettings, KafkaSettings
from vap_common.topics import Topic, dlq_name, topic_name

STAND_IN = [sys.executable, str(STAND_IN_RUNNER)]


def row(sessions: sessionmaker[Session], scenario: uuid.UUID) -> Worker | None:
    with sessions() as session:
        return session.scalars(select(Worker).where(Worker.scenario_uuid == scenario)).one_or_none()


def recorded(sessions: sessionmaker[Session], scenario: uuid.UUID, status: str) -> Worker:
    """The scenario's workers row once it shows ``status``: the runtime publishes a status event just
    before it records the same in the row, so a reader who saw the event may still find the old row."""
    return wait_until(
        lambda: (r := row(sessions, scenario)) is not None and r.status == status and r,
        what=f"the workers row to say {status}",
    )


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
    produce(
        kafka_settings,
        Topic.INIT_SCENARIO,
        [start(polite, name="stand-in", settings={"mode": "serve"}), start(stubborn, settings={"mode": "stubborn"})],
    )
    pid = wait_until(lambda: live_pid(sessions, polite), what="the runner process")
    wait_until(lambda: live_pid(sessions, stubborn), what="the stubborn runner process")

    env = environ(pid)
    assert (env["VAP_SCENARIO_UUID"], env["VAP_WORKER_ID"], env["VAP_CAMERA_URL"]) == (
        str(polite),
        f"w-{polite}",
        "rtsp://cam.example/stream",
    )
    assert env["VAP_KAFKA__TOPIC_PREFIX"] == kafka_settings.topic_prefix and int(env["VAP_HTTP_PORT"]) > 0
    assert "VAP_DATABASE__URL" not in env  # the runner gets its own settings only
    assert float(env["VAP_GRACE_PERIOD_SECONDS"]) == 1.0  # it drains within the grace it gets before SIGKILL
    assert os.getpgid(pid) == pid  # its own process group

    produce(kafka_settings, Topic.INIT_SCENARIO, [shutdown(polite), shutdown(stubborn)])
    for scenario in (polite, stubborn):
        status_log.wait_for(
            scenario, [("in_startup_processing", None), ("in_shutdown_processing", None), ("inactive", None)]
        )
        wait_until(lambda: not pids_with_env(f"VAP_SCENARIO_UUID={scenario}"), what="no process of the scenario left")  # noqa: B023 - called at once, in this iteration
        stored = recorded(sessions, scenario, "inactive")
        assert (stored.status, stored.process_pid) == ("inactive", None) and stored.stopped_at is not None


def test_a_sealed_camera_password_is_opened_for_the_runner_only_and_one_no_key_opens_fails_and_a_rate_is_kept(
    start_local_runtime: Any, kafka_settings: KafkaSettings, status_log: StatusLog, sessions: sessionmaker[Session]
) -> None:
    start_local_runtime(runner_command=STAND_IN)
    url = "rtsp://admin:hunter2@cam.example/live?token=t0ken"
    readable, unreadable = uuid.uuid4(), uuid.uuid4()
    produce(
        kafka_settings,
        Topic.INIT_SCENARIO,
        [
            start(readable, CameraKeyring.parse([CAMERA_KEYS]).seal(url), settings={"mode": "serve"}).model_copy(
                update={"analysis_fps": 2.0}  # its own rate, through the orchestrator's workers row to the runner
            ),
            start(unreadable, CameraKeyring.parse([generate_key("elsewhere")]).seal(url), settings={"mode": "serve"}),
        ],
    )
    pid = wait_until(lambda: live_pid(sessions, readable), what="the runner process")
    assert (environ(pid)["VAP_CAMERA_URL"], environ(pid)["VAP_TARGET_FPS"]) == (url, "2.0")
    stored = row(sessions, readable)
    assert stored is not None and "hunter2" not in stored.camera_url and "t0ken" not in stored.camera_url

    status_log.wait_for(unreadable, [("in_startup_processing", None), ("failed", "CredentialsUnreadable")])
    failed = recorded(sessions, unreadable, "failed")
    assert "'elsewhere'" in (failed.last_error or "") and not pids_with_env(f"VAP_SCENARIO_UUID={unreadable}")


def test_crashes_restart_with_backoff_a_crash_loop_fails_exit_3_and_exit_0_are_final(
    start_local_runtime: Any,
    kafka_settings: KafkaSettings,
    status_log: StatusLog,
    sessions: sessionmaker[Session],
    tmp_path: Path,
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
    wait_until(
        lambda: len(starts(records[flaky])) == 3 and live_pid(sessions, flaky) == starts(records[flaky])[-1],
        what="the third start of flaky",
    )
    flaky_row = row(sessions, flaky)
    assert flaky_row is not None and (flaky_row.restart_count, flaky_row.status) == (2, "in_startup_processing")
    assert "RunnerCrashed" in (flaky_row.last_error or "")

    status_log.wait_for(looping, [("in_startup_processing", None), ("failed", "RunnerCrashLoop")])
    assert len(starts(records[looping])) == 3
    looping_row = recorded(sessions, looping, "failed")
    assert (looping_row.status, looping_row.restart_count, looping_row.process_pid) == ("failed", 2, None)

    status_log.wait_for(finishing, [("in_startup_processing", None), ("inactive", None)])
    wait_until(lambda: (r := row(sessions, giving_up)) is not None and r.status == "failed", what="giving_up failed")
    status_log.poll()
    assert status_log.steps(giving_up) == [("in_startup_processing", None)]  # exit 3: the runner reported it, not us
    assert len(starts(records[giving_up])) == 1 and len(starts(records[finishing])) == 1  # never restarted
    assert status_log.of(looping).count(("failed", "RunnerCrashLoop")) == 1


def test_stopping_the_runtime_leaves_no_orphans_and_a_killed_runtime_is_adopted_by_the_next(
    start_local_runtime: Any,
    kafka_settings: KafkaSettings,
    status_log: StatusLog,
    sessions: sessionmaker[Session],
    tmp_path: Path,
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
    assert stored is not None and (stored.process_pid, stored.desired_state, stored.status) == (
        None,
        "active",
        "in_startup_processing",
    )

    # A new runtime resumes the scenario from the workers table (its to_deploy offsets are committed).
    runtime = start_local_runtime(runner_command=STAND_IN)
    wait_until(
        lambda: len(starts(record)) == 2 and len(pids_with_env(marker)) == 2, what="the resumed runner and its child"
    )
    runner_pid = starts(record)[-1]
    family = sorted(pids_with_env(marker))

    # SIGKILL of the runtime: its runners keep running (their own sessions, no parent-death signal) ...
    runtime.kill()
    time.sleep(1)
    assert sorted(pids_with_env(marker)) == family
    # ... and the next runtime adopts them instead of starting a new run.
    runtime = start_local_runtime(runner_command=STAND_IN)
    wait_until(lambda: "adopted a running runner" in runtime.log(), what="the runner to be adopted")
    time.sleep(1)
    assert len(starts(record)) == 2 and sorted(pids_with_env(marker)) == family
    assert live_pid(sessions, scenario) == runner_pid

    # An adopted runner is not our child: its death is seen all the same (no exit code: a crash), its
    # orphaned child is killed with its group, and a new run starts after the backoff.
    os.kill(runner_pid, signal.SIGKILL)
    wait_until(lambda: len(starts(record)) == 3, what="the restart of the killed adopted runner")
    wait_until(lambda: not set(family) & set(pids_with_env(marker)), what="the old group to be gone")
    restarted = wait_until(
        lambda: (r := row(sessions, scenario)) is not None and r.restart_count == 1 and r, what="restart_count 1"
    )
    assert "died without an exit code" in (restarted.last_error or "")

    produce(kafka_settings, Topic.INIT_SCENARIO, [shutdown(scenario)])
    status_log.wait_for(
        scenario, [("in_startup_processing", None), ("in_shutdown_processing", None), ("inactive", None)]
    )
    wait_until(lambda: not pids_with_env(marker), what="no process of the scenario left")


def test_a_runner_that_ends_while_no_runtime_runs_is_reported_by_the_next_runtime(
    start_local_runtime: Any,
    kafka_settings: KafkaSettings,
    status_log: StatusLog,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    scenario = uuid.uuid4()
    marker = f"VAP_SCENARIO_UUID={scenario}"
    stop_file = tmp_path / "finish-now"
    runtime = start_local_runtime(runner_command=STAND_IN)
    produce(
        kafka_settings, Topic.INIT_SCENARIO, [start(scenario, settings={"mode": "finish_on", "path": str(stop_file)})]
    )
    wait_until(lambda: live_pid(sessions, scenario), what="the runner process")
    runtime.kill()
    stop_file.touch()  # the runner now finishes its "file" and exits 0, writing its exit code
    wait_until(lambda: not pids_with_env(marker), what="the runner to finish")

    start_local_runtime(runner_command=STAND_IN)
    status_log.wait_for(scenario, [("in_startup_processing", None), ("inactive", None)])
    stored = recorded(sessions, scenario, "inactive")
    assert (stored.status, stored.process_pid, stored.restart_count) == ("inactive", None, 0)


def test_a_second_local_runtime_on_the_same_database_refuses_to_start(start_local_runtime: Any) -> None:
    first = start_local_runtime(runner_command=STAND_IN)
    wait_until(lambda: "local runtime running" in first.log(), what="the first runtime")
    second = start_local_runtime(runner_command=STAND_IN)
    assert second.popen.wait(30) != 0
    assert "another local runtime holds the lock" in second.log()
    assert first.alive()


def test_a_deploy_for_a_scenario_the_orchestrator_never_accepted_is_dead_lettered_and_starts_nothing(
    start_local_runtime: Any, kafka_settings: KafkaSettings, sessions: sessionmaker[Session]
) -> None:
    start_local_runtime(runner_command=STAND_IN)
    forged = uuid.uuid4()
    produce(
        kafka_settings,
        Topic.TO_DEPLOY,
        [DeployCommand(scenario_uuid=forged, worker_id=f"w-{forged}", action="deploy", camera_url="rtsp://10.0.0.1/x")],
    )
    dead = consume(kafka_settings, dlq_name(topic_name(Topic.TO_DEPLOY, kafka_settings.topic_prefix)), expected=1)
    assert len(dead) == 1 and "never accepted it" in dict(dead[0].headers() or [])["dlq.error"].decode()
    assert pids_with_env(f"VAP_SCENARIO_UUID={forged}") == [] and row(sessions, forged) is None


def test_runners_past_the_capacity_wait_with_their_reason_and_start_as_slots_free(
    start_local_runtime: Any, kafka_settings: KafkaSettings, status_log: StatusLog, sessions: sessionmaker[Session]
) -> None:
    start_local_runtime(runner_command=STAND_IN, VAP_LOCAL__CAPACITY="2", VAP_HEARTBEAT_SECONDS="0.5")
    scenarios = [uuid.uuid4() for _ in range(3)]
    for scenario in scenarios:  # one at a time, so "oldest first" is well defined
        produce(kafka_settings, Topic.INIT_SCENARIO, [start(scenario, settings={"mode": "serve"})])
        wait_until(lambda: row(sessions, scenario) is not None, what="the workers row")  # noqa: B023 - called at once, in this iteration
    first, second, third = scenarios
    wait_until(lambda: live_pid(sessions, first) and live_pid(sessions, second), what="two runners")
    waiting = wait_until(
        lambda: (r := row(sessions, third)) is not None and r.wait_reason and r, what="the third to wait with a reason"
    )
    assert waiting.wait_reason == "WaitingForCapacity: 2 of 2 runners running on this machine"
    assert (waiting.status, waiting.process_pid) == ("in_startup_processing", None) and not pids_with_env(
        f"VAP_SCENARIO_UUID={third}"
    )
    # The runtime's lease is renewed for running runners only.
    leased = {s: r.heartbeat_at for s in (first, second) if (r := row(sessions, s)) is not None}
    wait_until(
        lambda: all(
            (r := row(sessions, s)) is not None
            and r.heartbeat_at is not None
            and (leased[s] is None or r.heartbeat_at > leased[s])  # type: ignore[operator]
            for s in leased
        ),
        what="leases renewed",
    )
    waiting_row = row(sessions, third)
    assert waiting_row is not None and waiting_row.heartbeat_at is None

    produce(kafka_settings, Topic.INIT_SCENARIO, [shutdown(first)])
    status_log.wait_for(first, [("in_startup_processing", None), ("in_shutdown_processing", None), ("inactive", None)])
    wait_until(lambda: live_pid(sessions, third), what="the third runner once a slot is free")
    started = row(sessions, third)
    assert started is not None and started.wait_reason is None
    produce(kafka_settings, Topic.INIT_SCENARIO, [shutdown(second), shutdown(third)])
    for scenario in (second, third):
        status_log.wait_for(
            scenario, [("in_startup_processing", None), ("in_shutdown_processing", None), ("inactive", None)]
        )


def test_a_postgresql_outage_stops_neither_the_runtime_nor_its_runners_and_what_happened_is_recorded_after(
    start_local_runtime: Any,
    kafka_settings: KafkaSettings,
    status_log: StatusLog,
    sessions: sessionmaker[Session],
    db_settings: DatabaseSettings,
    tmp_path: Path,
) -> None:
    """Before, an exception in the runtime's loop (PostgreSQL stopped for 10 s) SIGTERMed every runner
    and the operator exited; scenarios stayed `active` with nothing running."""
    scenario = uuid.uuid4()
    record = tmp_path / "starts"
    url = make_url(db_settings.url)
    with TcpProxy(url.host or "127.0.0.1", url.port or 5432) as proxy:
        runtime = start_local_runtime(
            runner_command=STAND_IN, VAP_DATABASE__URL=url.set(port=proxy.port).render_as_string(hide_password=False)
        )
        produce(
            kafka_settings, Topic.INIT_SCENARIO, [start(scenario, settings={"mode": "serve", "record": str(record)})]
        )
        first = wait_until(lambda: live_pid(sessions, scenario), what="the runner process")

        proxy.cut()
        time.sleep(3)
        os.kill(first, signal.SIGKILL)  # a crash while the database is away: restarted all the same
        wait_until(lambda: len(starts(record)) == 2, timeout_seconds=20, what="the restart during the outage")
        time.sleep(5)
        assert runtime.alive(), runtime.log()[-3000:]
        second = starts(record)[-1]
        assert pids_with_env(f"VAP_SCENARIO_UUID={scenario}") == [second]
        stale = row(sessions, scenario)  # read past the proxy: the runtime could not write yet
        assert stale is not None and stale.process_pid == first

        proxy.restore()
        wait_until(
            lambda: live_pid(sessions, scenario) == second,
            timeout_seconds=30,
            what="the queued writes after the outage",
        )
        restarted = row(sessions, scenario)
        assert restarted is not None and restarted.restart_count == 1
        produce(kafka_settings, Topic.INIT_SCENARIO, [shutdown(scenario)])
        status_log.wait_for(
            scenario, [("in_startup_processing", None), ("in_shutdown_processing", None), ("inactive", None)]
        )
        assert runtime.alive()
