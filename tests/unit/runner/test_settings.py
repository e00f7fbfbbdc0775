"""vap_runner.settings and vap_runner.cli: what the runner reads from its environment and its flags."""

from __future__ import annotations

import uuid

import pytest

from vap_common.address_policy import AddressPolicy
from vap_common.contracts import DetectorSpec
from vap_common.runner_contract import RunnerSpec, runner_environment
from vap_common.settings import KafkaSettings
from vap_runner.cli import _overrides, _parser
from vap_runner.settings import RunnerSettings
from vap_runner.sources import parse_source


def test_settings_read_exactly_what_the_runtime_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = RunnerSpec(
        scenario_uuid=uuid.uuid4(),
        worker_id="w-1",
        camera_url="rtsp://cam/1",
        detector=DetectorSpec(name="hog_person", settings={"scale": 1.1}),
        max_workers=3,
        grace_seconds=12.5,
        target_fps=2.5,
    )
    operator_policy = AddressPolicy(
        allow=["127.0.0.0/8"],
        deny=["10.9.0.0/16", ".corp.example"],
        platform=[("db.internal", 5432), ("fd00::1", 6443)],
    )
    env = runner_environment(
        spec,
        kafka=KafkaSettings(bootstrap_servers="kafka:9092", topic_prefix="p."),
        camera_policy=operator_policy,
        http_port=9200,
    )
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = RunnerSettings()
    assert (settings.scenario_uuid, settings.camera_url, settings.worker_id) == (
        spec.scenario_uuid,
        "rtsp://cam/1",
        "w-1",
    )
    assert (settings.detector.name, settings.detector.settings) == ("hog_person", {"scale": 1.1})
    assert (settings.max_workers, settings.target_fps, settings.http_port, settings.grace_period_seconds) == (
        3,
        2.5,
        9200,
        12.5,
    )
    assert (settings.kafka.bootstrap_servers, settings.kafka.topic_prefix) == ("kafka:9092", "p.")
    # The runner checks its operator's camera policy, and refuses its own Kafka besides the servers it is told.
    policy = settings.address_policy()
    assert (policy.allow, policy.deny) == (operator_policy.allow, operator_policy.deny)
    assert policy.platform == [("kafka", 9092), ("db.internal", 5432), ("fd00::1", 6443)]

    # Flags override the environment; nested groups merge with it.
    args = _parser().parse_args(
        ["--max-workers", "1", "--detector-settings", '{"scale": 1.2}', "--kafka-topic-prefix", "q."]
    )
    overridden = RunnerSettings(**_overrides(args))
    assert (
        overridden.max_workers == 1
        and overridden.detector.name == "hog_person"
        and overridden.detector.settings == {"scale": 1.2}
    )
    assert (overridden.kafka.bootstrap_servers, overridden.kafka.topic_prefix) == ("kafka:9092", "q.")


@pytest.mark.parametrize(
    ("camera_url", "linger_ms"),
    [
        ("rtsp://cam.example/stream", 5),
        ("https://cam.example/mjpeg", 5),
        ("file:///videos/car.mp4", 100),
        ("/videos/car.mp4", 100),
    ],
)
def test_a_camera_sends_its_results_at_once_and_a_file_batches_them(camera_url: str, linger_ms: int) -> None:
    """A camera's few results a second would each wait a file's whole linger (capture -> stored latency)."""
    settings = RunnerSettings(scenario_uuid=uuid.uuid4(), camera_url=camera_url)
    assert settings.linger_ms(local_file=parse_source(camera_url, allow_files=True).local_file) == linger_ms
