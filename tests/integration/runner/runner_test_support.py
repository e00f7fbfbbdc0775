"""The runner as a real process for the runner's integration tests."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any

from tests.conftest import ROOT
from tests.helpers import child_environment, patience, wait_until


class RunnerProcess:
    """``python -m vap_runner`` with a test's settings; its JSON log lines are collected as they come."""

    def __init__(self, env: dict[str, str]) -> None:
        self.lines: list[dict[str, Any]] = []
        self.raw = ""
        self._process = subprocess.Popen(
            [sys.executable, "-m", "vap_runner"],
            env=child_environment(env),
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._collector = threading.Thread(target=self._collect, daemon=True)
        self._collector.start()

    def _collect(self) -> None:
        assert self._process.stderr is not None
        for raw in self._process.stderr:
            self.raw += raw
            try:
                self.lines.append(json.loads(raw))
            except json.JSONDecodeError:
                self.lines.append({"message": f"NOT JSON: {raw.rstrip()}"})  # shows in messages() on failure

    def messages(self) -> list[str]:
        return [line["message"] for line in self.lines]

    def wait_for_log(self, message: str, *, timeout_seconds: float) -> dict[str, Any]:
        wait_until(
            lambda: message in self.messages() or self._process.poll() is not None,
            timeout_seconds=timeout_seconds,
            what=f"log {message!r}",
        )
        found = [line for line in self.lines if line["message"] == message]
        assert found, f"runner exited ({self._process.returncode}) without logging {message!r}: {self.messages()}"
        return found[-1]

    def terminate(self) -> None:
        self._process.terminate()

    def wait(self, *, timeout_seconds: float) -> int:
        allowed = patience(timeout_seconds)
        try:
            code = self._process.wait(timeout=allowed)
        except subprocess.TimeoutExpired:
            self._process.kill()
            raise AssertionError(f"runner still running after {allowed:g} s: {self.messages()[-5:]}") from None
        self._collector.join(5)
        return code
