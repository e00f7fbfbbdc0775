"""The local runtime's capacity: as set, or derived from the machine's cores and memory."""

from __future__ import annotations

import pytest

from vap_operator.settings import LocalSettings

GIB = 2**30


@pytest.mark.parametrize(
    ("settings", "cpu_count", "memory_bytes", "capacity"),
    [
        (LocalSettings(capacity=7), 64, 512 * GIB, 7),  # set: the machine does not matter
        (LocalSettings(), 2, 24 * GIB, 10),  # 5 per core; memory allows 30
        (LocalSettings(), 16, 4 * GIB, 5),  # memory-bound: half of 4 GiB / 400 MiB
        (LocalSettings(runners_per_core=0.1), 2, 24 * GIB, 1),  # never below one
    ],
)
def test_capacity_is_the_setting_or_the_smaller_of_the_cpu_and_memory_bounds(
    settings: LocalSettings, cpu_count: int, memory_bytes: int, capacity: int
) -> None:
    assert settings.resolved_capacity(cpu_count=cpu_count, memory_bytes=memory_bytes) == capacity
