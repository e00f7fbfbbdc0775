"""dev/platform_stack.free_port: the ports the tests give their servers."""

from __future__ import annotations

import types
from collections.abc import Iterator
from typing import Self

import platform_stack
import pytest


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
    assert [platform_stack.free_port(), platform_stack.free_port()] == [41381, 41382]
