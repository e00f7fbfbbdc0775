"""The vap_api settings classes read VAP_* variables, with safe defaults."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vap_api.settings import ApiSettings, InboxSettings, RelaySettings
from vap_common import detector_config


def test_api_defaults_refuse_file_urls_and_allow_the_shipped_detectors(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("VAP_ALLOW_FILE_URLS", "VAP_DETECTORS", "VAP_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = ApiSettings()
    assert settings.allow_file_urls is False
    assert settings.detectors == detector_config.names() == ["haar_face", "hog_person", "mock", "motion", "onnx"]
    assert (settings.prediction_default_limit, settings.prediction_max_limit) == (100, 1000)


def test_api_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAP_ALLOW_FILE_URLS", "true")
    monkeypatch.setenv("VAP_DETECTORS", '["mock"]')
    monkeypatch.setenv("VAP_PORT", "8123")
    settings = ApiSettings()
    assert (settings.allow_file_urls, settings.detectors, settings.port) == (True, ["mock"], 8123)


def test_an_empty_detector_list_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAP_DETECTORS", "[]")
    with pytest.raises(ValidationError, match="at least one detector"):
        ApiSettings()


def test_a_detector_list_can_only_narrow_the_known_detectors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAP_DETECTORS", '["mock", "yolo9000"]')
    with pytest.raises(ValidationError, match=r"unknown detectors \['yolo9000'\]"):
        ApiSettings()


def test_relay_and_inbox_options_use_nested_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAP_RELAY__BATCH_SIZE", "17")
    monkeypatch.setenv("VAP_RELAY__RETENTION_HOURS", "2.5")
    monkeypatch.setenv("VAP_INBOX__GROUP_ID", "inbox-a")
    monkeypatch.setenv("VAP_INBOX__SESSION_TIMEOUT_SECONDS", "6")
    relay, inbox = RelaySettings(), InboxSettings()
    assert (relay.relay.batch_size, relay.relay.retention_hours) == (17, 2.5)
    assert (inbox.inbox.group_id, inbox.inbox.session_timeout_seconds) == ("inbox-a", 6.0)


def test_a_session_timeout_the_broker_would_refuse_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAP_INBOX__SESSION_TIMEOUT_SECONDS", "1")
    with pytest.raises(ValidationError):
        InboxSettings()


def test_production_refuses_the_local_database_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAP_ENVIRONMENT", "production")
    monkeypatch.delenv("VAP_DATABASE__URL", raising=False)
    with pytest.raises(ValidationError, match="local development password"):
        ApiSettings()


def test_api_self_healing_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "VAP_MAX_STARTING_SCENARIOS",
        "VAP_START_QUEUE_RETRY_AFTER_SECONDS",
        "VAP_RUNTIME_STALE_AFTER_SECONDS",
        "VAP_DB_UNAVAILABLE_RETRY_AFTER_SECONDS",
    ):
        monkeypatch.delenv(name, raising=False)
    settings = ApiSettings()
    assert (
        settings.db_connect_timeout_seconds,
        settings.db_pool_timeout_seconds,
        settings.db_unavailable_retry_after_seconds,
    ) == (2, 2.0, 2)
    assert (settings.max_starting_scenarios, settings.start_queue_retry_after_seconds) == (1000, 5)
    assert (settings.runtime_stale_after_seconds, settings.max_detector_settings_depth) == (30.0, 32)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VAP_MAX_STARTING_SCENARIOS", "0"),
        ("VAP_DB_CONNECT_TIMEOUT_SECONDS", "1"),
        ("VAP_START_QUEUE_RETRY_AFTER_SECONDS", "0"),
        ("VAP_MAX_DETECTOR_SETTINGS_DEPTH", "500"),
    ],
)
def test_api_limits_out_of_range_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        ApiSettings()


def test_api_keys_only_by_default_and_oidc_configured_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ApiSettings().auth.oidc is None
    monkeypatch.setenv("VAP_AUTH__OIDC__ISSUER", "https://id.example/realms/vap")
    monkeypatch.setenv("VAP_AUTH__OIDC__AUDIENCE", "vap-api")
    monkeypatch.setenv("VAP_AUTH__OIDC__JWKS_URL", "https://id.example/jwks")
    monkeypatch.setenv("VAP_AUTH__OIDC__SCOPE_CLAIM", "scp")
    oidc = ApiSettings().auth.oidc
    assert oidc is not None and (oidc.issuer, oidc.jwks_url, oidc.scope_claim) == (
        "https://id.example/realms/vap",
        "https://id.example/jwks",
        "scp",
    )


def test_quotas_default_to_100_scenarios_and_overrides_must_name_tenants(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAP_QUOTAS__TENANTS", '{"acme": {"max_scenarios": 500}}')
    quotas = ApiSettings().quotas
    assert (quotas.of("acme").max_scenarios, quotas.of("globex").max_scenarios) == (500, 100)
    monkeypatch.setenv("VAP_QUOTAS__TENANTS", '{"Not A Tenant": {"max_scenarios": 5}}')
    with pytest.raises(ValidationError, match="not tenant names"):
        ApiSettings()


def test_the_camera_policy_lists_are_checked_when_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAP_CAMERA_POLICY__ALLOW", "127.0.0.0/8, cam.lan")
    assert ApiSettings().camera_policy.allow == ["127.0.0.0/8", "cam.lan"]
    monkeypatch.setenv("VAP_CAMERA_POLICY__DENY", "rtsp://x/")
    with pytest.raises(ValidationError, match="neither a CIDR nor a host name"):
        ApiSettings()
