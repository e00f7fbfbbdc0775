"""Single-machine mode under supervisord (./dev/services, dev/platform_stack.py SupervisedPlatform):
`down` stops every process of the platform, supervisord included, through its socket, so no pid file
(stale or forged) can make it kill an unrelated process. (Each service killed with SIGKILL and
restarted by supervisord, under load: tests/faults/test_service_kills.py.)"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dev.platform_stack import ROOT, SupervisedPlatform
from tests.conftest import has_failed
from tests.helpers import command_line, fail_if_processes_left, pids_with_env
from vap_common.settings import KafkaSettings

SERVICES = ("api", "relay", "inbox", "operator")


def platform_pids(kafka: KafkaSettings) -> list[int]:
    """Every live process carrying the test's topic prefix: supervisord, the services, runners."""
    return [pid for pid in pids_with_env(f"VAP_KAFKA__TOPIC_PREFIX={kafka.topic_prefix}") if pid != os.getpid()]


@pytest.fixture
def supervised(
    request: pytest.FixtureRequest, platform_env: dict[str, str], kafka_settings: KafkaSettings, tmp_path: Path
) -> Iterator[SupervisedPlatform]:
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
        fail_if_processes_left(kafka_settings.topic_prefix, after="./dev/services down")


def test_down_stops_every_process_and_no_pid_file_makes_it_kill_another(
    supervised: SupervisedPlatform, kafka_settings: KafkaSettings
) -> None:
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
