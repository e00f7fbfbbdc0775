"""Consumer loops beside the main thread: a crash of one stops the whole process (no silent half-operator)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

from vap_common.consuming import ConsumerLoop

log = logging.getLogger(__name__)


def start_loop_thread(name: str, loop: ConsumerLoop, *, on_crash: Callable[[], None]) -> threading.Thread:
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


def stop_process(stop: threading.Event) -> None:
    """Stop everything: our loops (``stop``) and kopf, which stops on SIGTERM (its own handler)."""
    stop.set()
    os.kill(os.getpid(), signal.SIGTERM)
