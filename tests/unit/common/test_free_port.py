"""dev/platform_stack.free_port: the ports the tests give their servers."""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Self

import pytest

from dev import platform_stack


class OfferingSocket:
    """A socket whose bind to port 0 gets the next port of ``offers`` (as the kernel chose it)."""

    offers: Iterator[int]

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        return None

    def bind(self, address: tuple[str, int]) -> None:
        self.port = next(self.offers)

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)


def test_a_port_is_never_handed_out_twice_even_when_the_kernel_offers_it_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seen in CI: a Kafka broker given the same port for its two listeners, which it refuses."""
    OfferingSocket.offers = iter([41381, 41381, 41382])
    monkeypatch.setattr(platform_stack, "socket", types.SimpleNamespace(socket=OfferingSocket))
    monkeypatch.setattr(platform_stack, "_port_share", (0, 1))
    assert [platform_stack.free_port(), platform_stack.free_port()] == [41381, 41382]


def test_processes_side_by_side_take_ports_only_from_their_own_share(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite's workers pick ports at once: worker 1 of 3 takes blocks 1, 4, 7, ... of 64 ports."""
    OfferingSocket.offers = iter([64 * 30 + 5, 64 * 31 + 5, 64 * 32 + 5, 64 * 34 + 63, 64 * 34 + 64])
    monkeypatch.setattr(platform_stack, "socket", types.SimpleNamespace(socket=OfferingSocket))
    monkeypatch.setattr(platform_stack, "_port_share", (0, 1))
    platform_stack.share_ports(1, 3)
    assert [platform_stack.free_port(), platform_stack.free_port()] == [64 * 31 + 5, 64 * 34 + 63]


def test_a_share_outside_the_count_is_refused() -> None:
    with pytest.raises(ValueError, match="port share 3 of 3"):
        platform_stack.share_ports(3, 3)
