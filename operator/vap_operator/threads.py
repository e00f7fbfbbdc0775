"""Work beside the main thread.

- Consumer loops: a crash of one stops the whole process (no silent half-operator). Outages do not
  crash them (ConsumerLoop retries its batch); what does is a bug or a wedged consumer, which a
  supervisor's restart cures.
- Periodic tasks (e.g. lease renewal): a failed period is logged and the next one tries again, so an
  outage of what the task talks to never stops the process.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from vap_common.consuming import ConsumerLoop

log = logging.getLogger(__name__)


def start_loop_thread(name: str, loop: ConsumerLoop[Any], *, on_crash: Callable[[], None]) -> threading.Thread:
    """Run ``loop`` in a thread; if it raises, log it and call ``on_crash`` (which stops the process)."""

    def target() -> None:
        try:
            loop.run()
        except Exception:
            log.exception("consumer loop crashed; stopping", extra={"loop": name})
            on_crash()
        finally:
            loop.consumer.close()

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def start_periodic_thread(
    name: str, task: Callable[[], object], *, interval_seconds: float, stop: threading.Event
) -> threading.Thread:
    """Run ``task`` now and then every ``interval_seconds`` (start to start) until ``stop`` is set.

    Any error of one run is logged; the next run comes on time. Nothing here ends the process.
    """

    def target() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                task()
            except Exception:
                log.exception(
                    "periodic task failed; trying again next period",
                    extra={"task": name, "interval_seconds": interval_seconds},
                )
            stop.wait(max(0.0, interval_seconds - (time.monotonic() - started)))

    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


def stop_process(stop: threading.Event) -> None:
    """Stop everything: our loops (``stop``) and kopf, which stops on SIGTERM (its own handler)."""
    stop.set()
    os.kill(os.getpid(), signal.SIGTERM)
