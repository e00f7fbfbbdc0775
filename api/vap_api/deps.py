"""Typed FastAPI dependencies shared by the routers: settings, a database session, and the caller."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from vap_api.auth.authenticator import AUTH_REFUSED, Authenticator
from vap_api.auth.keys import Principal, Scope
from vap_api.errors import Forbidden, NotAuthenticated
from vap_api.rate_limit import KeyRateLimit
from vap_api.settings import ApiSettings
from vap_common.address_policy import AddressPolicy
from vap_common.camera_secrets import CameraKeyring


def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_session(request: Request) -> Iterator[Session]:
    """A session for one request; service functions open and commit their own transaction."""
    with request.app.state.session_factory() as session:
        yield session


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]


def get_camera_policy(request: Request) -> AddressPolicy:
    return request.app.state.camera_policy  # type: ignore[no-any-return]


# Built once per app: its resolver keeps each name's addresses for a while.
CameraPolicyDep = Annotated[AddressPolicy, Depends(get_camera_policy)]


def get_camera_keyring(request: Request) -> CameraKeyring:
    return request.app.state.camera_keyring  # type: ignore[no-any-return]


CameraKeyringDep = Annotated[CameraKeyring, Depends(get_camera_keyring)]
# Closed when the route function returns, before the response is sent: closing rolls back a read's
# transaction, and a database lost at that moment must still be answered (503), not break the
# client's connection after a response was started.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

# auto_error=False: a missing or non-Bearer Authorization header is ours to answer (401, our message).
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key, `vap_<key_id>_<secret>` (`vap-admin keys create`), as `Authorization: Bearer <key>`.",
)


def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller, or NotAuthenticated (401)."""
    if credentials is None:
        AUTH_REFUSED.labels("no credential").inc()
        raise NotAuthenticated("this endpoint needs an API key: send `Authorization: Bearer <key>`")
    authenticator: Authenticator = request.app.state.authenticator
    return authenticator.principal(credentials.credentials)


def require(scope: Scope) -> Callable[[Principal], Principal]:
    """A dependency that lets through only a caller whose key has ``scope`` (403 otherwise)."""

    def caller_with_scope(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if scope not in principal.scopes:
            AUTH_REFUSED.labels("missing scope").inc()
            raise Forbidden(f"this API key lacks the scope {scope.value!r}")
        return principal

    return caller_with_scope


def writer_within_rate(
    request: Request, principal: Annotated[Principal, Depends(require(Scope.SCENARIOS_WRITE))]
) -> Principal:
    """A caller who may write and has not passed its writes per minute (429 otherwise)."""
    rate_limit: KeyRateLimit = request.app.state.write_rate_limit
    rate_limit.check(principal.key_id)
    return principal


# The caller of a route, checked for the scope the route needs (and writers for their rate).
ReaderDep = Annotated[Principal, Depends(require(Scope.SCENARIOS_READ))]
WriterDep = Annotated[Principal, Depends(writer_within_rate)]
# What every route behind ReaderDep or WriterDep may answer for its credential (OpenAPI).
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No API key, or one that is unknown or revoked"},
    403: {"description": "The API key lacks the scope this endpoint needs"},
}


def metrics_access(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """/metrics is open unless ``auth.public_metrics`` is false; then it needs a key with metrics:read."""
    if not settings.auth.public_metrics:
        require(Scope.METRICS_READ)(authenticate(request, credentials))
