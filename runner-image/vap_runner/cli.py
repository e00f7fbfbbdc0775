"""``python -m vap_runner`` / ``vap-runner``: settings from ``VAP_*`` variables, overridden by flags."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
from typing import Any

import cv2
from pydantic import ValidationError

from vap_common.logs import configure_logging
from vap_common.runner_contract import write_exit_code
from vap_runner.runner import FAILURE_NOT_REPORTED, Runner
from vap_runner.settings import RunnerSettings

log = logging.getLogger(__name__)

# Settings that cannot even be read: nothing can be reported; exit as a crash (see runner_contract).
INVALID_SETTINGS_EXIT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vap-runner", description="Analyse one camera stream and publish detections to Kafka."
    )
    parser.add_argument("--scenario-uuid", help="VAP_SCENARIO_UUID")
    parser.add_argument("--camera-url", help="VAP_CAMERA_URL (prefer the variable: flags are visible in ps)")
    parser.add_argument("--worker-id", help="VAP_WORKER_ID")
    parser.add_argument(
        "--detector", dest="detector_name", help="VAP_DETECTOR__NAME: mock, hog_person, haar_face, motion, onnx"
    )
    parser.add_argument("--detector-settings", type=json.loads, help="VAP_DETECTOR__SETTINGS, a JSON object")
    parser.add_argument("--max-workers", type=int, help="VAP_MAX_WORKERS")
    parser.add_argument("--target-fps", type=float, help="VAP_TARGET_FPS")
    parser.add_argument("--max-frames", type=int, help="VAP_MAX_FRAMES")
    parser.add_argument("--http-port", type=int, help="VAP_HTTP_PORT (0: any free port)")
    parser.add_argument("--kafka-bootstrap-servers", help="VAP_KAFKA__BOOTSTRAP_SERVERS")
    parser.add_argument("--kafka-topic-prefix", help="VAP_KAFKA__TOPIC_PREFIX")
    parser.add_argument("--log-level", help="VAP_LOG_LEVEL")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """Flags given on the command line, shaped like the settings (nested groups merge with the env)."""
    given = {key: value for key, value in vars(args).items() if value is not None}
    overrides: dict[str, Any] = {}
    for key, value in given.items():
        group, _, field = key.partition("_") if key.startswith(("detector_", "kafka_")) else ("", "", key)
        if group:
            overrides.setdefault(group, {})[field] = value
        else:
            overrides[key] = value
    return overrides


def _quiet_native_logs() -> None:
    """OpenCV and FFmpeg print to stderr past the JSON logging, and FFmpeg may echo a camera URL: keep
    them silent unless an operator sets OPENCV_LOG_LEVEL / OPENCV_FFMPEG_LOGLEVEL for debugging."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # read at each open
    if "OPENCV_LOG_LEVEL" not in os.environ:  # read at import: too late for the variable
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = RunnerSettings(**_overrides(args))
    except ValidationError as error:
        configure_logging(service="vap-runner")
        # Locations and messages only: the inputs may hold the camera password.
        problems = [f"{'.'.join(map(str, item['loc']))}: {item['msg']}" for item in error.errors(include_input=False)]
        log.error("invalid runner settings", extra={"problems": problems})
        return INVALID_SETTINGS_EXIT
    configure_logging(service="vap-runner", level=settings.log_level)
    _quiet_native_logs()
    runner = Runner(settings)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: runner.request_stop())
    code = FAILURE_NOT_REPORTED
    try:
        code = runner.run()
    finally:
        if settings.exit_code_file is not None:
            try:
                write_exit_code(settings.exit_code_file, code)
            except OSError as error:  # the runtime then sees an exit without a code: a crash
                log.error("cannot write the exit code file", extra={"error": str(error)})
    return code
