"""Single-machine mode under supervisord (./dev/services, dev/platform_stack.py SupervisedPlatform):
a service killed with SIGKILL is restarted by supervisord and the platform goes on working; `down`
stops every process of the platform, supervisord included, through its socket, so no pid file (stale
or forged) can make it kill an unrelated process."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from e2e_support import CAR_SAMPLED, CAR_URL, Api, ResultsTopic, check_stored_equals_published
from platform_stack import ROOT, SupervisedPlatform
from sqlalchemy import Engine

from tests.conftest import has_failed
from tests.helpers import command_line, kill_all, pids_with_env, wait_until
from vap_common.settings import KafkaSettings

SERVICES = ("api", "relay", "inbox", "operator")


def platform_pids(kafka: KafkaSettings) -> list[int]:
    """Every live process carrying the test's topic prefix: supervisord, the services, runners."""
    return [pid for pid in pids_with_env(f"VAP_KAFKA__TOPIC_PREFIX={kafka.topic_prefix}") if pid != os.getpid()]


@pytest.fixture
def supervised(request: pytest.FixtureRequest, platform_env: dict[str, str], kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[SupervisedPlatform]:
    """The platform under supervisord in its own state dir; stopped at teardown, and nothing of it may survive."""
    platform = SupervisedPlatform(state_dir=tmp_path / "state", environment=platform_env)
    try:
        platform.start_all()
        yield platform
    finally:
        platform.stop_all()
        if has_failed(request):
            for log in sorted(platform.log_dir.glob("*.log")):
                print(f"----- {log} (tail) -----\n{log.read_text(errors='replace')[-8000:]}")
        deadline = time.monotonic() + 15
        while (left := platform_pids(kafka_settings)) and time.monotonic() < deadline:
            time.sleep(0.2)
        if left:
            described = [f"{pid}: {command_line(pid)}" for pid in left]
            kill_all(left)
            pytest.fail(f"processes of the test still alive after ./dev/services down (now killed): {described}")


def test_each_service_killed_with_sigkill_is_restarted_and_the_platform_works_after(
    supervised: SupervisedPlatform, db_engine: Engine, results_topic: ResultsTopic, sample_video: Path
) -> None:
    for name in SERVICES:
        old = supervised.kill(name)
        new = supervised.wait_running(name, other_than=old, timeout_seconds=60)
        status = supervised.services("status", capture=True).stdout
        assert re.search(rf"^{name}\s+RUNNING\s+pid {new},", status, re.MULTILINE), status
    log = (supervised.log_dir / "supervisord.log").read_text()
    for name in SERVICES:
        assert f"exited: {name} (terminated by SIGKILL; not expected)" in log, log

    api = Api(supervised.api_url, check_alive=supervised.check_alive)
    try:
        wait_until(lambda: httpx2.get(f"{supervised.api_url}/readyz", timeout=2).status_code == 200, timeout_seconds=30, what="the restarted API ready")
        scenario = api.init(CAR_URL, name="after the kills")
        api.wait_status(scenario, "inactive", timeout_seconds=120)
        assert api.frame_numbers(scenario) == CAR_SAMPLED
    finally:
        api.close()
    check_stored_equals_published(db_engine, results_topic, scenario)


def test_down_stops_every_process_and_no_pid_file_makes_it_kill_another(supervised: SupervisedPlatform, kafka_settings: KafkaSettings) -> None:
    supervisord = supervised.supervisord_pid()
    running = supervised.processes
    assert set(running) == set(SERVICES)
    # The teardown check sees supervisord itself: it carries the platform's environment too.
    assert {supervisord, *running.values()} <= set(platform_pids(kafka_settings))

    bystander = subprocess.Popen(["sleep", "300"])  # an unrelated process whose pid files name it
    try:
        # Where the old mechanism kept the demo's pids, and supervisord's own pid file.
        (supervised.state_dir / "demo.pids").write_text(f"{bystander.pid}\n")
        (supervised.state_dir / "supervisor" / "supervisord.pid").write_text(f"{bystander.pid}\n")

        supervised.stop_all()
        assert platform_pids(kafka_settings) == [], [command_line(pid) for pid in platform_pids(kafka_settings)]
        assert not supervised.socket_path.exists()
        assert not (supervised.state_dir / "supervisor" / "supervisord.pid").exists()
        status = supervised.services("status", capture=True)
        assert (status.returncode, "not running" in status.stdout) == (3, True), status

        # Stopping again, by either command, finds nothing to stop and touches nothing.
        assert supervised.services("down").returncode == 0
        env = {**os.environ, "VAP_STATE_DIR": str(supervised.state_dir)}
        assert subprocess.run([str(ROOT / "dev" / "infra"), "stop-services"], env=env, check=False).returncode == 0
        assert bystander.poll() is None, "a pid file made a stop command kill an unrelated process"
    finally:
        bystander.kill()
        bystander.wait()
