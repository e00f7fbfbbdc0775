"""Tenants: every scenario belongs to one, the tenant of the API key that registered it."""

from __future__ import annotations

import re

# A tenant name is also a Kubernetes label value (the VideoScenario and its Pod carry it): a
# lower-case DNS label.
TENANT_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
# The tenant of scenarios registered before tenants existed (migration 0006).
DEFAULT_TENANT = "default"


def is_valid_tenant(tenant: str) -> bool:
    return re.fullmatch(TENANT_PATTERN, tenant) is not None
