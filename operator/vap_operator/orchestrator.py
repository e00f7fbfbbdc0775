"""The orchestrator: `init_scenario` commands -> `workers` rows -> `to_deploy` + `scenario_status`.

Per batch: the rows are written in one transaction, then the messages are produced and acknowledged,
then (ConsumerLoop) the offsets are committed. A crash after the commit redelivers the batch onto
existing rows; :func:`vap_operator.decisions.decide_command` then re-publishes what is still pending.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from functools import partial

from prometheus_client import Counter
from sqlalchemy.orm import Session, sessionmaker

from vap_common.consuming import Accepted, ConsumerLoop, Rejected
from vap_common.contracts import DeployCommand, ScenarioCommand
from vap_common.db import is_permanent_error, transaction
from vap_common.kafka import make_consumer, make_producer
from vap_common.redact import redact_url
from vap_common.settings import KafkaSettings
from vap_common.topics import Topic, topic_name
from vap_operator import workers
from vap_operator.decisions import decide_command
from vap_operator.publishing import Outgoing, Publisher, status_event

log = logging.getLogger(__name__)

COMMANDS = Counter("vap_orchestrator_commands_total", "Scenario commands handled", ["command", "outcome"])


class Orchestrator:
    """The ConsumerLoop handler for `init_scenario`."""

    def __init__(self, *, sessions: sessionmaker[Session], publisher: Publisher) -> None:
        self._sessions = sessions
        self._publisher = publisher

    def __call__(self, batch: Sequence[Accepted[ScenarioCommand]]) -> Sequence[Rejected]:
        outgoing: list[Outgoing] = []
        with transaction(self._sessions) as session:
            for item in batch:
                outgoing.extend(self._apply(session, item.value))
        self._publisher.send(outgoing)
        return []

    def _apply(self, session: Session, command: ScenarioCommand) -> list[Outgoing]:
        row, created = workers.lock_or_create(session, command, decide_command(None, command.command))
        effect = decide_command(None if created else workers.state_of(row), command.command)
        if effect.write_row and not created:
            workers.apply_effect(row, effect)
        outcome = "applied" if effect.write_row else "replay"
        COMMANDS.labels(command.command, outcome).inc()
        log.info(
            "scenario command",
            extra={
                "scenario_uuid": str(command.scenario_uuid),
                "command": command.command,
                "outcome": outcome,
                "camera_url": redact_url(row.camera_url),
                "deploy_action": effect.deploy_action,
            },
        )
        messages: list[Outgoing] = []
        if effect.publish_status is not None:
            messages.append(status_event(command.scenario_uuid, effect.publish_status))
        if effect.deploy_action is not None:
            messages.append(
                DeployCommand(
                    scenario_uuid=row.scenario_uuid,
                    worker_id=row.worker_id,
                    action=effect.deploy_action,
                    camera_url=row.camera_url,
                    detector=workers.detector_of(row),
                    tenant=row.tenant,
                    analysis_fps=row.analysis_fps,
                )
            )
        return messages


def build_loop(
    *,
    kafka: KafkaSettings,
    sessions: sessionmaker[Session],
    group_id: str,
    poll_timeout_seconds: float,
    stop: threading.Event,
    stall_timeout_seconds: float,
    consumer_overrides: dict[str, int] | None = None,
) -> ConsumerLoop[ScenarioCommand]:
    """The orchestrator's consumer loop (call ``.run()``; set ``stop`` to end it)."""
    producer = make_producer(kafka)
    return ConsumerLoop(
        new_consumer=partial(make_consumer, kafka, group_id=group_id, **(consumer_overrides or {})),
        dlq_producer=producer,
        contracts={topic_name(Topic.INIT_SCENARIO, kafka.topic_prefix): ScenarioCommand},
        handler=Orchestrator(sessions=sessions, publisher=Publisher(producer, topic_prefix=kafka.topic_prefix)),
        stop=stop,
        poll_timeout_seconds=poll_timeout_seconds,
        is_permanent=is_permanent_error,
        stall_timeout_seconds=stall_timeout_seconds,
    )
