"""JSON errors everywhere: domain errors, validation errors without echoed input, 503 while the
database is unreachable, and a bare 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from vap_common.redact import redact_text

log = logging.getLogger(__name__)

DATABASE_UNAVAILABLE = "database unavailable; retry later"


class ApiError(Exception):
    """An error with an HTTP status and a message safe to show to the client."""

    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def headers(self) -> dict[str, str]:
        """Response headers that belong to this error."""
        return {}


class NotAuthenticated(ApiError):
    """No credential, or one that stands for nobody (RFC 6750: 401 with WWW-Authenticate)."""

    status_code = 401

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": "Bearer"}


class Forbidden(ApiError):
    """A valid credential without the scope the endpoint needs."""

    status_code = 403


class NotFound(ApiError):
    status_code = 404


class IdentityProviderUnavailable(ApiError):
    """The OIDC issuer's signing keys cannot be fetched, so no token can be checked now."""

    status_code = 503

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}


class TooManyRequests(ApiError):
    """A limit on work in progress is reached; the same request may succeed after ``retry_after_seconds``."""

    status_code = 429

    def __init__(self, detail: str, *, retry_after_seconds: int) -> None:
        super().__init__(detail)
        self.retry_after_seconds = retry_after_seconds

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after_seconds)}


class InvalidRequest(ApiError):
    """A request that parsed but breaks a rule that depends on settings (allowed schemes, detectors)."""

    status_code = 422

    def __init__(self, location: tuple[str, ...], detail: str) -> None:
        super().__init__(detail)
        self.location = location


class IdempotencyKeyReused(ApiError):
    """The Idempotency-Key was first used with a different request (IETF draft: 422)."""

    status_code = 422


def is_database_unavailable(error: BaseException, *, driver_errors: tuple[type[Exception], ...] = ()) -> bool:
    """Is ``error`` the database being out of reach (refused, lost, timed out, no free connection),
    as opposed to a statement it refused? ``driver_errors``: the DBAPI driver's own such classes."""
    if isinstance(error, (OperationalError, InterfaceError, PoolTimeoutError, *driver_errors)):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


def _error_item(location: tuple[str | int, ...] | list[str | int], message: str, kind: str) -> dict[str, Any]:
    return {"loc": list(location), "msg": redact_text(message), "type": kind}


async def _api_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    if isinstance(error, InvalidRequest):
        return JSONResponse({"detail": [_error_item(error.location, error.detail, "value_error")]}, status_code=422)
    return JSONResponse({"detail": error.detail}, status_code=error.status_code, headers=error.headers())


async def _validation_error(_request: Request, error: Exception) -> JSONResponse:
    # Pydantic's default body echoes the rejected input, which may be a camera URL with a password.
    assert isinstance(error, RequestValidationError)
    items = [
        _error_item(item.get("loc", ()), str(item.get("msg", "invalid")), str(item.get("type", "value_error")))
        for item in error.errors()
    ]
    return JSONResponse({"detail": items}, status_code=422)


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=error, extra={"method": request.method, "path": request.url.path})
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def install_error_handlers(
    app: FastAPI, *, db_unavailable_retry_after_seconds: int, driver_errors: tuple[type[Exception], ...]
) -> None:
    """Register the handlers; ``driver_errors`` are the DBAPI driver's connection-level error classes."""

    async def database_error(request: Request, error: Exception) -> JSONResponse:
        if not is_database_unavailable(error, driver_errors=driver_errors):
            return await _unexpected_error(request, error)
        # One line, no traceback: an outage would otherwise flood the log with identical stacks.
        first_line = (str(error).splitlines() or [type(error).__name__])[0]
        log.warning(
            "database unavailable",
            extra={"method": request.method, "path": request.url.path, "error": redact_text(first_line)},
        )
        headers = {"Retry-After": str(db_unavailable_retry_after_seconds)}
        return JSONResponse({"detail": DATABASE_UNAVAILABLE}, status_code=503, headers=headers)

    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    # Handled here rather than by the catch-all below: Starlette re-raises what reaches the catch-all,
    # and uvicorn then logs a traceback and closes the client's connection.
    for error_class in (DBAPIError, PoolTimeoutError, *driver_errors):
        app.add_exception_handler(error_class, database_error)
    app.add_exception_handler(Exception, _unexpected_error)
