"""The API with its credential check taken out, for bench/api_http.py's side-by-side figure only:
every request is let through as a reader and writer of the default tenant. Never deploy this."""

from __future__ import annotations

import uvicorn

from vap_api.auth.keys import Principal, Scope
from vap_api.deps import authenticate
from vap_api.main import create_app
from vap_api.settings import ApiSettings
from vap_common.tenants import DEFAULT_TENANT

ANYONE = Principal(DEFAULT_TENANT, frozenset(Scope), key_id="none")


def main() -> None:
    settings = ApiSettings()
    app = create_app(settings)
    app.dependency_overrides[authenticate] = lambda: ANYONE
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=settings.access_log)


if __name__ == "__main__":
    main()
