"""Who may call the API: 401 without a valid key, 403 without the scope, 404 for another tenant's
scenario; keys stored as hashes and managed with `vap-admin` (real app, real PostgreSQL)."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from tests.helpers import child_environment
from tests.integration.api.api_test_support import bearer, issue_key
from vap_api.auth.keys import Scope, revoke_key
from vap_api.main import create_app
from vap_api.settings import ApiSettings, AuthOptions
from vap_common.contracts import ScenarioCommand
from vap_common.schema import ApiKey, OutboxScenario, Scenario
from vap_common.settings import DatabaseSettings

INIT = "/api/v1/scenario/init"
BODY = {"camera_url": "rtsp://cam.example/gate"}
SOME_UUID = uuid.UUID("00000000-0000-4000-8000-000000000001")
# Every /api/v1 endpoint: (method, path, body, the scope it needs).
ENDPOINTS = [
    ("POST", INIT, BODY, Scope.SCENARIOS_WRITE),
    ("GET", f"/api/v1/scenario/{SOME_UUID}", None, Scope.SCENARIOS_READ),
    ("GET", "/api/v1/scenarios", None, Scope.SCENARIOS_READ),
    ("GET", f"/api/v1/prediction/{SOME_UUID}", None, Scope.SCENARIOS_READ),
    ("GET", f"/api/v1/scenario/{SOME_UUID}/events", None, Scope.SCENARIOS_READ),
    ("GET", f"/api/v1/scenario/{SOME_UUID}/event-counts", None, Scope.SCENARIOS_READ),
    ("POST", f"/api/v1/scenario/{SOME_UUID}/shutdown", None, Scope.SCENARIOS_WRITE),
]


@pytest.fixture
def anonymous(api_settings: ApiSettings) -> Iterator[Callable[..., Any]]:
    """The app without default credentials; ``call(method, path, body, headers)`` answers."""
    with TestClient(create_app(api_settings), raise_server_exceptions=False) as test_client:
        yield lambda method, path, body=None, headers=None: test_client.request(
            method, path, json=body, headers=headers or {}
        )


def _call(client: TestClient, method: str, path: str, body: dict[str, Any] | None = None, key: str = "") -> Any:
    return client.request(method, path, json=body, headers=bearer(key) if key else {})


@pytest.mark.parametrize(("method", "path", "body", "_scope"), ENDPOINTS)
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer vap_0123456789ab_" + "x" * 43, "Bearer not-a-key", "Basic dXNlcjpwdw==", "Bearer "],
    ids=["none", "unknown key", "malformed key", "basic scheme", "empty bearer"],
)
def test_every_endpoint_answers_401_without_a_valid_key(
    anonymous: Any, method: str, path: str, body: dict[str, Any] | None, _scope: Scope, authorization: str | None
) -> None:
    response = anonymous(method, path, body, {"Authorization": authorization} if authorization else None)
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert "API key" in response.json()["detail"]


@pytest.mark.parametrize(("method", "path", "body", "scope"), ENDPOINTS)
def test_every_endpoint_answers_403_naming_the_scope_a_key_lacks(
    anonymous: Any,
    session_factory: sessionmaker[Session],
    method: str,
    path: str,
    body: dict[str, Any] | None,
    scope: Scope,
) -> None:
    other = next(candidate for candidate in (Scope.SCENARIOS_READ, Scope.SCENARIOS_WRITE) if candidate != scope)
    key = issue_key(session_factory, scopes=[other, Scope.METRICS_READ])
    response = anonymous(method, path, body, bearer(key))
    assert response.status_code == 403, response.text
    assert response.json() == {"detail": f"this API key lacks the scope {scope.value!r}"}
    allowed = anonymous(method, path, body, bearer(issue_key(session_factory, scopes=[scope])))
    assert allowed.status_code in (200, 201, 404), allowed.text  # past the check: the scenario is unknown


def test_a_tenant_sees_and_acts_only_on_its_own_scenarios(
    anonymous: Any, session_factory: sessionmaker[Session]
) -> None:
    acme, globex = issue_key(session_factory, tenant="acme"), issue_key(session_factory, tenant="globex")
    created = anonymous("POST", INIT, BODY, bearer(acme))
    assert created.status_code == 201
    scenario = created.json()["scenario_uuid"]

    for method, path in (
        ("GET", f"/api/v1/scenario/{scenario}"),
        ("GET", f"/api/v1/prediction/{scenario}"),
        ("GET", f"/api/v1/scenario/{scenario}/events"),
        ("GET", f"/api/v1/scenario/{scenario}/event-counts"),
        ("POST", f"/api/v1/scenario/{scenario}/shutdown"),
    ):
        refused = anonymous(method, path, None, bearer(globex))
        assert refused.status_code == 404, (method, path, refused.text)  # 404, not 403: nothing leaks
        assert refused.json() == {"detail": f"scenario {scenario} not found"}
    assert anonymous("GET", "/api/v1/scenarios", None, bearer(globex)).json()["items"] == []
    listed = anonymous("GET", "/api/v1/scenarios", None, bearer(acme)).json()["items"]
    assert [item["scenario_uuid"] for item in listed] == [scenario]
    assert anonymous("GET", f"/api/v1/scenario/{scenario}", None, bearer(acme)).json()["status"] == "init_startup"
    assert anonymous("POST", f"/api/v1/scenario/{scenario}/shutdown", None, bearer(acme)).status_code == 202

    with session_factory() as session:
        stored = session.get(Scenario, uuid.UUID(scenario))
        commands = [ScenarioCommand.model_validate(row.payload) for row in session.scalars(select(OutboxScenario))]
    assert stored is not None and stored.tenant == "acme"
    assert [(command.command, command.tenant) for command in commands] == [("start", "acme"), ("shutdown", "acme")]


def test_an_idempotency_key_is_its_tenants_own(anonymous: Any, session_factory: sessionmaker[Session]) -> None:
    acme, globex = issue_key(session_factory, tenant="acme"), issue_key(session_factory, tenant="globex")
    same = {"Idempotency-Key": "order-1"}
    first = anonymous("POST", INIT, BODY, {**bearer(acme), **same})
    replay = anonymous("POST", INIT, BODY, {**bearer(acme), **same})
    other = anonymous("POST", INIT, BODY, {**bearer(globex), **same})
    assert (first.status_code, replay.status_code, other.status_code) == (201, 200, 201)
    assert replay.json()["scenario_uuid"] == first.json()["scenario_uuid"] != other.json()["scenario_uuid"]


def test_health_and_readiness_need_no_key_and_metrics_follow_the_setting(
    anonymous: Any, api_settings: ApiSettings, session_factory: sessionmaker[Session]
) -> None:
    assert [anonymous("GET", path).status_code for path in ("/healthz", "/readyz", "/metrics")] == [200, 200, 200]
    private = api_settings.model_copy(update={"auth": AuthOptions(public_metrics=False)})
    with TestClient(create_app(private), raise_server_exceptions=False) as client:
        assert _call(client, "GET", "/metrics").status_code == 401
        reader = issue_key(session_factory, scopes=[Scope.SCENARIOS_READ])
        assert _call(client, "GET", "/metrics", key=reader).status_code == 403
        scraper = issue_key(session_factory, scopes=[Scope.METRICS_READ])
        scraped = _call(client, "GET", "/metrics", key=scraper)
        assert scraped.status_code == 200 and "vap_api_auth_refused_total" in scraped.text
        assert _call(client, "GET", "/healthz").status_code == 200


def test_swagger_can_authorize_every_api_endpoint_with_a_bearer_key(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["ApiKey"]["description"],
    }
    operations = [
        (path, method, operation)
        for path, item in schema["paths"].items()
        if path.startswith("/api/v1/")
        for method, operation in item.items()
    ]
    assert len(operations) == len(ENDPOINTS)
    for path, method, operation in operations:
        assert operation["security"] == [{"ApiKey": []}], (method, path)
        assert {"401", "403"} <= set(operation["responses"]), (method, path)
    assert "security" not in schema["paths"]["/healthz"]["get"]


def test_only_a_hash_of_a_key_is_stored(session_factory: sessionmaker[Session]) -> None:
    key = issue_key(session_factory, tenant="acme")
    with session_factory() as session:
        dump = session.execute(text("SELECT row_to_json(api_keys)::text FROM api_keys")).scalars().all()
        stored = session.scalars(select(ApiKey)).one()
    secret = key.split("_", 2)[2]
    assert len(dump) == 1 and secret not in dump[0] and key not in dump[0]
    assert key.startswith(f"vap_{stored.key_id}_") and stored.key_sha256 != key.encode()


def _admin(
    db_settings: DatabaseSettings, *args: str, stdin: str | None = None, **environ: str
) -> subprocess.CompletedProcess[str]:
    environment = {"VAP_DATABASE__URL": db_settings.url, "VAP_DATABASE__SCHEMA_NAME": db_settings.schema_name or ""}
    return subprocess.run(
        [sys.executable, "-m", "vap_api.auth.admin", *args],
        env=child_environment({**environment, **environ}),
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_a_key_made_before_is_registered_once_and_a_rerun_changes_nothing(
    db_settings: DatabaseSettings, api_settings: ApiSettings, make_client: Callable[..., TestClient]
) -> None:
    """What the chart's bootstrapApiKey hook runs at each install and upgrade."""
    generated = _admin(db_settings, "keys", "generate")
    key = generated.stdout.strip()
    assert generated.returncode == 0 and key.startswith("vap_")
    uncached = api_settings.model_copy(update={"auth": AuthOptions(key_cache_seconds=0)})
    with make_client(uncached) as client:
        assert _call(client, "GET", "/api/v1/scenarios", key=key).status_code == 401  # generated, not stored
        first = _admin(db_settings, "keys", "register", "--tenant", "acme", "--from-env", "KEY", KEY=key)
        assert first.returncode == 0 and "registered" in first.stderr, first.stderr
        assert _call(client, "GET", "/api/v1/scenarios", key=key).status_code == 200
        assert _call(client, "POST", INIT, BODY, key=key).status_code == 201  # the default scopes: read and write
        assert _admin(db_settings, "keys", "revoke", key.split("_")[1]).returncode == 0
        rerun = _admin(db_settings, "keys", "register", "--tenant", "acme", stdin=key + "\n")
        assert rerun.returncode == 0 and "registered already: unchanged" in rerun.stderr
        assert _call(client, "GET", "/api/v1/scenarios", key=key).status_code == 401  # revoked stays revoked
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")  # the same id, another secret
    clash = _admin(db_settings, "keys", "register", "--tenant", "acme", stdin=forged)
    assert clash.returncode == 2 and "another key has the id" in clash.stderr
    malformed = _admin(db_settings, "keys", "register", "--tenant", "acme", stdin="not-a-key")
    assert malformed.returncode == 2 and "not an API key" in malformed.stderr and "not-a-key" not in malformed.stderr


def test_vap_admin_creates_lists_and_revokes_keys(
    db_settings: DatabaseSettings, api_settings: ApiSettings, make_client: Callable[..., TestClient]
) -> None:
    created = _admin(db_settings, "keys", "create", "--tenant", "acme", "--scope", "scenarios:read", "--name", "ci")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("vap_") and "not shown again" in created.stderr
    key_id = key.split("_")[1]

    listed = _admin(db_settings, "keys", "list", "--tenant", "acme")
    assert listed.returncode == 0 and key_id in listed.stdout and "scenarios:read" in listed.stdout
    assert key.split("_", 2)[2] not in listed.stdout and "active" in listed.stdout

    uncached = api_settings.model_copy(update={"auth": AuthOptions(key_cache_seconds=0)})
    with make_client(uncached) as client:
        assert _call(client, "GET", "/api/v1/scenarios", key=key).status_code == 200
        assert _call(client, "POST", INIT, BODY, key=key).status_code == 403
        assert _admin(db_settings, "keys", "revoke", key_id).returncode == 0
        assert _call(client, "GET", "/api/v1/scenarios", key=key).status_code == 401
    again = _admin(db_settings, "keys", "revoke", key_id)
    assert again.returncode == 1 and "no active key" in again.stderr
    assert "revoked" in _admin(db_settings, "keys", "list").stdout

    bad = _admin(db_settings, "keys", "create", "--tenant", "Not A Label")
    assert bad.returncode == 2 and "lower-case DNS label" in bad.stderr


def test_a_revoked_key_keeps_working_only_for_the_cache_time(
    api_settings: ApiSettings, make_client: Callable[..., TestClient], session_factory: sessionmaker[Session]
) -> None:
    key = issue_key(session_factory, tenant="acme")
    cached = api_settings.model_copy(update={"auth": AuthOptions(key_cache_seconds=3600)})
    with make_client(cached) as client:
        assert _call(client, "GET", "/api/v1/scenarios", key=key).status_code == 200
        with session_factory() as session:
            assert revoke_key(session=session, key_id=key.split("_")[1])
        # Remembered: the documented price of not asking PostgreSQL on every request.
        assert _call(client, "GET", "/api/v1/scenarios", key=key).status_code == 200
    with make_client(cached) as fresh:  # a new process (or the cache time passed) asks again
        assert _call(fresh, "GET", "/api/v1/scenarios", key=key).status_code == 401
