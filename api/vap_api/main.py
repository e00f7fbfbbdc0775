"""The FastAPI application (``vap_api.main:app``) and the ``vap-api`` entry point."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine, event

from vap_api.auth.authenticator import Authenticator
from vap_api.auth.oidc import OidcVerifier
from vap_api.errors import install_error_handlers
from vap_api.events.routes import router as events_router
from vap_api.middleware import BodySizeLimit, RequestMetrics
from vap_api.predictions.routes import router as predictions_router
from vap_api.rate_limit import KeyRateLimit
from vap_api.scenarios.routes import router as scenarios_router
from vap_api.settings import ApiSettings
from vap_api.system.routes import router as system_router
from vap_common.db import make_engine, make_session_factory
from vap_common.logs import configure_logging


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """Build the application; the database engine is created here and disposed at shutdown."""
    settings = settings or ApiSettings()
    engine = _make_api_engine(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="VAP — Video Analytics Platform API",
        version="0.1.0",
        summary="Register camera streams as scenarios, read their detections, stop them.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.write_rate_limit = KeyRateLimit(settings.writes_per_minute_per_key)
    app.state.camera_policy = settings.camera_policy.policy(platform=settings.platform_servers())
    app.state.camera_keyring = settings.camera_keyring()
    app.state.authenticator = Authenticator(
        app.state.session_factory,
        cache_seconds=settings.auth.key_cache_seconds,
        oidc=OidcVerifier(settings.auth.oidc) if settings.auth.oidc else None,
    )
    install_error_handlers(
        app,
        db_unavailable_retry_after_seconds=settings.db_unavailable_retry_after_seconds,
        driver_errors=(engine.dialect.loaded_dbapi.OperationalError, engine.dialect.loaded_dbapi.InterfaceError),
    )
    app.add_middleware(BodySizeLimit, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics)
    app.include_router(scenarios_router)
    app.include_router(predictions_router)
    app.include_router(events_router)
    app.include_router(system_router)
    return app


def _make_api_engine(settings: ApiSettings) -> Engine:
    """The API's engine: while PostgreSQL is unreachable a request fails within a couple of seconds
    (and answers 503) instead of waiting on a connection attempt or a free pooled connection."""
    # hide_parameters: a failed statement's error (logged) must not carry a camera URL with its password.
    engine = make_engine(settings.database, hide_parameters=True, pool_timeout=settings.db_pool_timeout_seconds)

    @event.listens_for(engine, "do_connect")
    def _connect_timeout(_dialect: object, _record: object, _args: object, params: dict[str, object]) -> None:
        # make_engine owns connect_args; added here so a connect_timeout in the URL still wins.
        params.setdefault("connect_timeout", settings.db_connect_timeout_seconds)

    return engine


app = create_app()


def run() -> None:
    """Entry point of ``vap-api``: serve the API with uvicorn on the configured host and port."""
    settings = ApiSettings()
    configure_logging(service="vap-api", level=settings.log_level)
    uvicorn.run(
        "vap_api.main:app", host=settings.host, port=settings.port, log_config=None, access_log=settings.access_log
    )
