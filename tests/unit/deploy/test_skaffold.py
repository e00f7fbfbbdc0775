"""skaffold.yaml, loaded as YAML (skaffold and a container engine cannot run here): it builds the three
images from their Dockerfiles and deploys charts/vap with their tags; its kind profile patches apply."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml

from tests.unit.deploy.deploy_support import ROOT, parse_dockerfile

EXPECTED_ARTIFACTS = {
    "vap-api": "api/Dockerfile",
    "vap-operator": "operator/Dockerfile",
    "vap-runner": "runner-image/Dockerfile",
}


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _apply_patch(document: dict[str, Any], patch: dict[str, Any]) -> None:
    """The subset of JSON Patch (RFC 6902) skaffold profiles use here: add and replace."""
    *parents, last = [part.replace("~1", "/").replace("~0", "~") for part in patch["path"].lstrip("/").split("/")]
    target: Any = document
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if patch["op"] == "replace":
        if isinstance(target, list):
            assert int(last) < len(target), f"replace {patch['path']}: no such element"
        else:
            assert last in target, f"replace {patch['path']}: no such key"
    else:
        assert patch["op"] == "add", f"unsupported op {patch['op']}"
    if isinstance(target, list):
        target[int(last)] = patch["value"]
    else:
        target[last] = patch["value"]


def _values_key_exists(dotted: str) -> bool:
    values: Any = yaml.safe_load((ROOT / "charts/vap/values.yaml").read_text())
    for part in dotted.split("."):
        if not isinstance(values, dict) or part not in values:
            return False
        values = values[part]
    return True


def _with_profile(config: dict[str, Any], name: str) -> dict[str, Any]:
    (profile,) = [candidate for candidate in config["profiles"] if candidate["name"] == name]
    patched = copy.deepcopy(config)
    for patch in profile.get("patches", []):
        _apply_patch(patched, patch)
    return patched


def test_schema_version_is_v4beta11_or_later(config: dict[str, Any]) -> None:
    match = re.fullmatch(r"skaffold/v4beta(\d+)", config["apiVersion"])
    assert match and int(match.group(1)) >= 11
    assert config["kind"] == "Config"


def test_artifacts_are_the_three_images_built_from_the_repository_root(config: dict[str, Any]) -> None:
    artifacts = {artifact["image"]: artifact for artifact in config["build"]["artifacts"]}
    assert {name: artifact["docker"]["dockerfile"] for name, artifact in artifacts.items()} == EXPECTED_ARTIFACTS
    for name, artifact in artifacts.items():
        context = ROOT / artifact.get("context", ".")
        assert context.resolve() == ROOT, f"{name}: the Dockerfiles COPY common/, so the context is the repository root"
        dockerfile = context / artifact["docker"]["dockerfile"]
        assert dockerfile.is_file(), f"{name}: {dockerfile} does not exist"
        target = artifact["docker"].get("target")
        if target is not None:
            assert target in {stage.name for stage in parse_dockerfile(dockerfile)}, f"{name}: no stage {target!r}"


def test_operator_artifact_is_the_kubernetes_target_without_the_runner(config: dict[str, Any]) -> None:
    (operator,) = [artifact for artifact in config["build"]["artifacts"] if artifact["image"] == "vap-operator"]
    assert operator["docker"].get("target") in (None, "kubernetes")


def test_helm_release_deploys_the_chart_with_every_built_image(config: dict[str, Any]) -> None:
    (release,) = config["deploy"]["helm"]["releases"]
    chart = ROOT / release["chartPath"]
    assert (chart / "Chart.yaml").is_file() and (chart / "values.yaml").is_file()
    templates = release["setValueTemplates"]
    for image in EXPECTED_ARTIFACTS:
        sanitized = image.replace("-", "_")
        used = {key: value for key, value in templates.items() if sanitized in value}
        assert {value for value in used.values()} == {
            f"{{{{.IMAGE_REPO_{sanitized}}}}}",
            f"{{{{.IMAGE_TAG_{sanitized}}}}}",
        }, image
        for key in used:
            assert _values_key_exists(key), f"setValueTemplates sets {key}, which charts/vap/values.yaml does not have"


def test_kind_profile_keeps_images_local_and_uses_the_kind_values(config: dict[str, Any]) -> None:
    kind = _with_profile(config, "kind")
    assert kind["build"]["local"]["push"] is False
    (release,) = kind["deploy"]["helm"]["releases"]
    for values_file in release["valuesFiles"]:
        assert (ROOT / values_file).is_file(), values_file
    for key, value in release["setValues"].items():
        assert _values_key_exists(key), key
        if key.endswith("pullPolicy"):
            assert value == "IfNotPresent"
    assert {key for key in release["setValues"] if key.endswith("pullPolicy")} == {
        f"images.{name}.pullPolicy" for name in ("api", "operator", "runner")
    }
    # The runner image is only an environment value of the operator, so the profile loads it itself.
    (runner,) = [artifact for artifact in kind["build"]["artifacts"] if artifact["image"] == "vap-runner"]
    (hook,) = runner["hooks"]["after"]
    assert "kind load docker-image" in " ".join(hook["command"]) and "$SKAFFOLD_IMAGE" in " ".join(hook["command"])


def test_default_profile_values_file_template_falls_back_to_the_chart_defaults(config: dict[str, Any]) -> None:
    (release,) = config["deploy"]["helm"]["releases"]
    (values_file,) = release["valuesFiles"]
    fallback = re.search(r'"([^"]+)"', values_file)
    assert fallback and (ROOT / fallback.group(1)).is_file()
