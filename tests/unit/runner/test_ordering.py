"""vap_runner.ordering: results leave in the order their frames were submitted."""

from __future__ import annotations

from vap_runner.ordering import FrameOrder


def test_frame_order_releases_results_in_submission_order_and_skips_abandoned_frames() -> None:
    order: FrameOrder[str] = FrameOrder()
    for number in (0, 4, 8, 12):
        order.expect(number)
    order.complete(8, "c")
    assert order.ready() == []
    order.complete(4, "b")
    order.abandon(0)
    assert order.ready() == [(4, "b"), (8, "c")]
    assert len(order) == 1
    order.complete(12, "d")
    assert order.ready() == [(12, "d")] and len(order) == 0
