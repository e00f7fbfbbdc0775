"""Entry points.

- ``vap-operator`` (also ``python -m vap_operator``): the orchestrator (unless
  VAP_ORCHESTRATOR__ENABLED=false) plus the runtime chosen by VAP_RUNTIME: ``kubernetes`` (kopf
  operator + to_deploy consumer) or ``local`` (runner child processes on this machine).
- ``vap-orchestrator``: the orchestrator alone (e.g. its own Deployment, scaled independently).
"""

from __future__ import annotations

import logging
import signal
import threading
import types

from prometheus_client import start_http_server
from sqlalchemy import Engine

from vap_common.consuming import ConsumerLoop
from vap_common.contracts import ScenarioCommand
from vap_common.db import make_engine, make_session_factory
from vap_operator.logs import setup_logging
from vap_operator.orchestrator import build_loop
from vap_operator.settings import OperatorSettings
from vap_operator.threads import start_loop_thread, stop_process

log = logging.getLogger(__name__)


def _stop_on_signals(stop: threading.Event) -> None:
    def handle(signum: int, _frame: types.FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def _orchestrator_loop(
    settings: OperatorSettings, engine: Engine, stop: threading.Event
) -> ConsumerLoop[ScenarioCommand]:
    """The init_scenario consumer of this process (vap-operator's thread or vap-orchestrator itself)."""
    return build_loop(
        kafka=settings.kafka,
        sessions=make_session_factory(engine),
        group_id=settings.orchestrator.consumer_group,
        poll_timeout_seconds=settings.orchestrator.poll_timeout_seconds,
        stop=stop,
        stall_timeout_seconds=settings.consumer_stall_timeout_seconds,
        consumer_overrides=settings.consumer_overrides(),
    )


def main() -> None:
    """vap-operator: orchestrator + the configured runtime, until SIGTERM/SIGINT."""
    settings = OperatorSettings()
    setup_logging(service=f"vap-operator-{settings.runtime}", level=settings.log_level)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    engine = make_engine(settings.database)
    stop = threading.Event()
    # Set when the process stops because something broke (not on request): local runners then keep
    # running for the restarted runtime to adopt, and the exit code is non-zero for the supervisor.
    crashed = threading.Event()
    if settings.runtime == "local":
        _stop_on_signals(stop)  # kopf installs its own handlers in the kubernetes runtime

    def on_crash() -> None:
        crashed.set()
        stop_process(stop)

    orchestrator_thread = None
    if settings.orchestrator.enabled:
        loop = _orchestrator_loop(settings, engine, stop)
        orchestrator_thread = start_loop_thread("orchestrator", loop, on_crash=on_crash)
    try:
        if settings.runtime == "kubernetes":
            from vap_operator.kube.run import run_kubernetes

            run_kubernetes(settings, engine, stop)  # kopf handles SIGTERM/SIGINT itself
        else:
            from vap_operator.local.run import run_local

            run_local(settings, engine, stop, crashed)
    finally:
        stop.set()
        if orchestrator_thread is not None:
            orchestrator_thread.join(timeout=30)
        engine.dispose()
    if crashed.is_set():
        raise SystemExit(1)


def orchestrator_main() -> None:
    """vap-orchestrator: the init_scenario consumer alone, until SIGTERM/SIGINT."""
    settings = OperatorSettings()
    setup_logging(service="vap-orchestrator", level=settings.log_level)
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    engine = make_engine(settings.database)
    stop = threading.Event()
    _stop_on_signals(stop)
    loop = _orchestrator_loop(settings, engine, stop)
    try:
        loop.run()
    finally:
        loop.consumer.close()
        engine.dispose()
