"""Ten scenarios at once, and kill -9 of the relay, the operator and a runner mid-flow, each then
restarted: every scenario reaches its final state, and nothing a runner published is lost or stored
twice. (The inbox killed: tests/integration/api/test_inbox_consumer.py and tests/faults/.)

What "exactly once" means here (``check_stored_equals_published``): the set of (run_id, frame_number)
pairs stored in scenario_results equals the set the runners published on the `results` topic, and
no pair is stored twice. A killed runner is replaced by a new run (a new run_id) that reads the file
from its start, so a frame number may legitimately be stored once per run; the end-of-file run
therefore has to cover every sampled frame, and the API returns each frame number once, in order.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

from sqlalchemy import Engine, text

from dev.platform_stack import PlatformStack
from tests.e2e.e2e_support import (
    CAR_SAMPLED,
    CAR_URL,
    Api,
    ResultsTopic,
    check_stored_equals_published,
    runner_pids,
    worker_row,
)
from tests.helpers import wait_until
from vap_common.contracts import ScenarioCommand, decode
from vap_common.kafka import make_consumer
from vap_common.settings import KafkaSettings
from vap_common.topics import Topic, topic_name

# Up to 400 ms per frame (200 ms on average): a file scenario lasts about 15 s, long enough to kill
# something while every scenario is mid-file; the sleep costs no CPU.
SLOW = {"delay_ms": 400}


def check_ran_to_the_end(
    api: Api, engine: Engine, topic: ResultsTopic, scenario: uuid.UUID, *, runs: int = 1
) -> dict[str, list[int]]:
    """A file scenario that ended by itself: inactive, its last run analysed every sampled frame, the
    API returns each sampled frame once, and what was published is stored exactly once."""
    body = api.wait_status(scenario, "inactive", timeout_seconds=120)
    assert body["error_reason"] is None, body
    wait_until(lambda: not runner_pids(scenario), timeout_seconds=20, what=f"the runner of {scenario} to exit")
    published = check_stored_equals_published(engine, topic, scenario)
    assert len(published) == runs, (
        f"expected {runs} run(s) of {scenario}: { {run: len(frames) for run, frames in published.items()} }"
    )
    *earlier, last = published.values()
    assert last == CAR_SAMPLED, f"the last run of {scenario} did not analyse every sampled frame: {last}"
    for frames in earlier:  # a killed run got as far as it got, in order
        assert frames == CAR_SAMPLED[: len(frames)], frames
    assert api.frame_numbers(scenario) == CAR_SAMPLED
    return published


def check_stopped(api: Api, engine: Engine, topic: ResultsTopic, scenario: uuid.UUID) -> dict[str, list[int]]:
    """A file scenario shut down before its end (maybe before any runner started): inactive, no runner
    left, each run got as far as it got in order, what was published is stored exactly once, and the
    API returns each stored frame number once."""
    body = api.wait_status(scenario, "inactive", timeout_seconds=60)
    assert body["error_reason"] is None, body
    wait_until(lambda: not runner_pids(scenario), timeout_seconds=20, what=f"the runner of {scenario} to exit")
    published = check_stored_equals_published(engine, topic, scenario)
    for frames in published.values():
        assert frames == CAR_SAMPLED[: len(frames)], frames
    assert api.frame_numbers(scenario) == sorted({frame for frames in published.values() for frame in frames})
    return published


def test_ten_scenarios_at_once_each_stores_exactly_one_result_per_analysed_frame(
    platform: PlatformStack, api: Api, db_engine: Engine, results_topic: ResultsTopic, sample_video: Path
) -> None:
    scenarios = [api.init(CAR_URL, name=f"load {index}") for index in range(10)]
    for scenario in scenarios:
        check_ran_to_the_end(api, db_engine, results_topic, scenario)
        assert worker_row(db_engine, scenario)["restart_count"] == 0
    with db_engine.connect() as connection:
        counts = dict(connection.execute(text("SELECT scenario_uuid, count(*) FROM scenario_results GROUP BY 1")).all())
    assert counts == {scenario: len(CAR_SAMPLED) for scenario in scenarios}, (
        "the test schema holds other rows than its scenarios' results"
    )


def commands_per_scenario(kafka: KafkaSettings) -> dict[uuid.UUID, list[str]]:
    """The init_scenario topic: each scenario's commands in order, consecutive repeats collapsed (a relay
    killed between the broker's ack and its UPDATE publishes the row again: at-least-once)."""
    consumer = make_consumer(kafka, group_id=f"e2e-commands-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([topic_name(Topic.INIT_SCENARIO, kafka.topic_prefix)])
    commands: dict[uuid.UUID, list[str]] = {}
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - quiet_since < 3:  # after the group join, read until 3 s without a message
            for message in consumer.consume(num_messages=500, timeout=0.5):
                assert message.error() is None, message.error()
                command = decode(ScenarioCommand, message.value())
                steps = commands.setdefault(command.scenario_uuid, [])
                if not steps or steps[-1] != command.command:
                    steps.append(command.command)
                quiet_since = time.monotonic()
    finally:
        consumer.close()
    return commands


def test_relay_killed_and_restarted(
    platform: PlatformStack,
    api: Api,
    db_engine: Engine,
    results_topic: ResultsTopic,
    kafka_settings: KafkaSettings,
    sample_video: Path,
) -> None:
    early = [api.init(CAR_URL, settings=SLOW) for _ in range(2)]
    platform.kill("relay")  # at once: the early commands may or may not have been published
    late = [api.init(CAR_URL, settings=SLOW) for _ in range(2)]
    stopped = early[0]
    api.shutdown(stopped)  # its shutdown waits in the outbox
    time.sleep(2)
    assert [api.status(scenario) for scenario in late] == ["init_startup", "init_startup"], (
        "a command went out while no relay ran"
    )
    with db_engine.connect() as connection:
        waiting = connection.execute(
            text("SELECT count(*) FROM outbox_scenario WHERE published_at IS NULL")
        ).scalar_one()
    assert waiting >= 3, (
        f"{waiting} outbox rows unpublished while the relay is down; "
        "expected the 2 late starts and the shutdown at least"
    )

    platform.start("relay")
    check_stopped(api, db_engine, results_topic, stopped)
    for scenario in [early[1], *late]:
        check_ran_to_the_end(api, db_engine, results_topic, scenario)

    # Every command reached Kafka, in order per scenario, none lost.
    with db_engine.connect() as connection:
        assert (
            connection.execute(text("SELECT count(*) FROM outbox_scenario WHERE published_at IS NULL")).scalar_one()
            == 0
        )
    commands = commands_per_scenario(kafka_settings)
    assert commands == {stopped: ["start", "shutdown"], early[1]: ["start"], late[0]: ["start"], late[1]: ["start"]}


def test_operator_killed_and_restarted_adopts_its_running_scenarios(
    platform: PlatformStack, api: Api, db_engine: Engine, results_topic: ResultsTopic, sample_video: Path
) -> None:
    running = [api.init(CAR_URL, settings=SLOW) for _ in range(2)]
    stopped = api.init(CAR_URL, settings=SLOW)
    scenarios = [*running, stopped]
    for scenario in scenarios:
        api.wait_status(scenario, "active", timeout_seconds=60)
    wait_until(
        lambda: all(len(api.frame_numbers(s)) >= 3 for s in scenarios),
        timeout_seconds=30,
        what="3 stored frames of each scenario",
    )
    first_pids = {scenario: worker_row(db_engine, scenario)["process_pid"] for scenario in scenarios}
    assert all(first_pids.values()), first_pids

    platform.kill("operator")  # orchestrator + local runtime; its runners keep running and publishing
    time.sleep(1)
    assert all(first_pids[s] in runner_pids(s) for s in scenarios), "a runner died with the operator"
    api.shutdown(stopped)  # while no orchestrator runs: the command waits on init_scenario
    time.sleep(1)
    assert api.status(stopped) == "init_shutdown"

    platform.start("operator")  # adopts the runners still running: no new run, the same processes
    check_stopped(api, db_engine, results_topic, stopped)
    for scenario in running:
        check_ran_to_the_end(api, db_engine, results_topic, scenario, runs=1)
        assert worker_row(db_engine, scenario)["restart_count"] == 0
    row = worker_row(db_engine, stopped)
    assert (row["status"], row["desired_state"], row["process_pid"]) == ("inactive", "inactive", None)


def test_runner_killed_is_restarted_as_a_new_run(
    platform: PlatformStack, api: Api, db_engine: Engine, results_topic: ResultsTopic, sample_video: Path
) -> None:
    victim, bystander = api.init(CAR_URL, settings=SLOW), api.init(CAR_URL, settings=SLOW)
    for scenario in (victim, bystander):
        api.wait_status(scenario, "active", timeout_seconds=60)
    wait_until(lambda: len(api.frame_numbers(victim)) >= 5, timeout_seconds=30, what="5 stored frames of the victim")
    pid = worker_row(db_engine, victim)["process_pid"]
    assert pid in runner_pids(victim), (
        f"workers.process_pid {pid} is not a process of the scenario: {runner_pids(victim)}"
    )

    os.kill(pid, signal.SIGKILL)
    wait_until(
        lambda: (row := worker_row(db_engine, victim))["process_pid"] not in (None, pid) and row["restart_count"] == 1,
        timeout_seconds=30,
        what="the runtime to restart the killed runner",
    )
    runs = check_ran_to_the_end(api, db_engine, results_topic, victim, runs=2)
    assert len(next(iter(runs.values()))) >= 5  # the killed run's results stay stored
    check_ran_to_the_end(api, db_engine, results_topic, bystander)
    assert worker_row(db_engine, bystander)["restart_count"] == 0
