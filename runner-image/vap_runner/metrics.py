"""The runner's Prometheus metrics, in a registry of its own (one runner per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class RunnerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.frames_read = Counter("vap_runner_frames_read", "Frames decoded from the source.", registry=self.registry)
        self.frames_analysed = Counter(
            "vap_runner_frames_analysed",
            "Frames analysed, their results handed to the publisher (see results_dropped).",
            registry=self.registry,
        )
        self.frames_dropped = Counter(
            "vap_runner_frames_dropped",
            "Live frames replaced by a newer one before analysis (analysis behind).",
            registry=self.registry,
        )
        self.frames_failed = Counter(
            "vap_runner_frames_failed",
            "Frames given up because the detector raised or its inference process crashed on them.",
            registry=self.registry,
        )
        self.inference_seconds = Histogram(
            "vap_runner_inference_seconds",
            "Time an inference process spent in detect() for one frame.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.reconnects = Counter(
            "vap_runner_reconnects", "Attempts to reopen the source after it failed or dropped.", registry=self.registry
        )
        self.inference_restarts = Counter(
            "vap_runner_inference_restarts",
            "Inference processes replaced after a crash or a hang.",
            registry=self.registry,
        )
        # Kafka outages (vap_runner.undelivered): what waits for Kafka, and what never reached it.
        self.results_dropped = Counter(
            "vap_runner_results_dropped",
            "Results never acknowledged by Kafka. cause=budget: a live stream's oldest, dropped when the "
            "undelivered-results budget was full; cause=undelivered: refused by Kafka, or still unacknowledged "
            "when the runner exited.",
            ["cause"],
            registry=self.registry,
        )
        self.results_undelivered = Gauge(
            "vap_runner_results_undelivered",
            "Results not yet acknowledged by Kafka (held or in the producer).",
            registry=self.registry,
        )
        self.results_undelivered_bytes = Gauge(
            "vap_runner_results_undelivered_bytes",
            "Memory those results use, estimated (at most VAP_UNDELIVERED_RESULTS_MIB).",
            registry=self.registry,
        )
        self.downstream_stalled_seconds = Gauge(
            "vap_runner_downstream_stalled_seconds",
            "Seconds since Kafka last acknowledged a result while results wait; 0 when none wait.",
            registry=self.registry,
        )

    def total(self, counter: str) -> int:
        """Current value of counter ``vap_runner_<counter>`` (e.g. ``total("frames_analysed")``)."""
        return int(self.registry.get_sample_value(f"vap_runner_{counter}_total") or 0)

    def results_dropped_total(self) -> int:
        """Results dropped for any cause."""
        return sum(
            int(self.registry.get_sample_value("vap_runner_results_dropped_total", {"cause": cause}) or 0)
            for cause in ("budget", "undelivered")
        )
