"""Input PostgreSQL cannot store (NUL, lone surrogates, NaN/Infinity, over-long or over-deep values) is
a 422 naming its field, with nothing written; any real Unicode text is stored and served unchanged.

Bodies are sent as raw JSON text: a JSON encoder in the client would refuse NaN and lone surrogates,
which the server's JSON parser accepts.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from vap_common.schema import OutboxScenario, Scenario

INIT = "/api/v1/scenario/init"
URL = "rtsp://cam.example/s"


def _nested(depth: int) -> dict[str, Any]:
    """A detector.settings object ``depth`` containers deep (the settings object itself is 1)."""
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"level": value}
    return value


def _body(**fields: Any) -> bytes:
    return json.dumps({"camera_url": URL, **fields}).encode()


def _settings(settings: Any) -> bytes:
    return _body(detector={"name": "mock", "settings": settings})


SETTINGS = ["body", "detector", "settings"]
# Pydantic's own refusal of a lone surrogate in a length-checked string field (vap_api's rule would
# refuse it next, with "unpaired UTF-16 surrogates").
UNENCODABLE = "unable to parse raw data as a unicode string"


@pytest.mark.parametrize(
    ("content", "headers", "location", "message"),
    [
        (_body(name="gate\u0000a"), {}, ["body", "name"], "NUL"),
        (_body(name="gate\ud800"), {}, ["body", "name"], UNENCODABLE),
        (_body(name="\udc00"), {}, ["body", "name"], UNENCODABLE),
        (_body(name="n" * 201), {}, ["body", "name"], "at most 200"),
        (json.dumps({"camera_url": URL + "\u0000"}).encode(), {}, ["body", "camera_url"], "control characters"),
        (json.dumps({"camera_url": URL + "\ud800"}).encode(), {}, ["body", "camera_url"], UNENCODABLE),
        (_body(detector={"name": "mock\u0000"}), {}, ["body", "detector", "name"], "NUL"),
        (_body(detector={"name": "mo\ud83cck"}), {}, ["body", "detector", "name"], UNENCODABLE),
        (_body(detector={"name": "m" * 65}), {}, ["body", "detector", "name"], "at most 64"),
        (_settings({"a\u0000": 1}), {}, SETTINGS, "keys must not contain NUL"),
        (_settings({"a": {"b": {"\u0000": 1}}}), {}, SETTINGS, "keys must not contain NUL"),
        (_settings({"a": ["ok", {"b": "x\u0000y"}]}), {}, SETTINGS, "strings must not contain NUL"),
        (_settings({"\udfff": 1}), {}, SETTINGS, "keys must not contain unpaired UTF-16 surrogates"),
        (_settings({"a": [["\ud800"]]}), {}, SETTINGS, "strings must not contain unpaired UTF-16 surrogates"),
        (_settings({"threshold": float("nan")}), {}, SETTINGS, "finite"),
        (_settings({"a": [1, float("inf")]}), {}, SETTINGS, "finite"),
        (_settings({"a": {"b": float("-inf")}}), {}, SETTINGS, "finite"),
        (
            b'{"camera_url": "rtsp://c/s", "detector": {"settings": {"x": 1e400}}}',
            {},
            SETTINGS,
            "finite",
        ),  # parsed as inf
        (_settings(_nested(33)), {}, SETTINGS, "deeper than 32"),
        (_body(), {"Idempotency-Key": "key\u0000"}, ["header", "idempotency-key"], "printable ASCII"),
        (_body(**{"\ud800": 1}), {}, ["body"], UNENCODABLE),  # an unknown key that cannot even be shown
    ],
)
def test_input_postgresql_cannot_store_is_a_422_naming_the_field_and_nothing_is_written(
    client: TestClient,
    session_factory: sessionmaker[Session],
    content: bytes,
    headers: dict[str, str],
    location: list[str],
    message: str,
) -> None:
    response = client.post(INIT, content=content, headers={"content-type": "application/json", **headers})

    assert response.status_code == 422, response.text
    [error] = [item for item in response.json()["detail"] if item["loc"] == location]
    assert message in error["msg"], error
    with session_factory() as session:
        assert session.scalar(select(func.count()).select_from(Scenario)) == 0
        assert session.scalar(select(func.count()).select_from(OutboxScenario)) == 0


UNICODE = "кафе 東京 🎥"
SETTINGS_KEPT: dict[str, Any] = {  # valid mock settings (vap_common.detector_config.mock) with awkward text
    "classes": [UNICODE, "tab\tand\nnewline", "🎥", "back\\slash"],
    "max_detections": 7,
    "delay_ms": 5e-324,
}


@pytest.mark.parametrize("ensure_ascii", [True, False], ids=["escaped", "utf8"])
def test_unicode_text_is_accepted_and_stored_unchanged(
    client: TestClient, session_factory: sessionmaker[Session], ensure_ascii: bool
) -> None:
    body = {
        "camera_url": f"rtsp://cam.example/{UNICODE.replace(' ', '_')}",
        "name": UNICODE,
        "detector": {"name": "mock", "settings": SETTINGS_KEPT},
    }
    response = client.post(
        INIT, content=json.dumps(body, ensure_ascii=ensure_ascii).encode(), headers={"content-type": "application/json"}
    )

    assert response.status_code == 201, response.text
    scenario_uuid = uuid.UUID(response.json()["scenario_uuid"])
    with session_factory() as session:
        stored = session.get(Scenario, scenario_uuid)
        [command] = session.scalars(select(OutboxScenario.payload))
    assert stored is not None
    assert (stored.name, stored.camera_url, stored.detector_settings) == (UNICODE, body["camera_url"], SETTINGS_KEPT)
    assert command["detector"]["settings"] == SETTINGS_KEPT
    shown = client.get(f"/api/v1/scenario/{scenario_uuid}").json()
    assert (shown["name"], shown["camera_url"], shown["detector"]["settings"]) == (
        UNICODE,
        body["camera_url"],
        SETTINGS_KEPT,
    )
