from __future__ import annotations

import json
import logging

import pytest

from vap_common.logs import configure_logging


def test_log_lines_are_json_with_service_and_no_password(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(service="unit-test", level="INFO")
    log = logging.getLogger("vap.test")
    log.info("opening rtsp://admin:topsecret@cam.local/s", extra={"camera_url": "rtsp://admin:topsecret@cam.local/s"})
    try:
        raise RuntimeError("failed on http://u:topsecret@h/x")
    except RuntimeError:
        log.exception("stream error")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [line["message"] for line in lines] == ["opening rtsp://admin:***@cam.local/s", "stream error"]
    assert lines[0]["service"] == "unit-test" and lines[0]["level"] == "INFO"
    assert lines[0]["camera_url"] == "rtsp://admin:***@cam.local/s"
    assert "topsecret" not in json.dumps(lines)
    logging.getLogger().handlers.clear()


def test_unserialisable_extra_does_not_break_the_line(capsys: pytest.CaptureFixture[str]) -> None:
    class Opaque:
        def __str__(self) -> str:
            return "opaque rtsp://u:topsecret@h/x"

    configure_logging(service="unit-test", level="INFO")
    logging.getLogger("vap.test").info("with an object", extra={"thing": Opaque()})
    line = json.loads(capsys.readouterr().err)
    assert line["message"] == "with an object"
    assert "topsecret" not in json.dumps(line)
    logging.getLogger().handlers.clear()
