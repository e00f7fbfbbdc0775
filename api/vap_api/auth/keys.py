"""API keys: made at random, shown once, stored as a hash, looked up by their public id, revoked.

A key reads ``vap_<key_id>_<secret>``: ``key_id`` (12 hex digits) is public (lists, logs, revocation);
the secret is 32 random bytes. Only the SHA-256 of the whole key is stored.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from vap_common.schema import ApiKey
from vap_common.tenants import is_valid_tenant

_PREFIX = "vap"
_KEY = re.compile(rf"^{_PREFIX}_(?P<key_id>[0-9a-f]{{12}})_(?P<secret>[A-Za-z0-9_-]{{43}})$")


class Scope(enum.StrEnum):
    """What a key may do. Reading does not come with writing: a key has each scope it needs."""

    SCENARIOS_READ = "scenarios:read"  # GET a scenario, the list, its predictions
    SCENARIOS_WRITE = "scenarios:write"  # register and shut down scenarios
    METRICS_READ = "metrics:read"  # GET /metrics, when it is not public (AuthOptions.public_metrics)


_SCOPE_VALUES = frozenset(scope.value for scope in Scope)


@dataclass(frozen=True)
class Principal:
    """The caller a credential stands for."""

    tenant: str
    scopes: frozenset[Scope]
    key_id: str


@dataclass(frozen=True)
class KeyInfo:
    """What a listing shows of a key (never its secret, which is not stored)."""

    key_id: str
    tenant: str
    scopes: tuple[str, ...]
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def generate_key() -> str:
    """A new random key, not stored yet (``register_key``)."""
    return f"{_PREFIX}_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"


def create_key(*, session: Session, tenant: str, scopes: frozenset[Scope], name: str | None = None) -> str:
    """Store a new key of ``tenant`` and return it: the only time the whole key is seen."""
    key = generate_key()
    register_key(session=session, key=key, tenant=tenant, scopes=scopes, name=name)
    return key


def register_key(*, session: Session, key: str, tenant: str, scopes: frozenset[Scope], name: str | None = None) -> bool:
    """Store ``key``, made elsewhere (kept in a Kubernetes Secret, say), for ``tenant``; False when it is
    stored already, which changes nothing (a revoked key stays revoked). ValueError for a malformed
    key, a bad tenant, no scope, or another key with the same id."""
    if not is_valid_tenant(tenant):
        raise ValueError(f"tenant {tenant!r} is not a lower-case DNS label (a-z, 0-9, '-'; at most 63)")
    if not scopes:
        raise ValueError("a key needs at least one scope")
    parsed = _KEY.fullmatch(key)
    if parsed is None:
        raise ValueError("not an API key: vap_<12 hex digits>_<43 base64url characters> (vap-admin keys generate)")
    with session.begin():
        stored = session.execute(
            insert(ApiKey)
            .values(key_id=parsed["key_id"], key_sha256=digest(key), tenant=tenant, scopes=sorted(scopes), name=name)
            .on_conflict_do_nothing(index_elements=[ApiKey.key_id])
            .returning(ApiKey.key_id)
        ).scalar_one_or_none()
        if stored is None:
            existing = session.scalar(select(ApiKey.key_sha256).where(ApiKey.key_id == parsed["key_id"]))
            if existing is None or not hmac.compare_digest(existing, digest(key)):
                raise ValueError(f"another key has the id {parsed['key_id']}")
    return stored is not None


def list_keys(*, session: Session, tenant: str | None = None) -> list[KeyInfo]:
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.key_id)
    if tenant is not None:
        query = query.where(ApiKey.tenant == tenant)
    return [
        KeyInfo(key.key_id, key.tenant, tuple(key.scopes), key.name, key.created_at, key.revoked_at)
        for key in session.scalars(query)
    ]


def revoke_key(*, session: Session, key_id: str) -> bool:
    """Revoke the key; False if there is no such key or it was revoked already."""
    with session.begin():
        revoked = session.execute(
            update(ApiKey)
            .where(ApiKey.key_id == key_id, ApiKey.revoked_at.is_(None))
            .values(revoked_at=func.now())
            .returning(ApiKey.key_id)
        ).scalar_one_or_none()
    return revoked is not None


def principal_of(*, session: Session, key: str) -> Principal | None:
    """The caller ``key`` stands for; None for a malformed, unknown or revoked key."""
    parsed = _KEY.fullmatch(key)
    if parsed is None:
        return None
    row = session.execute(
        select(ApiKey.key_sha256, ApiKey.tenant, ApiKey.scopes).where(
            ApiKey.key_id == parsed["key_id"], ApiKey.revoked_at.is_(None)
        )
    ).one_or_none()
    if row is None or not hmac.compare_digest(row.key_sha256, digest(key)):
        return None
    return Principal(row.tenant, known_scopes(row.scopes), parsed["key_id"])


def is_api_key(credential: str) -> bool:
    """Whether ``credential`` is meant as an API key (the rest may be OIDC access tokens)."""
    return credential.startswith(f"{_PREFIX}_")


def known_scopes(values: Iterable[object]) -> frozenset[Scope]:
    """The scopes among ``values``: one this version does not know (a newer one's) grants nothing."""
    return frozenset(Scope(value) for value in values if isinstance(value, str) and value in _SCOPE_VALUES)
