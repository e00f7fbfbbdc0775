"""docs/kind.md stays in step with the files it uses: the images it builds and loads are the ones
values-kind.yaml installs, from Dockerfiles that exist, and its PostgreSQL/Kafka are where the values
point. (The YAML itself is dry-run against the API server in tests/integration/deploy/.)"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import yaml

from tests.unit.deploy.deploy_support import ROOT

DOC = (ROOT / "docs" / "kind.md").read_text()
KIND_VALUES: dict[str, Any] = yaml.safe_load((ROOT / "charts" / "vap" / "values-kind.yaml").read_text())


def _objects() -> dict[tuple[str, str], dict[str, Any]]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC, flags=re.DOTALL)
    return {
        (item["kind"], item["metadata"]["name"]): item for block in blocks for item in yaml.safe_load_all(block) if item
    }


def _env(deployment: dict[str, Any]) -> dict[str, str]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {variable["name"]: variable["value"] for variable in container["env"]}


def test_doc_builds_and_loads_the_images_the_kind_values_install() -> None:
    built = dict(re.findall(r"docker build -f (\S+) -t (\S+) \.", DOC))
    assert set(built) == {"api/Dockerfile", "operator/Dockerfile", "runner-image/Dockerfile"}
    for dockerfile in built:
        assert (ROOT / dockerfile).is_file()
    images = {f"{image['repository']}:{image['tag']}" for image in KIND_VALUES["images"].values()}
    assert set(built.values()) == images
    (loaded,) = re.findall(r"kind load docker-image (.+)", DOC)
    assert set(loaded.split()) == images
    assert all(image["pullPolicy"] == "IfNotPresent" for image in KIND_VALUES["images"].values())


def test_doc_installs_the_chart_with_the_kind_values() -> None:
    assert "helm install vap charts/vap --namespace vap -f charts/vap/values-kind.yaml" in DOC
    assert "kubectl -n vap get videoscenarios" in DOC and "port-forward svc/vap-api 8000:8000" in DOC
    assert "cannot run there" in DOC  # says what the tests validate instead


def test_kind_values_point_at_the_doc_s_postgres_and_kafka() -> None:
    objects = _objects()
    database = urlsplit(KIND_VALUES["database"]["url"])
    postgres = _env(objects[("Deployment", "postgres")])
    assert database.hostname in {name for kind, name in objects if kind == "Service"}
    assert database.port == objects[("Service", database.hostname)]["spec"]["ports"][0]["port"]
    assert (database.username, database.password, database.path.lstrip("/")) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    host, port = KIND_VALUES["kafka"]["bootstrapServers"].split(":")
    assert objects[("Service", host)]["spec"]["ports"][0]["port"] == int(port)
    kafka = objects[("Deployment", "kafka")]
    assert _env(kafka)["KAFKA_ADVERTISED_LISTENERS"] == f"PLAINTEXT://{host}:{port}"
    assert kafka["spec"]["template"]["spec"]["enableServiceLinks"] is False
    assert KIND_VALUES["kafka"]["createTopics"] is True  # a fresh broker has no topics
