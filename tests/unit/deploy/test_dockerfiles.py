"""The three Dockerfiles, read as text (no container engine on this machine): pinned bases, a numeric
non-root user, a healthcheck on a port the image serves, and an entry command the package installs."""

from __future__ import annotations

import re

import pytest

from tests.unit.deploy.deploy_support import ROOT, console_scripts, external_bases, parse_dockerfile, stage
from vap_operator.settings import KubernetesSettings

# Dockerfile -> the package directory it installs (whose pyproject names the console scripts).
IMAGES = {
    "api/Dockerfile": "api",
    "operator/Dockerfile": "operator",
    "runner-image/Dockerfile": "runner-image",
}
# A base image pinned to a full release (x.y.z), or to a digest; never `latest` or a bare major.
PINNED = re.compile(r"^[\w./-]+(:[\w.-]*\d+\.\d+\.\d+[\w.-]*)?(@sha256:[0-9a-f]{64})?$")


def _targets(dockerfile: str) -> list[str | None]:
    """The default target plus every other named stage (docker-compose builds operator's local-runtime)."""
    stages = parse_dockerfile(ROOT / dockerfile)
    return [None, *[candidate.name for candidate in stages[:-1] if candidate.name]]


@pytest.mark.parametrize("dockerfile", sorted(IMAGES))
def test_base_images_are_pinned_to_a_full_release(dockerfile: str) -> None:
    for base in external_bases(parse_dockerfile(ROOT / dockerfile)):
        assert PINNED.match(base) and ("@sha256:" in base or ":" in base), f"{dockerfile}: base {base!r} is not pinned"
        assert not base.endswith(":latest")


@pytest.mark.parametrize("dockerfile", sorted(IMAGES))
def test_images_run_as_the_numeric_non_root_user_the_pods_expect(dockerfile: str) -> None:
    stages = parse_dockerfile(ROOT / dockerfile)
    for target in _targets(dockerfile):
        user = stage(stages, target).user
        # Numeric, so the kubelet can enforce runAsNonRoot; the chart and the runner Pods use this uid.
        assert user is not None and user.split(":")[0].isdigit(), (
            f"{dockerfile} ({target}): USER {user!r} is not a numeric uid"
        )
        assert int(user.split(":")[0]) != 0
        assert int(user.split(":")[0]) == KubernetesSettings().run_as_user
    created = " ".join(stages[0].runs)
    assert f"--uid {KubernetesSettings().run_as_user}" in created, (
        f"{dockerfile}: the user is not created with that uid"
    )


@pytest.mark.parametrize("dockerfile", sorted(IMAGES))
def test_images_that_serve_a_port_have_a_healthcheck_on_it(dockerfile: str) -> None:
    stages = parse_dockerfile(ROOT / dockerfile)
    for target in _targets(dockerfile):
        image = stage(stages, target)
        assert image.expose, f"{dockerfile}: every VAP image serves HTTP (API, metrics or probes) and should EXPOSE it"
        assert image.healthcheck and image.healthcheck.upper() != "NONE", f"{dockerfile} ({target}): no HEALTHCHECK"
        # The port it probes: a literal, or an ENV variable of the image holding one.
        probed = {int(port) for port in re.findall(r"\b(\d{4,5})\b", image.healthcheck)}
        probed |= {int(value) for name, value in image.env.items() if name in image.healthcheck and value.isdigit()}
        assert probed & image.expose, f"{dockerfile}: HEALTHCHECK probes {probed}, the image exposes {image.expose}"


@pytest.mark.parametrize("dockerfile", sorted(IMAGES))
def test_entry_command_is_a_console_script_of_the_package(dockerfile: str) -> None:
    stages = parse_dockerfile(ROOT / dockerfile)
    scripts = console_scripts(ROOT / IMAGES[dockerfile])
    command = stage(stages, None).command
    assert command, f"{dockerfile}: no ENTRYPOINT or CMD"
    assert command[0] in scripts, f"{dockerfile}: runs {command[0]!r}, the package installs {sorted(scripts)}"


@pytest.mark.parametrize("dockerfile", sorted(IMAGES))
def test_build_context_is_the_repository_root_and_dependencies_are_pinned(dockerfile: str) -> None:
    stages = parse_dockerfile(ROOT / dockerfile)
    for copy in [copy for candidate in stages for copy in candidate.copies]:
        for source in copy[:-1]:
            assert (ROOT / source).exists(), (
                f"{dockerfile}: COPY {source} does not exist relative to the repository root"
            )
    installs = [run for candidate in stages for run in candidate.runs if "pip install" in run]
    assert installs and all("-c constraints.txt" in run for run in installs), (
        f"{dockerfile}: pip installs without the constraints"
    )
    package = IMAGES[dockerfile]
    assert any(f"./{package}" in run for run in installs), f"{dockerfile}: does not install ./{package}"


def test_api_image_carries_alembic_for_the_migration_job() -> None:
    image = stage(parse_dockerfile(ROOT / "api/Dockerfile"), None)
    assert image.workdir == "/app"  # the chart's migration Job runs `alembic upgrade head` there
    assert any("alembic.ini" in copy[:-1] for copy in image.copies)
    # The API listens on every address in a container (its own default is loopback).
    assert image.env.get("VAP_HOST") == "0.0.0.0"


def test_operator_local_runtime_target_also_installs_the_runner() -> None:
    stages = parse_dockerfile(ROOT / "operator/Dockerfile")
    local = stage(stages, "local-runtime")
    assert any("./runner-image" in run for run in local.runs)
    assert "vap-runner" in console_scripts(ROOT / "runner-image")
    # The default target, the one Kubernetes runs, stays without it (smaller, and runners run in their own Pods).
    assert not any("runner-image" in run for run in stage(stages, None).runs)


def test_dockerfile_paths_match_their_build_comments() -> None:
    for dockerfile in IMAGES:
        text = (ROOT / dockerfile).read_text()
        assert f"-f {dockerfile}" in text, (
            f"{dockerfile}: its header should say how to build it from the repository root"
        )


@pytest.mark.parametrize("dockerfile", sorted(IMAGES))
def test_the_base_image_is_a_build_argument_defaulting_to_the_official_python_image(dockerfile: str) -> None:
    """./dev/images builds on a Debian base of its own (no Docker Hub); people with Docker get python:3.11-slim."""
    text = (ROOT / dockerfile).read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11\.\d+-slim-bookworm$", text, re.MULTILINE), dockerfile
    froms = re.findall(r"^FROM (\S+)", text, re.MULTILINE)
    assert froms[0] == "${BASE_IMAGE}", f"{dockerfile}: the first stage does not build on BASE_IMAGE"
    assert external_bases(parse_dockerfile(ROOT / dockerfile))[0].startswith("python:3.11.")
