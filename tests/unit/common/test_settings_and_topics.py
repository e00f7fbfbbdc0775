from __future__ import annotations

import pytest
from pydantic import ValidationError

from vap_common.settings import CommonSettings, DatabaseServiceSettings
from vap_common.topics import Topic, all_topic_names, dlq_name, topic_name


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


def test_topic_names_with_prefix_and_dlq() -> None:
    assert topic_name(Topic.RESULTS, "t1.") == "t1.results"
    assert dlq_name("t1.results") == "t1.results.dlq"
    assert sorted(all_topic_names()) == sorted(
        [
            "init_scenario",
            "to_deploy",
            "results",
            "scenario_status",
            "init_scenario.dlq",
            "to_deploy.dlq",
            "results.dlq",
            "scenario_status.dlq",
        ]
    )
