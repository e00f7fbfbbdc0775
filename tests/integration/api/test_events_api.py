"""GET /api/v1/scenario/{uuid}/events and /event-counts on real PostgreSQL, fed through the inbox."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from tests.integration.api.api_test_support import add_scenario, bearer, issue_key, produce, run_loop_until
from tests.integration.api.events_test_support import CAPTURED, encoded, object_event, wait_events_servable
from vap_common.consuming import ConsumerLoop
from vap_common.contracts import EventType, ObjectEvent
from vap_common.lifecycle import ScenarioStatus
from vap_common.settings import KafkaSettings
from vap_common.topics import Topic, topic_name

KINDS = list(EventType)


@pytest.fixture
def deliver(
    make_inbox_loop: Callable[..., ConsumerLoop], kafka_settings: KafkaSettings, db_engine: Engine
) -> Callable[[list[ObjectEvent]], None]:
    """Produce events to `events`, run one inbox until it stored them, wait until the API may serve them."""
    loop = make_inbox_loop()

    def run(events: list[ObjectEvent]) -> None:
        produce(kafka_settings, topic_name(Topic.EVENTS, kafka_settings.topic_prefix), encoded(events))
        run_loop_until(loop, len(events))
        for scenario in {event.scenario_uuid for event in events}:
            wait_events_servable(db_engine, scenario)

    return run


def _mixed(scenario: uuid.UUID, count: int, *, start: int = 0) -> list[ObjectEvent]:
    """Events of every type, two classes, two zones and lines, a second apart from ``start``."""
    events = []
    for number in range(start, start + count):
        kind = KINDS[number % len(KINDS)]
        shape = {"zone": f"zone-{number % 2}"} if kind in (EventType.OBJECT_ENTERED, EventType.OBJECT_LEFT) else {}
        if kind is EventType.LINE_CROSSED:
            shape = {"line": f"line-{number % 2}", "direction": ("left_to_right", "right_to_left")[number % 3 % 2]}
        events.append(
            object_event(scenario, number, event_type=kind, class_name=("person", "car")[number % 3 % 2], **shape)
        )
    return events


def _get(client: TestClient, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _follow(client: TestClient, scenario: uuid.UUID, *, limit: int, **params: Any) -> tuple[list[dict[str, Any]], str]:
    """Every event from the first page until a short one, and the cursor to go on with."""
    events: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        cursor_param = {"cursor": cursor} if cursor else {}
        body = _get(client, f"/api/v1/scenario/{scenario}/events", limit=limit, **params, **cursor_param)
        events += body["events"]
        cursor = body["next_cursor"]
        assert isinstance(cursor, str) and cursor
        if len(body["events"]) < limit:
            return events, cursor


def test_pages_serve_every_event_once_in_stored_order_and_the_cursor_picks_up_new_ones(
    client: TestClient, session_factory: sessionmaker[Session], deliver: Callable[[list[ObjectEvent]], None]
) -> None:
    scenario = add_scenario(session_factory, status=ScenarioStatus.ACTIVE)
    deliver(_mixed(scenario, 95))

    served, cursor = _follow(client, scenario, limit=20)
    deliver(_mixed(scenario, 7, start=95) + [object_event(scenario, 0, run_id="run-2")])  # and a restarted runner
    later = _get(client, f"/api/v1/scenario/{scenario}/events", cursor=cursor)

    assert [event["sequence"] for event in served] == list(range(95))
    assert [(event["run_id"], event["sequence"]) for event in later["events"]] == [
        *(("run-1", number) for number in range(95, 102)),
        ("run-2", 0),
    ]
    first = served[4]
    assert first == {
        "event_id": f"{scenario}:run-1:4",
        "run_id": "run-1",
        "sequence": 4,
        "type": "line_crossed",
        "track_id": 4,
        "class": "car",
        "frame_number": 12,
        "captured_at": (CAPTURED + timedelta(seconds=4)).isoformat().replace("+00:00", "Z"),
        "zone": None,
        "line": "line-0",
        "direction": "right_to_left",
        "dwell_seconds": None,
    }
    default_page = _get(client, f"/api/v1/scenario/{scenario}/events")["events"]  # 100 of the 103 events
    assert default_page == served + later["events"][:5]


def test_filters_by_type_zone_line_class_and_capture_time(
    client: TestClient, session_factory: sessionmaker[Session], deliver: Callable[[list[ObjectEvent]], None]
) -> None:
    scenario, other = (add_scenario(session_factory, status=ScenarioStatus.ACTIVE) for _ in range(2))
    events = _mixed(scenario, 60)
    deliver(events + _mixed(other, 10))

    def sequences(**params: Any) -> list[int]:
        return [event["sequence"] for event in _follow(client, scenario, limit=7, **params)[0]]

    def expected(keep: Callable[[ObjectEvent], bool]) -> list[int]:
        return [event.sequence for event in events if keep(event)]

    entered_or_left = {EventType.OBJECT_ENTERED, EventType.OBJECT_LEFT}
    assert sequences() == list(range(60))
    assert sequences(type=["object_entered", "object_left"]) == expected(lambda e: e.type in entered_or_left)
    assert sequences(type="line_crossed") == expected(lambda e: e.type is EventType.LINE_CROSSED)
    assert sequences(zone="zone-1") == expected(lambda e: e.zone == "zone-1")
    assert sequences(line="line-0", type="line_crossed") == expected(lambda e: e.line == "line-0")
    assert sequences(**{"class": "car"}) == expected(lambda e: e.class_name == "car")
    since, until = CAPTURED + timedelta(seconds=10), CAPTURED + timedelta(seconds=25)
    assert sequences(since=since.isoformat(), until=until.isoformat()) == list(range(10, 25))
    assert sequences(since=since.isoformat(), zone="zone-0", **{"class": "person"}) == expected(
        lambda e: e.sequence >= 10 and e.zone == "zone-0" and e.class_name == "person"
    )
    assert sequences(zone="nowhere") == []


def test_counts_per_bucket_and_group_are_what_was_stored(
    client: TestClient, session_factory: sessionmaker[Session], deliver: Callable[[list[ObjectEvent]], None]
) -> None:
    scenario = add_scenario(session_factory, status=ScenarioStatus.ACTIVE)
    events = _mixed(scenario, 100)
    deliver(events)

    def counts(**params: Any) -> Counter[tuple[Any, ...]]:
        body = _get(client, f"/api/v1/scenario/{scenario}/event-counts", **params)
        assert body["truncated"] is False
        groups = [
            (item["start"], item["zone"], item["line"], item["class"], item["type"], item["direction"])
            for item in body["buckets"]
        ]
        starts = [group[0] for group in groups]
        assert starts == sorted(starts)
        return Counter({group: item["count"] for group, item in zip(groups, body["buckets"], strict=True)})

    def expected(bucket_seconds: int, keep: Callable[[ObjectEvent], bool] = lambda _e: True) -> Counter[Any]:
        found: Counter[tuple[Any, ...]] = Counter()
        for event in filter(keep, events):
            start = datetime.fromtimestamp(int(event.captured_at.timestamp()) // bucket_seconds * bucket_seconds, UTC)
            start_text = start.isoformat().replace("+00:00", "Z")
            found[start_text, event.zone, event.line, event.class_name, event.type.value, event.direction] += 1
        return found

    assert counts(bucket_seconds=15) == expected(15) and len(expected(15)) > 7
    assert counts() == expected(60)
    assert sum(counts(bucket_seconds=86_400).values()) == 100
    since, until = CAPTURED + timedelta(seconds=30), CAPTURED + timedelta(seconds=45)
    assert counts(bucket_seconds=7, since=since.isoformat(), until=until.isoformat()) == expected(
        7, lambda e: since <= e.captured_at < until
    )


def test_another_tenants_scenario_is_not_found_and_an_unknown_one_neither(
    client: TestClient,
    session_factory: sessionmaker[Session],
    deliver: Callable[[list[ObjectEvent]], None],
) -> None:
    scenario, unknown = add_scenario(session_factory, status=ScenarioStatus.ACTIVE), uuid.uuid4()
    deliver(_mixed(scenario, 3))
    globex = bearer(issue_key(session_factory, tenant="globex"))

    assert len(_get(client, f"/api/v1/scenario/{scenario}/events")["events"]) == 3
    assert sum(item["count"] for item in _get(client, f"/api/v1/scenario/{scenario}/event-counts")["buckets"]) == 3
    for path in ("events", "event-counts"):
        for target, headers in ((scenario, globex), (unknown, {})):
            refused = client.get(f"/api/v1/scenario/{target}/{path}", headers=headers)
            assert refused.status_code == 404, refused.text
            assert refused.json() == {"detail": f"scenario {target} not found"}


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("events", {"type": "object_teleported"}, "type"),
        ("events", {"type": ["object_lost", "nope"]}, "type"),
        ("events", {"cursor": "not-a-cursor"}, "cursor"),
        ("events", {"limit": 0}, "limit"),
        ("events", {"zone": ""}, "zone"),
        ("events", {"line": "x" * 65}, "line"),
        ("events", {"class": "x" * 101}, "class"),
        ("events", {"since": "yesterday"}, "since"),
        ("events", {"since": "2026-12-03T10:00:00"}, "since"),  # no time zone
        ("events", {"since": "2026-12-03T10:00:00Z", "until": "2026-12-03T10:00:00Z"}, "until"),
        ("event-counts", {"bucket_seconds": 0}, "bucket_seconds"),
        ("event-counts", {"bucket_seconds": 86_401}, "bucket_seconds"),
        ("event-counts", {"until": "2026-12-03T10:00:00+01:00", "since": "2026-12-03T10:00:00Z"}, "until"),
    ],
)
def test_bad_query_parameters_answer_422_naming_the_parameter(
    client: TestClient, session_factory: sessionmaker[Session], path: str, params: dict[str, Any], parameter: str
) -> None:
    scenario = add_scenario(session_factory, status=ScenarioStatus.ACTIVE)
    response = client.get(f"/api/v1/scenario/{scenario}/{path}", params=params)
    assert response.status_code == 422, response.text
    assert [item["loc"][:2] for item in response.json()["detail"]] == [["query", parameter]]
