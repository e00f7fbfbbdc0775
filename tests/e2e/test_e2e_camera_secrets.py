"""Camera passwords end to end (vap_common.camera_secrets), with the local runtime: registered, run
and stopped, a password is nowhere in plain text (database, Kafka, logs) while the runner still logs
in with it; and the keys rotate under a running scenario."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient
from sqlalchemy import Engine, text

from dev.platform_stack import PlatformStack, RtspCamera, create_api_key
from tests.e2e.conftest import PlatformFactory
from tests.e2e.e2e_support import PERSON_VIDEO, Api, runner_pids
from tests.helpers import TopicReader, kill_all, wait_until
from vap_common.camera_secrets import generate_key, key_ids
from vap_common.settings import KafkaSettings

PASSWORD = f"pw-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def camera() -> Iterator[RtspCamera]:
    """A live camera on loopback that refuses any login but viewer:PASSWORD."""
    source = RtspCamera(PERSON_VIDEO, credentials=("viewer", PASSWORD))
    source.start()
    yield source
    source.stop()


def _database_dump(engine: Engine) -> str:
    """Every row of every table of the test's schema, as text."""
    with engine.connect() as connection:
        tables = connection.execute(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
        ).scalars()
        return "\n".join(
            str(row) for table in list(tables) for row in connection.execute(text(f'SELECT t::text FROM "{table}" t'))
        )


def _every_topic(kafka: KafkaSettings) -> dict[str, list[bytes]]:
    """Every message of every topic of the test's prefix, by topic."""
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    names = [name for name in admin.list_topics(timeout=10).topics if name.startswith(kafka.topic_prefix)]
    readers = {name: TopicReader(kafka, name) for name in names}
    try:
        return {name: reader.read_to_end() for name, reader in readers.items()}
    finally:
        for reader in readers.values():
            reader.close()


def _files_holding(directory: Path, needle: str) -> list[Path]:
    return [path for path in directory.rglob("*") if path.is_file() and needle.encode() in path.read_bytes()]


def _stored_camera_url(engine: Engine, scenario: uuid.UUID) -> str:
    with engine.connect() as connection:
        return str(
            connection.execute(
                text("SELECT camera_url FROM scenarios WHERE scenario_uuid = :u"), {"u": scenario}
            ).scalar_one()
        )


def _frames_after(api: Api, scenario: uuid.UUID, count: int, *, what: str) -> None:
    seen = len(api.frame_numbers(scenario))
    wait_until(lambda: len(api.frame_numbers(scenario)) >= seen + count, timeout_seconds=90, what=what)


def test_a_camera_password_is_never_stored_published_or_logged_in_plain_text(
    platform: PlatformStack, api: Api, camera: RtspCamera, db_engine: Engine, kafka_settings: KafkaSettings
) -> None:
    scenario = api.init(camera.url, name="with a password")
    api.wait_status(scenario, "active", timeout_seconds=90)
    # The camera refuses any other login: frames mean the runner was given the password itself.
    _frames_after(api, scenario, 3, what="3 results from the camera that asks for a password")
    api.shutdown(scenario)
    api.wait_status(scenario, "inactive", timeout_seconds=60)

    stored = _stored_camera_url(db_engine, scenario)
    assert key_ids(stored) == {"test"} and stored.startswith("rtsp://viewer:vapenc.test.")
    dump = _database_dump(db_engine)
    assert stored in dump and PASSWORD not in dump
    topics = _every_topic(kafka_settings)
    assert any(stored.encode() in value for values in topics.values() for value in values), "no command was read"
    assert {name for name, values in topics.items() if any(PASSWORD.encode() in value for value in values)} == set()
    assert (platform.log_dir / "operator.log").stat().st_size > 0
    assert _files_holding(platform.log_dir, PASSWORD) == []
    assert api.scenario(scenario)["camera_url"] == camera.url.replace(PASSWORD, "***")


def _reseal(platform: PlatformStack) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "vap_api.auth.admin", "camera-keys", "reseal"],
        env={**os.environ, **platform.environment},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stderr


def test_camera_keys_rotate_under_a_running_scenario(
    make_platform: PlatformFactory, camera: RtspCamera, db_engine: Engine
) -> None:
    old, new = generate_key("old"), generate_key("new")
    platform = make_platform(VAP_CAMERA_KEYS=old)
    api = Api(
        platform.api_url, api_key=create_api_key(platform.environment, tenant="e2e"), check_alive=platform.check_alive
    )
    try:
        scenario = api.init(camera.url, name="sealed with the old key")
        api.wait_status(scenario, "active", timeout_seconds=90)
        _frames_after(api, scenario, 2, what="results under the old key")
        assert key_ids(_stored_camera_url(db_engine, scenario)) == {"old"}

        # Step 1: the new key seals, the old one still opens. The API and the operator restart with it;
        # the runner, killed, is restarted by the new operator from the URL the old key sealed.
        platform.environment["VAP_CAMERA_KEYS"] = f"{new},{old}"
        platform.restart("api")
        platform.restart("operator")
        platform.wait_api_ready(60)
        kill_all(runner_pids(scenario))
        _frames_after(api, scenario, 2, what="results after the runner restarted under the rotated keys")
        second = api.init(camera.url, name="sealed with the new key")
        assert key_ids(_stored_camera_url(db_engine, second)) == {"new"}

        # Step 2: every stored URL sealed with the new key; then the old key goes, and both still run.
        assert "sealed with key 'new'" in _reseal(platform)
        assert key_ids(_stored_camera_url(db_engine, scenario)) == {"new"}
        platform.environment["VAP_CAMERA_KEYS"] = new
        platform.restart("operator")
        kill_all(runner_pids(scenario))
        _frames_after(api, scenario, 2, what="results after the runner restarted with the old key gone")
        api.wait_status(second, "active", timeout_seconds=90)
        assert api.status(scenario) == "active"
    finally:
        api.close()
