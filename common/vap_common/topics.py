"""Kafka topic names. Every producer and consumer builds names through :func:`topic_name`."""

from __future__ import annotations

from enum import StrEnum


class Topic(StrEnum):
    INIT_SCENARIO = "init_scenario"  # relay -> orchestrator: start/shutdown commands
    TO_DEPLOY = "to_deploy"  # orchestrator -> runtime/operator
    RESULTS = "results"  # runner -> API inbox
    SCENARIO_STATUS = "scenario_status"  # orchestrator/runner/operator -> API inbox
    EVENTS = "events"  # runner -> API inbox: what tracked objects did


DLQ_SUFFIX = ".dlq"


def topic_name(topic: Topic, prefix: str = "") -> str:
    """The broker-side name of ``topic`` under an optional isolation prefix."""
    return f"{prefix}{topic.value}"


def dlq_name(topic: str) -> str:
    """The dead-letter topic of a broker-side topic name."""
    return f"{topic}{DLQ_SUFFIX}"


def all_topic_names(prefix: str = "") -> list[str]:
    """Every topic the platform uses, dead-letter topics included."""
    names = [topic_name(topic, prefix) for topic in Topic]
    return names + [dlq_name(name) for name in names]
