"""The Principal of an API key, looked up in PostgreSQL and then remembered for a few seconds."""

from __future__ import annotations

import threading

from cachetools import TTLCache
from prometheus_client import Counter
from sqlalchemy.orm import Session, sessionmaker

from vap_api.auth.keys import Principal, digest, is_api_key, principal_of
from vap_api.auth.oidc import OidcVerifier
from vap_api.errors import NotAuthenticated

AUTH_REFUSED = Counter("vap_api_auth_refused_total", "Requests refused for their credential", ["reason"])


class Authenticator:
    """The caller of an API key or (with ``oidc``) an OIDC access token.

    Remembers each key's Principal for ``cache_seconds`` (so a revoked key keeps working that long in
    each API process): a request then costs a hash and a lookup instead of a database round trip.
    """

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        cache_seconds: float,
        oidc: OidcVerifier | None = None,
        max_keys: int = 10_000,
    ) -> None:
        self._session_factory = session_factory
        self._oidc = oidc
        self._known: TTLCache[bytes, Principal] = TTLCache(maxsize=max_keys, ttl=cache_seconds)
        self._lock = threading.Lock()  # route dependencies run on several threads

    def principal(self, credential: str) -> Principal:
        """The caller ``credential`` stands for, or NotAuthenticated."""
        if self._oidc is not None and not is_api_key(credential):
            try:
                return self._oidc.principal(credential)
            except NotAuthenticated:
                AUTH_REFUSED.labels("invalid token").inc()
                raise
        return self._key_principal(credential)

    def _key_principal(self, key: str) -> Principal:
        fingerprint = digest(key)
        with self._lock:
            known = self._known.get(fingerprint)
        if known is not None:
            return known
        with self._session_factory() as session:
            found = principal_of(session=session, key=key)
        if found is None:
            AUTH_REFUSED.labels("unknown key").inc()
            raise NotAuthenticated("the API key is not valid (unknown, revoked or malformed)")
        with self._lock:
            self._known[fingerprint] = found
        return found
