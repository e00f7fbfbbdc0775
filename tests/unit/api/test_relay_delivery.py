"""How the relay turns delivery reports into published/failed rows (the Kafka producer is faked)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import create_engine

from vap_api.outbox.relay import OUTBOX_ID_HEADER, Relay, _Row
from vap_api.settings import RelayOptions
from vap_common.contracts import ScenarioCommand
from vap_common.settings import KafkaSettings


class FakeError:
    def __init__(self, text: str, *, fatal: bool = False) -> None:
        self.text, self._fatal = text, fatal

    def fatal(self) -> bool:
        return self._fatal

    def __str__(self) -> str:
        return self.text


class FakeProducer:
    """Accepts produce() calls; flush() reports each according to ``outcome(row_id)``."""

    def __init__(self, outcome: Callable[[int], FakeError | None | str]) -> None:
        self.outcome = outcome
        self.pending: list[tuple[int, Any]] = []
        self.produced: list[dict[str, Any]] = []

    def produce(self, topic: str, *, key: str, value: bytes, headers: dict[str, str], on_delivery: Any) -> None:
        row_id = int(headers[OUTBOX_ID_HEADER])
        if self.outcome(row_id) == "queue full":
            raise BufferError("Local: Queue full")
        self.produced.append({"topic": topic, "key": key, "value": value, "headers": headers})
        self.pending.append((row_id, on_delivery))

    def poll(self, _timeout: float) -> int:
        return 0

    def flush(self, _timeout: float) -> int:
        for row_id, on_delivery in self.pending:
            result = self.outcome(row_id)
            if result != "silent":
                on_delivery(result, None)
        self.pending.clear()
        return 0


def _rows(count: int) -> list[_Row]:
    rows = []
    for row_id in range(1, count + 1):
        scenario_uuid = uuid.uuid4()
        payload = ScenarioCommand(scenario_uuid=scenario_uuid, command="start", camera_url="rtsp://c/s").model_dump(
            mode="json"
        )
        rows.append(_Row(row_id, scenario_uuid, "init_scenario", "start", payload, datetime.now(UTC).timestamp()))
    return rows


def _relay(producer: FakeProducer) -> Relay:
    relay = Relay(
        engine=create_engine("postgresql+psycopg2://unused@127.0.0.1:1/unused"),
        kafka=KafkaSettings(topic_prefix="p."),
        options=RelayOptions(),
    )
    relay._producer = producer  # type: ignore[assignment]
    return relay


def test_only_acknowledged_rows_count_as_published() -> None:
    outcomes: dict[int, FakeError | None | str] = {
        1: None,
        2: FakeError("Broker: Not enough in-sync replicas"),
        3: "silent",
        4: "queue full",
        5: None,
    }
    producer = FakeProducer(lambda row_id: outcomes[row_id])

    errors = _relay(producer)._publish(_rows(5))

    assert errors == {
        2: "Broker: Not enough in-sync replicas",
        3: "no delivery report before the timeout",
        4: "BufferError: Local: Queue full",
    }
    assert {message["topic"] for message in producer.produced} == {"p.init_scenario"}


def test_records_are_keyed_by_scenario_and_carry_the_outbox_id() -> None:
    producer = FakeProducer(lambda _row_id: None)
    rows = _rows(2)

    _relay(producer)._publish(rows)

    assert [(message["key"], message["headers"]) for message in producer.produced] == [
        (str(row.scenario_uuid), {OUTBOX_ID_HEADER: str(row.id), "vap.event_type": "start"}) for row in rows
    ]
    assert ScenarioCommand.model_validate_json(producer.produced[0]["value"]).scenario_uuid == rows[0].scenario_uuid


def test_a_fatal_producer_error_replaces_the_producer() -> None:
    broken = FakeProducer(lambda _row_id: FakeError("Fatal: idempotence", fatal=True))
    relay = _relay(broken)

    assert relay._publish(_rows(1)) == {1: "Fatal: idempotence"}
    assert relay._producer is not broken
