"""JSON errors everywhere: domain errors, validation errors without echoed input, and a bare 500."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from vap_common.redact import redact_text

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with an HTTP status and a message safe to show to the client."""

    status_code = 400

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ApiError):
    status_code = 404


class InvalidRequest(ApiError):
    """A request that parsed but breaks a rule that depends on settings (allowed schemes, detectors)."""

    status_code = 422

    def __init__(self, location: tuple[str, ...], detail: str) -> None:
        super().__init__(detail)
        self.location = location


class IdempotencyKeyReused(ApiError):
    """The Idempotency-Key was first used with a different request (IETF draft: 422)."""

    status_code = 422


def _error_item(location: tuple[str | int, ...] | list[str | int], message: str, kind: str) -> dict[str, Any]:
    return {"loc": list(location), "msg": redact_text(message), "type": kind}


async def _api_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, ApiError)
    if isinstance(error, InvalidRequest):
        return JSONResponse({"detail": [_error_item(error.location, error.detail, "value_error")]}, status_code=422)
    return JSONResponse({"detail": error.detail}, status_code=error.status_code)


async def _validation_error(_request: Request, error: Exception) -> JSONResponse:
    # Pydantic's default body echoes the rejected input, which may be a camera URL with a password.
    assert isinstance(error, RequestValidationError)
    items = [_error_item(item.get("loc", ()), str(item.get("msg", "invalid")), str(item.get("type", "value_error"))) for item in error.errors()]
    return JSONResponse({"detail": items}, status_code=422)


async def _unexpected_error(request: Request, error: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=error, extra={"method": request.method, "path": request.url.path})
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
