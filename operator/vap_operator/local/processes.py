"""Runner child processes: each in its own process group, killed with its parent (Linux), found again
after a crash of the runtime by its scenario UUID in the environment."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    def preexec() -> None:
        # Runs in the child between fork and exec. SIGKILL when the runtime dies, even by SIGKILL,
        # so a runner never outlives it; if the runtime died before this line, exit now.
        assert _libc is not None
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def spawn(argv: Sequence[str], env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start a runner in a new session (its own process group, which stop/kill address as a whole).

    The runner's own children (detector processes) stay in that group, so killing the group leaves no
    orphans even when the runner itself cannot clean up.
    """
    return subprocess.Popen(
        list(argv),
        env=dict(env),
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        close_fds=True,
        preexec_fn=_die_with_parent(os.getpid()) if _libc is not None else None,  # noqa: PLW1509 - see _die_with_parent
    )


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
