"""The local runtime with the real runner (`python -m vap_runner`) on a sample video: results flow,
a crashed runner is restarted (a new run), a shutdown stops it cleanly, the end of the file ends it."""

from __future__ import annotations

import os
import signal
import sys
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import MEDIA
from tests.helpers import pids_with_env, wait_until
from tests.integration.operator.operator_test_support import StatusLog, TopicReader, produce, shutdown, start
from vap_common.contracts import FrameResult, decode
from vap_common.schema import Worker
from vap_common.settings import KafkaSettings
from vap_common.topics import Topic

VIDEO = (MEDIA / "car-detection.mp4").as_uri()  # 377 frames


def worker(sessions: sessionmaker[Session], scenario: uuid.UUID) -> Worker:
    with sessions() as session:
        row = session.scalars(select(Worker).where(Worker.scenario_uuid == scenario)).one()
    return row


def test_real_runner_on_a_sample_video_crash_restart_clean_stop_and_end_of_file(
    start_local_runtime: Any, kafka_settings: KafkaSettings, status_log: StatusLog, sessions: sessionmaker[Session]
) -> None:
    start_local_runtime(runner_command=[sys.executable, "-m", "vap_runner"], VAP_RUNNER__STOP_GRACE_SECONDS="15")
    slow, whole = uuid.uuid4(), uuid.uuid4()
    # `slow`: the mock detector sleeps up to 60 ms a frame, so the file lasts long enough to crash and stop it.
    produce(
        kafka_settings,
        Topic.INIT_SCENARIO,
        [start(slow, VIDEO, name="mock", settings={"delay_ms": 60}), start(whole, VIDEO, name="mock")],
    )
    results = TopicReader(kafka_settings, Topic.RESULTS)

    def runs_of(scenario: uuid.UUID) -> dict[str, int]:
        """Results so far of ``scenario``, counted per runner run."""
        counts: dict[str, int] = {}
        for value in results.poll(0.2):
            result = decode(FrameResult, value)
            if result.scenario_uuid == scenario:
                counts[result.run_id] = counts.get(result.run_id, 0) + 1
        return counts

    # The end of the file: the runner exits 0 -> inactive, never restarted.
    status_log.wait_for(
        whole, [("in_startup_processing", None), ("active", None), ("inactive", None)], timeout_seconds=60
    )
    wait_until(lambda: worker(sessions, whole).status == "inactive", what="whole inactive in workers")
    wait_until(lambda: sum(runs_of(whole).values()) >= 377, timeout_seconds=30, what="every frame of the file analysed")
    assert len(runs_of(whole)) == 1 and worker(sessions, whole).restart_count == 0

    # A crash (SIGKILL of the runner) mid-file: restarted with backoff as a new run.
    status_log.wait_for(slow, [("in_startup_processing", None), ("active", None)], timeout_seconds=60)
    first_pid = worker(sessions, slow).process_pid
    assert first_pid is not None
    wait_until(lambda: sum(runs_of(slow).values()) >= 10, what="results of the first run")
    os.kill(first_pid, signal.SIGKILL)
    wait_until(
        lambda: (pid := worker(sessions, slow).process_pid) is not None and pid != first_pid, what="a restarted runner"
    )
    assert worker(sessions, slow).restart_count == 1
    wait_until(lambda: len(runs_of(slow)) == 2, timeout_seconds=30, what="results of a second run")

    # Shutdown: SIGTERM, the runner drains and exits 0 -> inactive; nothing of it is left.
    produce(kafka_settings, Topic.INIT_SCENARIO, [shutdown(slow, VIDEO)])
    status_log.wait_for(
        slow,
        [("in_startup_processing", None), ("active", None), ("in_shutdown_processing", None), ("inactive", None)],
        timeout_seconds=30,
    )
    wait_until(lambda: worker(sessions, slow).status == "inactive", what="slow inactive in workers")
    wait_until(lambda: not pids_with_env(f"VAP_SCENARIO_UUID={slow}"), what="no runner or inference process left")
    assert worker(sessions, slow).process_pid is None
    results.close()
