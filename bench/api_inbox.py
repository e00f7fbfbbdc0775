"""Inbox ingestion (issue 3): results/s from Kafka into scenario_results, next to a raw COPY.

60,000 frame results (3 detections each, 20 scenarios) go to this run's `results` topic (4
partitions). Then, each time into an emptied scenario_results table of the same schema:
  copy         raw COPY of the same rows straight into scenario_results (PostgreSQL's ceiling);
  store        the inbox's store step alone (Inbox._store_results: COPY in a savepoint), batches of
               2,000 — no Kafka, no parsing; then "redelivery": the same batches again, every row
               already stored, which takes the dedup path (COPY into a staging table + INSERT ...
               SELECT ... ON CONFLICT DO NOTHING);
  values       the alternative considered: multi-row INSERT ... VALUES ... ON CONFLICT DO NOTHING
               (psycopg2 execute_values), same batches;
  inbox_1      the real path in this process: ConsumerLoop + Inbox consuming the pre-produced topic,
               parsing every message, storing, committing offsets (batches of 2,000);
  inbox_2proc  two real `python -m vap_api.inbox` processes in one consumer group (the way the inbox
               scales); they are started and have joined before the bench produces the results.
Each inbox clock starts at the first stored row (joining the group is not ingestion).
Goal: inbox >= 0.5 x copy and >= 20,000 results/s. Prints the figures and writes
bench/results/api.json (section "inbox"). Run: .venv/bin/python -m bench.api_inbox
"""

from __future__ import annotations

import io
import resource
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import msgspec
from confluent_kafka.admin import AdminClient
from psycopg2.extras import execute_values
from sqlalchemy import Engine, insert, text

from bench._api_common import Child, Stack, isolated_stack, record, wait_for
from vap_api.inbox.consumer import Inbox, _copy_lines
from vap_common.consuming import ConsumerLoop
from vap_common.contracts import Detection, FrameResult, FrameResultRecord, decode, encode
from vap_common.db import make_engine
from vap_common.kafka import ensure_topics, make_admin, make_consumer, make_producer
from vap_common.schema import Scenario
from vap_common.topics import Topic, all_topic_names, topic_name

SCENARIOS = 20
FRAMES_PER_SCENARIO = 3000
BATCH = 2000
PARTITIONS = 4
COLUMNS = "scenario_uuid, run_id, frame_number, detections, timestamp"


def _results(scenarios: list[uuid.UUID]) -> list[FrameResult]:
    start = datetime(2026, 11, 25, tzinfo=UTC)
    detections = [
        Detection(class_name=label, confidence=0.8, bbox=(10.0 * i, 20.0, 110.0, 220.0))
        for i, label in enumerate(("person", "car", "person"))
    ]
    return [
        FrameResult(
            scenario_uuid=scenario_uuid,
            run_id="run-1",
            frame_number=number,
            detections=detections,
            timestamp=start + timedelta(milliseconds=40 * number),
        )
        for number in range(FRAMES_PER_SCENARIO)
        for scenario_uuid in scenarios
    ]


def _emptied(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE scenario_results RESTART IDENTITY"))
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM ANALYZE scenario_results"))


def _count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM scenario_results")).scalar_one())


def _highest_id(engine: Engine) -> int:
    """Rows stored so far, cheaply (an index lookup): ids start at 1 and nothing conflicts here."""
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT coalesce(max(id), 0) FROM scenario_results")).scalar_one())


def _timed(engine: Engine, work: Callable[[], None], expected: int) -> float:
    _emptied(engine)
    started = time.perf_counter()
    work()
    elapsed = time.perf_counter() - started
    assert _count(engine) == expected, "not every row was stored"
    return expected / elapsed


def _rate_from_first_row(engine: Engine, total: int, *, timeout_seconds: float = 300.0) -> float:
    """Results/s from the first stored row until all ``total`` are stored (polled every 20 ms)."""
    deadline = time.monotonic() + timeout_seconds
    while (first := _highest_id(engine)) == 0:
        if time.monotonic() > deadline:
            raise SystemExit("the inbox stored nothing")
        time.sleep(0.005)
    started = time.perf_counter()
    while _highest_id(engine) < total:
        if time.monotonic() > deadline:
            raise SystemExit("the inbox did not store every result in time")
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    assert _count(engine) == total, "not every row was stored exactly once"
    return (total - first) / elapsed


def _produce(stack: Stack, topic: str, results: list[FrameResult], values: list[bytes]) -> None:
    producer = make_producer(stack.kafka, **{"linger.ms": 20, "batch.size": 1_000_000})
    for result, value in zip(results, values, strict=True):
        producer.produce(topic, key=str(result.scenario_uuid), value=value)
        producer.poll(0)
    assert producer.flush(60) == 0


def _group_members(admin: AdminClient, group: str) -> int:
    """Members of ``group`` that hold partitions (``admin`` must outlive the request)."""
    future = admin.describe_consumer_groups([group])[group]
    try:
        description = future.result(10)
    except Exception:  # noqa: BLE001 - the group does not exist yet
        return 0
    return sum(1 for member in description.members if member.assignment and member.assignment.topic_partitions)


def main() -> None:
    with isolated_stack("inbox", partitions=PARTITIONS) as stack, tempfile.TemporaryDirectory() as logs:
        engine = make_engine(stack.database, pool_size=2)
        scenarios = [uuid.uuid4() for _ in range(SCENARIOS)]
        with engine.begin() as connection:
            connection.execute(
                insert(Scenario),
                [{"scenario_uuid": s, "camera_url": "rtsp://cam.example/s", "status": "active"} for s in scenarios],
            )
        results = _results(scenarios)
        values = [encode(result) for result in results]
        records = [decode(FrameResultRecord, value) for value in values]  # what the inbox stores
        total = len(results)
        prefix = stack.kafka.topic_prefix
        inbox = Inbox(
            engine=engine,
            results_topic=topic_name(Topic.RESULTS, prefix),
            status_topic=topic_name(Topic.SCENARIO_STATUS, prefix),
            events_topic=topic_name(Topic.EVENTS, prefix),
        )
        copy_text = "".join(_copy_lines(records))

        def raw_copy() -> None:
            with engine.begin() as connection, connection.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
                cursor.copy_expert(f"COPY scenario_results ({COLUMNS}) FROM STDIN", io.StringIO(copy_text))

        def store() -> None:
            for start in range(0, total, BATCH):
                with engine.begin() as connection:
                    inbox._store_results(connection, records[start : start + BATCH])

        def multi_row_values() -> None:
            for start in range(0, total, BATCH):
                rows = [
                    (
                        str(r.scenario_uuid),
                        r.run_id,
                        r.frame_number,
                        msgspec.json.encode(r.detections).decode(),
                        r.timestamp,
                    )
                    for r in records[start : start + BATCH]
                ]
                with engine.begin() as connection, connection.connection.dbapi_connection.cursor() as cursor:  # type: ignore[union-attr]
                    execute_values(
                        cursor,
                        f"INSERT INTO scenario_results ({COLUMNS}) VALUES %s "
                        "ON CONFLICT ON CONSTRAINT uq_scenario_results_dedupe DO NOTHING",
                        rows,
                        template="(%s::uuid, %s, %s, %s::jsonb, %s)",
                        page_size=BATCH,
                    )

        rates = {"copy": _timed(engine, raw_copy, total), "store": _timed(engine, store, total)}
        started = time.perf_counter()
        store()  # every row is already there: the redelivery path
        rates["redelivery"] = total / (time.perf_counter() - started)
        assert _count(engine) == total
        rates["values"] = _timed(engine, multi_row_values, total)

        # One consumer in this process, over the pre-produced topic.
        _produce(stack, inbox.results_topic, results, values)
        _emptied(engine)
        loop = ConsumerLoop(
            new_consumer=partial(make_consumer, stack.kafka, group_id=f"bench-{uuid.uuid4().hex[:8]}"),
            dlq_producer=make_producer(stack.kafka),
            contracts=inbox.contracts,
            handler=inbox.handle,
            stop=threading.Event(),
            batch_size=BATCH,
        )
        loop.consumer.subscribe(list(inbox.contracts))

        def consume_all() -> None:
            seen = 0
            while seen < total:
                seen += loop.run_once()

        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        thread = threading.Thread(target=consume_all)
        thread.start()
        rates["inbox_1"] = _rate_from_first_row(engine, total)
        thread.join()
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        loop.consumer.close()
        cpu_us_per_result = (
            ((cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)) / total * 1e6
        )

        # Two inbox processes, joined before the results arrive (a fresh topic prefix's group).
        _emptied(engine)
        fresh = Stack(stack.database, stack.kafka.model_copy(update={"topic_prefix": prefix + "p2."}))
        admin = make_admin(stack.kafka)
        ensure_topics(admin, all_topic_names(fresh.kafka.topic_prefix), partitions=PARTITIONS)
        env = fresh.env(VAP_INBOX__BATCH_SIZE=str(BATCH))
        children = [Child("vap_api.inbox", env, Path(logs) / f"inbox-{index}.log") for index in range(2)]
        try:
            group = f"{fresh.kafka.topic_prefix}vap-api-inbox"
            wait_for(lambda: _group_members(admin, group) == 2, timeout_seconds=60, what="both inbox processes to join")
            producer_thread = threading.Thread(
                target=_produce, args=(fresh, topic_name(Topic.RESULTS, fresh.kafka.topic_prefix), results, values)
            )
            producer_thread.start()
            rates["inbox_2proc"] = _rate_from_first_row(engine, total)
            producer_thread.join()
        finally:
            for child in children:
                child.stop()
            for future in admin.delete_topics(all_topic_names(fresh.kafka.topic_prefix)).values():
                future.result(30)
        engine.dispose()

    record(
        "inbox",
        {
            "results": total,
            "batch": BATCH,
            "raw_copy_results_per_s": round(rates["copy"]),
            "inbox_1_consumer_results_per_s": round(rates["inbox_1"]),
            "inbox_1_consumer_vs_copy": round(rates["inbox_1"] / rates["copy"], 3),
            "inbox_2_processes_results_per_s": round(rates["inbox_2proc"]),
            "inbox_2_processes_vs_copy": round(rates["inbox_2proc"] / rates["copy"], 3),
            "inbox_1_consumer_cpu_us_per_result": round(cpu_us_per_result, 1),
            "store_step_results_per_s": round(rates["store"]),
            "store_step_redelivery_results_per_s": round(rates["redelivery"]),
            "store_step_insert_values_on_conflict_results_per_s": round(rates["values"]),
            "goal": ">= 0.5 x copy and >= 20000 results/s",
        },
    )


if __name__ == "__main__":
    main()
