"""The whole repository passes ruff's checks and is formatted by ruff (settings in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def test_ruff_finds_nothing() -> None:
    """Includes E501: no line over the configured length, comments and strings too."""
    result = ruff("check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_file_is_formatted_within_the_line_length() -> None:
    result = ruff("format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr
