"""The prediction cursor under concurrent writers, on the real PostgreSQL: row ids become visible out
of commit order, and the page serves a row only once no older transaction can still add one behind
the cursor. Also: both of the inbox's COPY paths fill stored_xact, and the page query uses its index."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.api.api_test_support import add_scenario, follow, identities, page, store, wait_servable
from vap_api.inbox.consumer import Inbox
from vap_api.predictions.cursor import Position, encode_cursor
from vap_api.predictions.service import _QUERIES
from vap_common.contracts import FrameResultRecord
from vap_common.lifecycle import ScenarioStatus

_INSERT_ONE = text(
    "INSERT INTO scenario_results (scenario_uuid, run_id, frame_number, detections, timestamp) "
    "VALUES (:u, 'run-1', :frame, '[]', now()) RETURNING id, stored_xact::text AS xact"
)


def _insert(connection: Connection, scenario_uuid: uuid.UUID, frame: int) -> Position:
    row = connection.execute(_INSERT_ONE, {"u": scenario_uuid, "frame": frame}).one()
    return Position(int(row.xact), int(row.id))


def test_a_row_committed_after_a_higher_id_is_still_served_after_the_cursor(
    client: TestClient, db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    scenario_uuid = add_scenario(session_factory, status=ScenarioStatus.ACTIVE)
    store(db_engine, scenario_uuid, range(2))
    [before], cursor = follow(client, scenario_uuid, limit=10)
    assert [item["frame_number"] for item in before] == [0, 1]

    with db_engine.connect() as a, db_engine.connect() as b:
        transaction_a, transaction_b = a.begin(), b.begin()
        row_a = _insert(a, scenario_uuid, 2)  # takes its id (and transaction id) first ...
        row_b = _insert(b, scenario_uuid, 3)
        assert row_a.id < row_b.id and row_a.stored_xact < row_b.stored_xact
        transaction_b.commit()  # ... but commits last
        with db_engine.connect() as reader:
            committed = (
                reader.execute(
                    text("SELECT frame_number FROM scenario_results WHERE scenario_uuid = :u ORDER BY id"),
                    {"u": scenario_uuid},
                )
                .scalars()
                .all()
            )
        assert committed == [0, 1, 3]  # what any reader sees now: B's row, with the higher id, and a hole below it

        between = page(client, scenario_uuid, cursor=cursor)
        # B's row is not served while A, older, may still commit a row before it: the cursor stays put.
        assert between["results"] == [] and between["next_cursor"] == cursor

        transaction_a.commit()

    wait_servable(db_engine, scenario_uuid)
    after = page(client, scenario_uuid, cursor=between["next_cursor"])
    assert [item["frame_number"] for item in after["results"]] == [2, 3]
    assert page(client, scenario_uuid, cursor=after["next_cursor"])["results"] == []
    # The skip the guard prevents: a cursor at B's row (where a reader that served B between the two
    # commits would stand, by id or by (stored_xact, id)) never gets A's row, committed behind it.
    assert page(client, scenario_uuid, cursor=encode_cursor(row_b))["results"] == []
    with db_engine.connect() as reader:
        by_id = reader.execute(
            text("SELECT frame_number FROM scenario_results WHERE scenario_uuid = :u AND id > :id"),
            {"u": scenario_uuid, "id": row_b.id},
        )
        assert by_id.scalars().all() == []


def test_a_poller_gets_every_row_of_overlapping_writers_exactly_once(
    client: TestClient, db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    """Three writers interleaved so that ids, transaction ids and commits are in different orders; a
    poller reads after every step. It gets every row once, and never a row behind its cursor."""
    scenario_uuid = add_scenario(session_factory, status=ScenarioStatus.ACTIVE)
    seen: list[tuple[str, int]] = []
    cursor: str | None = None

    def poll() -> None:
        nonlocal cursor
        pages, cursor = follow(client, scenario_uuid, cursor=cursor, limit=2)
        seen.extend(identities(result for results in pages for result in results))

    with db_engine.connect() as a, db_engine.connect() as b, db_engine.connect() as c:
        ta, tb, tc = a.begin(), b.begin(), c.begin()
        _insert(b, scenario_uuid, 10)  # B's transaction id is the lowest
        _insert(a, scenario_uuid, 20)
        poll()
        _insert(c, scenario_uuid, 30)
        _insert(b, scenario_uuid, 11)  # B's second row: the highest id, the lowest transaction
        tc.commit()
        poll()
        ta.commit()
        poll()
        _insert(b, scenario_uuid, 12)
        tb.commit()
    wait_servable(db_engine, scenario_uuid)
    poll()

    assert sorted(seen) == sorted({("run-1", number) for number in (10, 11, 12, 20, 30)})
    assert len(seen) == 5
    # Stored order is transaction order: all of B (lowest transaction id), then A, then C.
    assert [number for _, number in seen] == [10, 11, 12, 20, 30]


def _record(scenario_uuid: uuid.UUID, frame: int) -> FrameResultRecord:
    return FrameResultRecord(
        scenario_uuid=scenario_uuid,
        run_id="run-1",
        frame_number=frame,
        detections=[],
        timestamp=datetime(2026, 12, 1, tzinfo=UTC),
    )


def test_both_inbox_copy_paths_fill_stored_xact_with_their_transaction(
    inbox: Inbox, db_engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    scenario_uuid = add_scenario(session_factory, status=ScenarioStatus.ACTIVE)
    xacts: list[str] = []
    # COPY straight into the table (fast path), then a redelivery with one new row (staging + ON CONFLICT).
    for frames in (range(3), range(4)):
        with db_engine.begin() as connection:
            inbox._store_results(connection, [_record(scenario_uuid, frame) for frame in frames])
            xacts.append(connection.execute(text("SELECT pg_current_xact_id()::text")).scalar_one())
    with db_engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT frame_number, stored_xact::text AS xact FROM scenario_results "
                "WHERE scenario_uuid = :u ORDER BY frame_number"
            ),
            {"u": scenario_uuid},
        ).all()
    assert [(row.frame_number, row.xact) for row in rows] == [
        (0, xacts[0]),
        (1, xacts[0]),
        (2, xacts[0]),
        (3, xacts[1]),
    ]
    assert int(xacts[0]) < int(xacts[1])


def _plan(
    db_engine: Engine, *, after_frame: int | None, file_source: bool, cursor: Position, scenario_uuid: uuid.UUID
) -> str:
    parameters: dict[str, Any] = {
        "scenario_uuid": scenario_uuid,
        "after_xact": str(cursor.stored_xact),
        "after_id": cursor.id,
        "limit": 100,
        "after_frame": after_frame,
    }
    query = _QUERIES[after_frame is not None, file_source]
    with db_engine.connect() as connection:
        connection.execute(text("ANALYZE scenario_results"))
        return "\n".join(connection.execute(text(f"EXPLAIN {query.text}"), parameters).scalars())


def test_the_page_query_reads_the_page_index(db_engine: Engine, session_factory: sessionmaker[Session]) -> None:
    scenarios = [add_scenario(session_factory, status=ScenarioStatus.ACTIVE) for _ in range(20)]
    with db_engine.begin() as connection:
        for scenario_uuid in scenarios:
            connection.execute(
                text(
                    "INSERT INTO scenario_results (scenario_uuid, run_id, frame_number, detections, timestamp) "
                    "SELECT :u, 'run-1', n, '[]', now() FROM generate_series(0, 999) AS n"
                ),
                {"u": scenario_uuid},
            )
    for file_source in (False, True):
        plan = _plan(
            db_engine, after_frame=None, file_source=file_source, cursor=Position(0, 0), scenario_uuid=scenarios[10]
        )
        # The cursor and the xmin guard are index conditions; the index order is the page order (no sort).
        assert "Index Scan using ix_scenario_results_page on scenario_results r" in plan and "Sort" not in plan, plan
        if file_source:  # the earlier-row check probes the frame index
            assert "ix_scenario_results_frame_order" in plan, plan
    # An old client polling near the end with after_frame: few rows match, either index serves it
    # without a scan of the table.
    plan = _plan(db_engine, after_frame=990, file_source=False, cursor=Position(0, 0), scenario_uuid=scenarios[10])
    assert "Seq Scan" not in plan, plan
