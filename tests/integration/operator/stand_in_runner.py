"""A stand-in for `python -m vap_runner` with scripted behaviour, for the local runtime's exit-code tests.

Configured like the runner, through the environment from runner_environment(); the behaviour comes
from VAP_DETECTOR__SETTINGS: {"mode": serve|crash|give_up|finish|finish_on|stubborn|family, "record": file
(one line per start), "crashes": n (crash mode: crash n times, then serve), "path": file (finish_on
mode: exit 0 once it exists)}.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

settings = json.loads(os.environ.get("VAP_DETECTOR__SETTINGS") or "{}")
mode = settings.get("mode", "serve")
starts = 0
if record := settings.get("record"):
    with open(record, "a") as file:
        file.write(f"{os.getpid()}\n")
    with open(record) as file:
        starts = len(file.read().split())

stopping = False


def finish(code: int) -> None:
    """Exit like the runner: the exit code also goes to VAP_EXIT_CODE_FILE, when the runtime set one."""
    if path := os.environ.get("VAP_EXIT_CODE_FILE"):
        with open(path, "w") as file:
            file.write(f"{code}\n")
    sys.exit(code)


def _stop(_signum: int, _frame: object) -> None:
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "stubborn" else _stop)
if mode == "crash" and starts <= int(settings.get("crashes", 10**6)):
    time.sleep(0.1)
    finish(1)
if mode == "give_up":
    finish(3)
if mode == "finish":
    time.sleep(0.3)
    finish(0)
if mode == "finish_on":
    # Runs until a file appears, then finishes like the end of a video file.
    while not os.path.exists(settings["path"]):
        time.sleep(0.05)
    finish(0)
if mode == "family":
    # A child of the runner, like its detector processes: it must not outlive the runner.
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
while not stopping:
    time.sleep(0.05)
finish(0)
