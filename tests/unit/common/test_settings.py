"""vap_common.settings: the settings every service reads from its environment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vap_common.settings import CommonSettings, DatabaseServiceSettings


def test_settings_read_nested_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAP_KAFKA__BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setenv("VAP_DATABASE__SCHEMA_NAME", "tenant_a")
    settings = DatabaseServiceSettings()
    assert settings.kafka.bootstrap_servers == "broker:9092"
    assert settings.database.schema_name == "tenant_a"


def test_production_refuses_local_database_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAP_ENVIRONMENT", "production")
    with pytest.raises(ValidationError, match="local development password"):
        DatabaseServiceSettings()


def test_production_process_without_database_needs_no_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    # The runner (CommonSettings) never opens PostgreSQL, so production must not ask it for a password.
    monkeypatch.setenv("VAP_ENVIRONMENT", "production")
    settings = CommonSettings()
    assert settings.environment == "production" and "database" not in CommonSettings.model_fields
