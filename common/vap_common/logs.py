"""Structured (JSON) logging for every VAP process, with credentials masked on the way out."""

from __future__ import annotations

import logging
import sys
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from vap_common.redact import redact_text


class RedactingJsonFormatter(JsonFormatter):
    """JSON formatter that masks URL credentials in the message, the extras and tracebacks.

    Redacting at the formatter catches every logger, including third-party ones that log a URL.
    """

    def process_log_record(self, log_record: dict[str, Any]) -> dict[str, Any]:
        return {key: _redact_value(value) for key, value in log_record.items()}


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: _redact_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_value(item) for item in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    # Any other object is logged as its text, which may hold a URL: redact that text too.
    return redact_text(str(value))


def configure_logging(*, service: str, level: str = "INFO") -> None:
    """Send JSON log lines to stderr, each tagged with the service name."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        RedactingJsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"},
            static_fields={"service": service},
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
