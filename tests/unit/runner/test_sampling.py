"""vap_runner.sampling: which frames a target fps keeps."""

from __future__ import annotations

from vap_runner.sampling import FrameSampler


def test_sampling_a_10fps_file_at_2_5fps_keeps_every_4th_frame() -> None:
    sampler = FrameSampler(2.5)
    assert [number for number in range(20) if sampler.accept(number / 10)] == [0, 4, 8, 12, 16]


def test_sampling_at_uneven_ratio_keeps_the_average_rate() -> None:
    sampler = FrameSampler(5)
    kept = [number for number in range(125) if sampler.accept(number / 12.5)]  # 10 s of a 12.5 fps file
    assert len(kept) == 50 and kept[:5] == [0, 3, 5, 8, 10]


def test_sampling_restarts_its_schedule_after_a_jump() -> None:
    sampler = FrameSampler(1)
    assert [sampler.accept(t) for t in (0.0, 0.5, 30.0, 30.5, 31.0)] == [True, False, True, False, True]


def test_no_target_fps_keeps_every_frame() -> None:
    sampler = FrameSampler(None)
    assert all(sampler.accept(t / 1000) for t in range(100))
