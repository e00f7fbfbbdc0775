"""PostgreSQL smoke tests: the migrated schema round-trips data, and migrations go both ways."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text

from tests.conftest import ROOT
from tests.helpers import child_environment
from vap_common.db import make_session_factory, migrate, transaction
from vap_common.schema import Base, Scenario, ScenarioResult
from vap_common.settings import DatabaseSettings

TABLES = {"scenarios", "outbox_scenario", "scenario_results", "workers"}


def test_scenario_round_trip(db_engine: Engine) -> None:
    factory = make_session_factory(db_engine)
    scenario_uuid = uuid.uuid4()
    with transaction(factory) as session:
        session.add(
            Scenario(scenario_uuid=scenario_uuid, camera_url="rtsp://cam.example/stream", status="init_startup")
        )
    with factory() as session:
        stored = session.get(Scenario, scenario_uuid)
    assert stored is not None
    assert (stored.camera_url, stored.status, stored.detector) == ("rtsp://cam.example/stream", "init_startup", "mock")
    assert stored.created_at.tzinfo is not None


def test_result_dedupe_key_rejects_same_run_and_frame(db_engine: Engine) -> None:
    scenario_uuid = uuid.uuid4()
    row = {
        "scenario_uuid": scenario_uuid,
        "run_id": "run-1",
        "frame_number": 7,
        "detections": [],
        "timestamp": "2026-11-25T00:00:00Z",
    }
    insert = text(
        "INSERT INTO scenario_results (scenario_uuid, run_id, frame_number, detections, timestamp) "
        "VALUES (:scenario_uuid, :run_id, :frame_number, CAST(:detections AS jsonb), :timestamp) "
        "ON CONFLICT ON CONSTRAINT uq_scenario_results_dedupe DO NOTHING"
    )
    with db_engine.begin() as connection:
        inserted = [connection.execute(insert, {**row, "detections": "[]"}).rowcount for _ in range(2)]
        inserted.append(connection.execute(insert, {**row, "run_id": "run-2", "detections": "[]"}).rowcount)
    assert inserted == [1, 0, 1]
    with db_engine.connect() as connection:
        count = connection.execute(select(ScenarioResult.id).where(ScenarioResult.scenario_uuid == scenario_uuid)).all()
    assert len(count) == 2


def test_models_match_migrations(db_engine: Engine) -> None:
    with db_engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_downgrade_base_then_upgrade_head(db_settings: DatabaseSettings, db_engine: Engine) -> None:
    migrate(db_settings, "base", down=True)
    assert TABLES.isdisjoint(inspect(db_engine).get_table_names(schema=db_settings.schema_name))
    migrate(db_settings, "head")
    assert TABLES <= set(inspect(db_engine).get_table_names(schema=db_settings.schema_name))


@pytest.fixture
def empty_schema(admin_engine: Engine, database_url: str) -> Iterator[DatabaseSettings]:
    schema = f"t_cli_{uuid.uuid4().hex[:10]}"
    with admin_engine.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    yield DatabaseSettings(url=database_url, schema_name=schema)
    with admin_engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))


def _alembic(settings: DatabaseSettings, *args: str) -> None:
    env = child_environment(
        {"VAP_DATABASE__URL": settings.url, "VAP_DATABASE__SCHEMA_NAME": settings.schema_name or ""}
    )
    result = subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_alembic_command_line_commits_upgrade_and_downgrade(
    empty_schema: DatabaseSettings, admin_engine: Engine
) -> None:
    """What the demo and the chart's migration Job run: the tables must still be there afterwards."""
    _alembic(empty_schema, "upgrade", "head")
    assert TABLES <= set(inspect(admin_engine).get_table_names(schema=empty_schema.schema_name))
    _alembic(empty_schema, "downgrade", "base")
    assert TABLES.isdisjoint(inspect(admin_engine).get_table_names(schema=empty_schema.schema_name))
