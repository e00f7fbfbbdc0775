"""API keys without a database: their shape, what a tenant name may be, and who the contracts accept."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from vap_api.auth import keys
from vap_common.contracts import ScenarioCommand
from vap_common.tenants import is_valid_tenant


class NoDatabase:
    """Fails the test if a malformed key reaches the database."""

    def execute(self, *_args: object, **_kwargs: object) -> None:
        raise AssertionError("a malformed key must be refused before any query")


@pytest.mark.parametrize(
    "key",
    [
        "",
        "vap_",
        "vap_0123456789ab",
        "vap_0123456789AB_" + "a" * 43,  # key ids are lower-case hex
        "vap_0123456789ab_" + "a" * 42,
        "vap_0123456789ab_" + "a" * 44,
        "xyz_0123456789ab_" + "a" * 43,
        "vap_0123456789ab_" + "a" * 42 + "=",
        "vap_0123456789ab_" + "a" * 42 + "\n",
    ],
)
def test_a_malformed_key_stands_for_nobody_without_a_query(key: str) -> None:
    assert keys.principal_of(session=NoDatabase(), key=key) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("tenant", "valid"),
    [("acme", True), ("a", True), ("team-7", True), ("a" * 63, True), ("a" * 64, False), ("Acme", False),
     ("-acme", False), ("acme-", False), ("ac_me", False), ("", False), ("acme.corp", False)],
)  # fmt: skip
def test_a_tenant_is_a_lower_case_dns_label_because_it_is_also_a_kubernetes_label(tenant: str, valid: bool) -> None:
    assert is_valid_tenant(tenant) is valid
    command = {"scenario_uuid": str(uuid.uuid4()), "command": "start", "camera_url": "rtsp://c/s", "tenant": tenant}
    if valid:
        assert ScenarioCommand.model_validate(command).tenant == tenant
    else:
        with pytest.raises(ValidationError):
            ScenarioCommand.model_validate(command)


def test_a_command_sent_before_tenants_existed_belongs_to_the_default_tenant() -> None:
    command = ScenarioCommand.model_validate(
        {"scenario_uuid": str(uuid.uuid4()), "command": "start", "camera_url": "rtsp://c/s"}
    )
    assert command.tenant == "default"
