"""Camera credentials at registration, on the real app and PostgreSQL: stored and sent only sealed,
refused without a key, and a replay recognised across a key rotation."""

from __future__ import annotations

import json
from collections.abc import Callable

from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, text

from vap_api.settings import ApiSettings
from vap_common.camera_secrets import CameraKeyring, generate_key, key_ids
from vap_common.redact import redact_url

INIT = "/api/v1/scenario/init"
URL = "rtsp://admin:hunter2@cam.example:554/live?channel=1&token=t0ken"


def _stored(db_engine: Engine, scenario_uuid: str) -> tuple[str, str, str]:
    """(scenarios.camera_url, the outbox command's camera_url, every stored byte of both tables)."""
    with db_engine.connect() as connection:
        row = connection.execute(
            text("SELECT camera_url FROM scenarios WHERE scenario_uuid = :u"), {"u": scenario_uuid}
        )
        payload = connection.execute(
            text("SELECT payload FROM outbox_scenario WHERE scenario_uuid = :u"), {"u": scenario_uuid}
        ).scalar_one()
        dump = connection.execute(
            text("SELECT string_agg(s::text, '') || string_agg(o::text, '') FROM scenarios s, outbox_scenario o")
        ).scalar_one()
    command = payload if isinstance(payload, dict) else json.loads(payload)
    return row.scalar_one(), command["camera_url"], dump


def test_a_camera_password_is_stored_and_queued_only_sealed_and_shown_masked(
    client: TestClient, db_engine: Engine, api_settings: ApiSettings
) -> None:
    created = client.post(INIT, json={"camera_url": URL})
    assert created.status_code == 201, created.text
    scenario_uuid = created.json()["scenario_uuid"]
    stored, queued, dump = _stored(db_engine, scenario_uuid)
    assert stored == queued and key_ids(stored) == {"test"}
    assert "hunter2" not in dump and "t0ken" not in dump
    # The operator's key opens it to exactly the URL registered.
    assert api_settings.camera_keyring().open(stored) == URL
    shown = client.get(f"/api/v1/scenario/{scenario_uuid}").json()["camera_url"]
    assert shown == redact_url(URL) == "rtsp://admin:***@cam.example:554/live?channel=1&token=***"


def test_without_a_camera_key_a_password_is_refused_and_a_plain_camera_is_not(
    make_client: Callable[..., TestClient], api_settings: ApiSettings
) -> None:
    with make_client(api_settings.model_copy(update={"camera_keys": SecretStr("")})) as keyless:
        refused = keyless.post(INIT, json={"camera_url": URL})
        assert refused.status_code == 422
        [error] = refused.json()["detail"]
        assert (
            error["loc"] == ["body", "camera_url"]
            and "VAP_CAMERA_KEYS" in error["msg"]
            and "hunter2" not in refused.text
        )
        assert keyless.post(INIT, json={"camera_url": "rtsp://cam.example/live"}).status_code == 201


def test_a_replay_is_recognised_after_the_keys_rotated(
    make_client: Callable[..., TestClient], api_settings: ApiSettings, db_engine: Engine
) -> None:
    old, new = generate_key("old"), generate_key("new")
    headers = {"Idempotency-Key": "rotating"}
    with make_client(api_settings.model_copy(update={"camera_keys": SecretStr(old)})) as before:
        first = before.post(INIT, json={"camera_url": URL}, headers=headers)
    assert first.status_code == 201
    with make_client(api_settings.model_copy(update={"camera_keys": SecretStr(f"{new},{old}")})) as after:
        replay = after.post(INIT, json={"camera_url": URL}, headers=headers)
        changed = after.post(INIT, json={"camera_url": URL.replace("hunter2", "other")}, headers=headers)
        fresh = after.post(INIT, json={"camera_url": URL})
    assert (replay.status_code, replay.json()["scenario_uuid"]) == (200, first.json()["scenario_uuid"])
    assert changed.status_code == 422 and "already used with a different request" in changed.text
    assert key_ids(_stored(db_engine, fresh.json()["scenario_uuid"])[0]) == {"new"}
    assert CameraKeyring.parse([new, old]).open(_stored(db_engine, first.json()["scenario_uuid"])[0]) == URL
