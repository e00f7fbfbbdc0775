"""The PostgreSQL/Kafka manifest of docs/kind.md is accepted by the real API server (server-side dry
run: schema, defaults, admission). kind itself cannot run here (no container engine)."""

from __future__ import annotations

import re

from tests.conftest import kubectl
from tests.unit.deploy.deploy_support import ROOT


def test_kind_doc_manifests_pass_a_server_side_dry_run(kubeconfig: str, kube_namespace: str) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", (ROOT / "docs" / "kind.md").read_text(), flags=re.DOTALL)
    assert blocks
    for block in blocks:
        result = kubectl(
            kubeconfig, "-n", kube_namespace, "apply", "--dry-run=server", "-f", "-", stdin=block, check=False
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.count("(server dry run)") == block.count("\nkind: ") + block.startswith("kind: ")
