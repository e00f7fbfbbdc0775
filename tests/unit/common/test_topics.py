"""vap_common.topics: topic names, prefixes and dead-letter topics."""

from __future__ import annotations

from vap_common.topics import Topic, all_topic_names, dlq_name, topic_name


def test_topic_names_with_prefix_and_dlq() -> None:
    assert topic_name(Topic.RESULTS, "t1.") == "t1.results"
    assert dlq_name("t1.results") == "t1.results.dlq"
    assert sorted(all_topic_names()) == sorted(
        [
            "init_scenario",
            "to_deploy",
            "results",
            "scenario_status",
            "events",
            "init_scenario.dlq",
            "to_deploy.dlq",
            "results.dlq",
            "scenario_status.dlq",
            "events.dlq",
        ]
    )
