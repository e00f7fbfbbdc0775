from __future__ import annotations

from itertools import pairwise

import pytest

from vap_common.lifecycle import TRANSITIONS, ScenarioStatus, can_transition, is_terminal

S = ScenarioStatus
HAPPY_PATH = [S.INIT_STARTUP, S.IN_STARTUP_PROCESSING, S.ACTIVE, S.INIT_SHUTDOWN, S.IN_SHUTDOWN_PROCESSING, S.INACTIVE]


def test_every_state_has_a_row() -> None:
    assert set(TRANSITIONS) == set(ScenarioStatus)


@pytest.mark.parametrize(("current", "new"), list(pairwise(HAPPY_PATH)))
def test_happy_path_steps_are_allowed(current: ScenarioStatus, new: ScenarioStatus) -> None:
    assert can_transition(current, new)


@pytest.mark.parametrize("earlier_index", range(len(HAPPY_PATH)))
def test_never_moves_backwards_or_repeats(earlier_index: int) -> None:
    for later in HAPPY_PATH[earlier_index:]:
        assert not can_transition(later, HAPPY_PATH[earlier_index])


def test_failed_reachable_from_every_non_terminal_state() -> None:
    for status in ScenarioStatus:
        assert can_transition(status, S.FAILED) == (not is_terminal(status))


def test_terminal_states() -> None:
    assert {status for status in ScenarioStatus if is_terminal(status)} == {S.INACTIVE, S.FAILED}
