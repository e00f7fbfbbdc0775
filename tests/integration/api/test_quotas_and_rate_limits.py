"""Per-tenant quotas and per-key rate limits on the real app and PostgreSQL: past them a clear 429
with Retry-After, nothing stored; other tenants and keys are not affected."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.api.api_test_support import bearer, issue_key
from vap_api.settings import ApiSettings, QuotaOptions, TenantQuota
from vap_common.lifecycle import ScenarioStatus
from vap_common.schema import OutboxScenario, Scenario

INIT = "/api/v1/scenario/init"
BODY = {"camera_url": "rtsp://cam.example/quota"}


def _counts(factory: sessionmaker[Session], tenant: str) -> tuple[int, int]:
    with factory() as session:
        scenarios = session.scalar(select(func.count()).select_from(Scenario).where(Scenario.tenant == tenant))
        commands = session.scalar(select(func.count()).select_from(OutboxScenario))
    return int(scenarios or 0), int(commands or 0)


def test_a_tenant_past_its_quota_of_scenarios_gets_429_until_one_ends(
    api_settings: ApiSettings, make_client: Callable[..., TestClient], session_factory: sessionmaker[Session]
) -> None:
    quotas = QuotaOptions(default=TenantQuota(max_scenarios=2), tenants={"big": TenantQuota(max_scenarios=3)})
    settings = api_settings.model_copy(update={"quotas": quotas})
    acme, big = issue_key(session_factory, tenant="acme"), issue_key(session_factory, tenant="big")
    with make_client(settings) as client:
        first, _second = (client.post(INIT, json=BODY, headers=bearer(acme)).json() for _ in range(2))
        refused = client.post(INIT, json=BODY, headers=bearer(acme))
        assert refused.status_code == 429 and refused.headers["retry-after"] == "10"
        assert "tenant 'acme' holds 2 scenarios that have not ended, its quota" in refused.json()["detail"]
        assert _counts(session_factory, "acme") == (2, 2)  # nothing stored for the refused request

        # Another tenant, with a quota of its own, is not affected.
        assert [client.post(INIT, json=BODY, headers=bearer(big)).status_code for _ in range(4)] == [201] * 3 + [429]

        # A scenario that ended (inactive or failed) no longer counts; one that is stopping still does.
        assert (
            client.post(f"/api/v1/scenario/{first['scenario_uuid']}/shutdown", headers=bearer(acme)).status_code == 202
        )
        assert client.post(INIT, json=BODY, headers=bearer(acme)).status_code == 429
        with session_factory() as session, session.begin():
            session.execute(
                update(Scenario)
                .where(Scenario.scenario_uuid == uuid.UUID(first["scenario_uuid"]))
                .values(status=ScenarioStatus.INACTIVE.value)
            )
        assert client.post(INIT, json=BODY, headers=bearer(acme)).status_code == 201


def test_a_tenant_past_its_analysis_rate_gets_429_and_each_scenario_keeps_its_own_rate(
    api_settings: ApiSettings, make_client: Callable[..., TestClient], session_factory: sessionmaker[Session]
) -> None:
    quotas = QuotaOptions(default=TenantQuota(max_analysis_fps=20))
    settings = api_settings.model_copy(update={"quotas": quotas, "max_analysis_fps": 12})
    with make_client(settings) as client:
        rated = client.post(INIT, json={**BODY, "analysis_fps": 5})
        unrated = client.post(INIT, json=BODY)  # the runtime's rate: counts as the most a scenario may ask, 12
        assert (rated.status_code, unrated.status_code) == (201, 201)
        refused = client.post(INIT, json={**BODY, "analysis_fps": 4})
        assert refused.status_code == 429 and refused.headers["retry-after"] == "10"
        assert "tenant 'default' analyses 17 frames/s in scenarios that have not ended" in refused.json()["detail"]
        assert client.post(INIT, json={**BODY, "analysis_fps": 3}).status_code == 201  # 20: exactly the quota
        too_fast = client.post(INIT, json={**BODY, "analysis_fps": 12.5})
        assert too_fast.status_code == 422 and too_fast.json()["detail"][0]["loc"] == ["body", "analysis_fps"]
        assert client.get(f"/api/v1/scenario/{rated.json()['scenario_uuid']}").json()["analysis_fps"] == 5
        assert client.get(f"/api/v1/scenario/{unrated.json()['scenario_uuid']}").json()["analysis_fps"] is None
    with session_factory() as session:
        rates = session.scalars(select(OutboxScenario.payload).order_by(OutboxScenario.id)).all()
    assert [payload.get("analysis_fps") for payload in rates] == [5, None, 3]


def test_a_replay_of_an_admitted_request_is_answered_even_with_the_quota_full(
    api_settings: ApiSettings, make_client: Callable[..., TestClient]
) -> None:
    settings = api_settings.model_copy(update={"quotas": QuotaOptions(default=TenantQuota(max_scenarios=1))})
    with make_client(settings) as client:
        created = client.post(INIT, json=BODY, headers={"Idempotency-Key": "cam-1"})
        replay = client.post(INIT, json=BODY, headers={"Idempotency-Key": "cam-1"})
        other = client.post(INIT, json=BODY, headers={"Idempotency-Key": "cam-2"})
    assert (created.status_code, replay.status_code, other.status_code) == (201, 200, 429)
    assert replay.json()["scenario_uuid"] == created.json()["scenario_uuid"]


def test_writes_past_a_keys_rate_get_429_while_reads_and_other_keys_go_on(
    api_settings: ApiSettings, make_client: Callable[..., TestClient], session_factory: sessionmaker[Session]
) -> None:
    settings = api_settings.model_copy(update={"writes_per_minute_per_key": 3})
    busy, calm = issue_key(session_factory), issue_key(session_factory)
    with make_client(settings) as client:
        answers = [client.post(INIT, json=BODY, headers=bearer(busy)).status_code for _ in range(3)]
        limited = client.post(INIT, json=BODY, headers=bearer(busy))
        shutdown = client.post(f"/api/v1/scenario/{uuid.uuid4()}/shutdown", headers=bearer(busy))
        reads = [client.get("/api/v1/scenarios", headers=bearer(busy)).status_code for _ in range(10)]
        other = client.post(INIT, json=BODY, headers=bearer(calm))
    assert answers == [201, 201, 201] and reads == [200] * 10 and other.status_code == 201
    assert limited.status_code == 429 and shutdown.status_code == 429  # shutdowns are writes too
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.json() == {"detail": "more than 3 requests a minute with this API key; retry later"}
    assert _counts(session_factory, "default") == (4, 4)
