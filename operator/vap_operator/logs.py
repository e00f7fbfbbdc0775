"""Logging for the operator processes: vap_common's JSON logs, made safe for kopf's log records."""

from __future__ import annotations

import logging

from vap_common.logs import configure_logging


class KopfRecordFilter(logging.Filter):
    """kopf's per-object loggers attach its settings object (not JSON-serialisable) and flags to
    every record; keep only the object reference, under ``object``."""

    def filter(self, record: logging.LogRecord) -> bool:
        for attribute in ("settings", "k8s_skip"):
            if hasattr(record, attribute):
                delattr(record, attribute)
        if hasattr(record, "k8s_ref"):
            record.object = record.k8s_ref
            delattr(record, "k8s_ref")
        return True


def setup_logging(*, service: str, level: str) -> None:
    configure_logging(service=service, level=level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(KopfRecordFilter())
