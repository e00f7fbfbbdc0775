"""An inference process: builds the detector once, then analyses the frames the main process sends.

It returns each frame's result as the encoded Kafka message, so that the main process, whose GIL the
reading thread shares, only orders and publishes bytes.

Protocol on its pipe (main -> inference process): ``(frame_number, SlotRef as a tuple, captured_at in UTC without
its tzinfo)`` or ``None`` to stop.
Inference process -> main: ``("ready",)``, ``("init_error", message)``, ``("result", frame_number, message_bytes,
seconds)``, ``("error", frame_number, message)``.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import time
from datetime import UTC
from multiprocessing.connection import Connection
from typing import Any
from uuid import UUID

import cv2

from vap_common.contracts import FrameResult, encode
from vap_common.detector_config import DetectorConfig
from vap_common.logs import configure_logging
from vap_runner.detectors import build_detector
from vap_runner.slots import SlotRef, SlotViews

log = logging.getLogger(__name__)

# How often an idle inference process checks that the main process still exists (it exits if not: no orphans).
_PARENT_CHECK_SECONDS = 1.0


def send_message(conn: Connection, message: tuple[Any, ...] | None) -> None:
    """Send one message of the protocol above, either way. Pickled directly: ``Connection.send`` builds a
    ForkingPickler per call, GIL time the main process's reading thread would wait for."""
    conn.send_bytes(pickle.dumps(message, pickle.HIGHEST_PROTOCOL))


def inference_main(conn: Connection, config: DetectorConfig, log_level: str, scenario_uuid: UUID, run_id: str) -> None:
    # Shutdown is the main process's decision: it finishes in-flight frames, then sends None. A
    # terminal's Ctrl-C or a process-group SIGTERM must not kill frames in flight.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(service="vap-runner-inference", level=log_level)
    # One thread per inference process: parallelism comes from MAX_WORKERS processes, not from OpenCV's threads
    # competing for the same cores.
    cv2.setNumThreads(1)
    parent_pid = os.getppid()
    try:
        detector = build_detector(config)
    except Exception as error:  # noqa: BLE001 - any failure to build is a configuration problem to report
        send_message(conn, ("init_error", f"detector {config.type!r} could not start: {error}"))
        return
    send_message(conn, ("ready",))
    slots = SlotViews()
    try:
        while True:
            if not conn.poll(_PARENT_CHECK_SECONDS):
                if os.getppid() != parent_pid:
                    return
                continue
            task = conn.recv()
            if task is None:
                return
            frame_number, slot, captured_at = task[0], SlotRef(*task[1]), task[2].replace(tzinfo=UTC)
            started = time.perf_counter()
            try:
                detections = detector.detect(slots.view(slot))
                seconds = time.perf_counter() - started
                result = FrameResult(
                    scenario_uuid=scenario_uuid,
                    run_id=run_id,
                    frame_number=frame_number,
                    detections=detections,
                    timestamp=captured_at,
                )
            except Exception as error:
                log.exception("detector raised", extra={"frame_number": frame_number})
                send_message(conn, ("error", frame_number, f"{type(error).__name__}: {error}"))
                continue
            send_message(conn, ("result", frame_number, encode(result), seconds))
    except (EOFError, BrokenPipeError):
        return  # the main process is gone
    finally:
        slots.close()
