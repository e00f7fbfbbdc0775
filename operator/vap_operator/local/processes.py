"""Runner processes of the local runtime: each in a session of its own (a process group that stop and
kill address as a whole), NOT tied to the runtime's life, so a restarted runtime can adopt them; found
again by pid and by the scenario UUID in their environment."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path


def spawn(argv: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start a runner in a new session (its own process group, which stop/kill address as a whole).

    The runner's own children (detector processes) stay in that group, so killing the group leaves no
    orphans even when the runner itself cannot clean up. The runner survives a crash of the runtime
    (no parent-death signal): the next runtime adopts it (Supervisor.resume).
    """
    return subprocess.Popen(list(argv), env=dict(env), stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True)


def signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to the process group ``pgid``; False when the group no longer exists."""
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def group_members(pgid: int, *, marker: str | None = None) -> list[int]:
    """Pids in process group ``pgid`` (Linux /proc), optionally only those whose environment holds ``marker``."""
    members: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            # Fields after the parenthesised command: state ppid pgrp ...
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) != pgid:
                continue
            if marker is not None and marker.encode() not in (entry / "environ").read_bytes().split(b"\0"):
                continue
        except (OSError, ValueError, IndexError):
            continue
        members.append(int(entry.name))
    return members


def runner_alive(pid: int, scenario_uuid: str) -> bool:
    """True when process ``pid`` runs (not a zombie) and is the runner of ``scenario_uuid``.

    A pid number can be reused by an unrelated process: the scenario's UUID in its environment says
    it is still ours.
    """
    proc = Path(f"/proc/{pid}")
    try:
        stat = (proc / "stat").read_text()
        if stat[stat.rindex(")") + 2 :].split()[0] in ("Z", "X"):
            return False
        return f"VAP_SCENARIO_UUID={scenario_uuid}".encode() in (proc / "environ").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return False


def kill_stale_group(pgid: int, scenario_uuid: str) -> int:
    """SIGKILL what is left of a runner group from an earlier runtime; returns how many were killed.

    A pid number can be reused, so only processes that carry the scenario's VAP_SCENARIO_UUID are
    touched.
    """
    killed = 0
    for pid in group_members(pgid, marker=f"VAP_SCENARIO_UUID={scenario_uuid}"):
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except (ProcessLookupError, PermissionError):
            pass
    return killed


def free_port() -> int:
    """A TCP port free right now on 127.0.0.1, for a runner's /healthz /readyz /metrics."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
