"""Typed FastAPI dependencies shared by the routers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from vap_api.settings import ApiSettings


def get_settings(request: Request) -> ApiSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_session(request: Request) -> Iterator[Session]:
    """A session for one request; service functions open and commit their own transaction."""
    with request.app.state.session_factory() as session:
        yield session


SettingsDep = Annotated[ApiSettings, Depends(get_settings)]
# Closed when the route function returns, before the response is sent: closing rolls back a read's
# transaction, and a database lost at that moment must still be answered (503), not break the
# client's connection after a response was started.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
