"""/healthz (the process answers), /readyz (the database answers) and /metrics."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from vap_api.deps import SessionDep, SettingsDep, metrics_access
from vap_common.redact import redact_text

log = logging.getLogger(__name__)

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process serves requests."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "The database is unreachable"}})
def readyz(session: SessionDep, settings: SettingsDep) -> JSONResponse:
    """Readiness: the database answers."""
    try:
        session.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        log.warning("not ready: database unreachable", extra={"error": redact_text(str(error).splitlines()[0])})
        headers = {"Retry-After": str(settings.db_unavailable_retry_after_seconds)}
        return JSONResponse(
            {"status": "unavailable", "detail": "database unreachable"}, status_code=503, headers=headers
        )
    return JSONResponse({"status": "ready"})


@router.get("/metrics", include_in_schema=False, dependencies=[Depends(metrics_access)])
def metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
