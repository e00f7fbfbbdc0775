"""docker-compose.yml, loaded as YAML (no container engine here): official PostgreSQL and Kafka images,
every built service points at a real Dockerfile (and stage), its command is a console script of that
package, its VAP_* variables are settings its process reads, and start-up order uses conditions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.deploy_support import (
    ROOT,
    SETTINGS_BY_COMMAND,
    console_scripts,
    load_settings,
    parse_dockerfile,
    stage,
    unknown_setting,
)
from vap_operator.settings import OperatorSettings

# Dockerfile -> the package it installs.
PACKAGES = {"api/Dockerfile": "api", "operator/Dockerfile": "operator", "runner-image/Dockerfile": "runner-image"}


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return dict(loaded["services"])


def _dockerfile(service: dict[str, Any]) -> tuple[Path, str | None]:
    build = service["build"]
    context = ROOT / build.get("context", ".")
    return context / build.get("dockerfile", "Dockerfile"), build.get("target")


def _command(service: dict[str, Any]) -> list[str]:
    """What the container runs: the service's command, else its image's ENTRYPOINT/CMD."""
    dockerfile, target = _dockerfile(service)
    image = stage(parse_dockerfile(dockerfile), target)
    if "command" in service:
        return [*(image.entrypoint or []), *service["command"]]
    return image.command


def _environment(service: dict[str, Any]) -> dict[str, str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    # A name without a value is passed through from compose's own environment: unset here.
    return {str(name): str(value) for name, value in environment.items() if value is not None}


def test_backing_services_are_the_official_images(services: dict[str, dict[str, Any]]) -> None:
    assert services["postgres"]["image"] == "postgres:16"
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    kafka = _environment(services["kafka"])
    assert kafka["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, one node


def test_the_platform_services_are_all_there(services: dict[str, dict[str, Any]]) -> None:
    assert {"migrate", "kafka-topics", "api", "relay", "inbox", "operator"} <= set(services)


def test_every_build_points_at_an_existing_dockerfile_and_stage(services: dict[str, dict[str, Any]]) -> None:
    built = {name: service for name, service in services.items() if "build" in service}
    assert set(built) >= {"migrate", "kafka-topics", "api", "relay", "inbox", "operator"}
    for name, service in built.items():
        dockerfile, target = _dockerfile(service)
        assert (ROOT / service["build"].get("context", ".")).resolve() == ROOT, (
            f"{name}: build context must be the repository root"
        )
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
        if target is not None:
            assert target in {candidate.name for candidate in parse_dockerfile(dockerfile)}, (
                f"{name}: no stage {target!r}"
            )


def test_commands_are_console_scripts_of_the_built_package(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if "build" not in service:
            continue
        dockerfile, _ = _dockerfile(service)
        program = _command(service)[0]
        scripts = console_scripts(ROOT / PACKAGES[str(dockerfile.relative_to(ROOT))])
        assert program in scripts or program in ("alembic", "python"), (
            f"{name}: runs {program!r}, not one of {sorted(scripts)}"
        )


def test_vap_variables_are_settings_the_process_reads(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, service in services.items():
        if "build" not in service:
            continue
        settings = SETTINGS_BY_COMMAND[_command(service)[0]]
        environment = _environment(service)
        variables = {key: value for key, value in environment.items() if key.startswith("VAP_")}
        problems = [problem for key in variables if (problem := unknown_setting(settings, key))]
        assert problems == [], f"{name}: {problems}"
        # And the values parse (types, literals, the production-password rule).
        load_settings(settings, variables, monkeypatch)


def test_operator_runs_the_local_runtime_with_the_runner_installed(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    operator = services["operator"]
    settings = load_settings(
        OperatorSettings, {k: v for k, v in _environment(operator).items() if k.startswith("VAP_")}, monkeypatch
    )
    assert isinstance(settings, OperatorSettings) and settings.runtime == "local"
    dockerfile, target = _dockerfile(operator)
    assert any("./runner-image" in run for run in stage(parse_dockerfile(dockerfile), target).runs)


def test_start_up_order_waits_on_health_and_on_the_one_shot_jobs(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on without conditions"
        for dependency, rule in depends_on.items():
            condition = rule["condition"]
            assert condition in ("service_healthy", "service_completed_successfully"), (
                f"{name} -> {dependency}: {condition}"
            )
            if condition == "service_healthy":
                assert _has_healthcheck(services[dependency]), (
                    f"{name} waits for {dependency} to be healthy, which has no healthcheck"
                )
            else:
                assert services[dependency].get("restart") == "no", f"{dependency} is a one-shot job"
    for name in ("api", "relay", "inbox", "operator"):
        assert {"migrate", "kafka-topics"} <= set(services[name]["depends_on"]), name


def _has_healthcheck(service: dict[str, Any]) -> bool:
    healthcheck = service.get("healthcheck")
    if healthcheck is not None:
        return not healthcheck.get("disable", False) and bool(healthcheck.get("test"))
    if "build" in service:
        dockerfile, target = _dockerfile(service)
        return stage(parse_dockerfile(dockerfile), target).healthcheck is not None
    return False


def test_long_running_services_have_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if service.get("restart") == "no":
            continue
        assert _has_healthcheck(service), f"{name} has no healthcheck"
    # relay and inbox share the API image, whose HEALTHCHECK probes the API port: they override it.
    for name in ("relay", "inbox"):
        port = _environment(services[name])["VAP_METRICS_PORT"]
        assert port in " ".join(services[name]["healthcheck"]["test"]), name


def test_the_api_is_published_on_its_port(services: dict[str, dict[str, Any]]) -> None:
    api = services["api"]
    port = _environment(api)["VAP_PORT"]
    assert any(str(mapping).endswith(f":{port}") for mapping in api["ports"])
    assert _environment(api)["VAP_HOST"] == "0.0.0.0"
