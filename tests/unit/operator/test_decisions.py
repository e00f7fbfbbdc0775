"""The operator's pure decisions: names, scenario commands, restarts, and the reconcile plan."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from vap_common.lifecycle import FailureReason, ScenarioStatus
from vap_operator.decisions import (
    Action,
    Crash,
    DesiredState,
    ExitKind,
    ObservedPod,
    PodPhase,
    Publish,
    RestartPolicy,
    RunnerMemory,
    WorkerState,
    classify_exit,
    crashes_after,
    decide_command,
    failure_reason_from,
    is_crash_loop,
    keep_crashes,
    next_worker_status,
    plan_reconcile,
    pod_name_for,
    resource_name_for,
    restart_backoff_seconds,
    restart_wait_seconds,
    worker_id_for,
)

S = ScenarioStatus
POLICY = RestartPolicy(
    backoff_base_seconds=2, backoff_max_seconds=30, crash_loop_threshold=3, crash_loop_window_seconds=100
)
SCENARIO = uuid.UUID("0b5f1c2e-7d4a-4e3b-9a8c-1f2e3d4c5b6a")


# --- names -------------------------------------------------------------------------------------------


def test_names_are_derived_from_the_uuid_only_and_fit_kubernetes_limits() -> None:
    assert worker_id_for(SCENARIO) == worker_id_for(uuid.UUID(str(SCENARIO))) == f"w-{SCENARIO}"
    assert resource_name_for(SCENARIO) == f"vs-{SCENARIO}"
    assert pod_name_for(resource_name_for(SCENARIO)) == f"vs-{SCENARIO}-runner"
    assert len(worker_id_for(SCENARIO)) <= 63 and len(pod_name_for(resource_name_for(SCENARIO))) <= 63
    assert worker_id_for(uuid.uuid4()) != worker_id_for(SCENARIO)


# --- scenario commands -----------------------------------------------------------------------------


def test_first_start_registers_reports_and_deploys() -> None:
    effect = decide_command(None, "start")
    assert (effect.desired_state, effect.status, effect.write_row) == (
        DesiredState.ACTIVE,
        S.IN_STARTUP_PROCESSING,
        True,
    )
    assert (effect.publish_status, effect.deploy_action) == (S.IN_STARTUP_PROCESSING, "deploy")


def test_replayed_start_changes_nothing_but_republishes_while_still_starting() -> None:
    starting = WorkerState(DesiredState.ACTIVE, S.IN_STARTUP_PROCESSING)
    effect = decide_command(starting, "start")
    assert not effect.write_row
    assert (effect.publish_status, effect.deploy_action) == (S.IN_STARTUP_PROCESSING, "deploy")


@pytest.mark.parametrize("status", [S.ACTIVE, S.FAILED, S.INACTIVE])
def test_replayed_start_after_the_runtime_moved_on_publishes_nothing(status: ScenarioStatus) -> None:
    effect = decide_command(WorkerState(DesiredState.ACTIVE, status), "start")
    assert (effect.write_row, effect.publish_status, effect.deploy_action) == (False, None, None)


def test_shutdown_of_running_scenario_stops_it() -> None:
    effect = decide_command(WorkerState(DesiredState.ACTIVE, S.ACTIVE), "shutdown")
    assert (effect.desired_state, effect.status, effect.write_row) == (
        DesiredState.INACTIVE,
        S.IN_SHUTDOWN_PROCESSING,
        True,
    )
    assert (effect.publish_status, effect.deploy_action) == (S.IN_SHUTDOWN_PROCESSING, "stop")


def test_shutdown_of_failed_scenario_stops_without_moving_status_backwards() -> None:
    effect = decide_command(WorkerState(DesiredState.ACTIVE, S.FAILED), "shutdown")
    assert (effect.desired_state, effect.status, effect.publish_status, effect.deploy_action) == (
        DesiredState.INACTIVE,
        S.FAILED,
        None,
        "stop",
    )


def test_shutdown_before_start_is_remembered_and_the_late_start_is_not_deployed() -> None:
    shutdown = decide_command(None, "shutdown")
    assert (shutdown.desired_state, shutdown.deploy_action, shutdown.publish_status) == (
        DesiredState.INACTIVE,
        "stop",
        S.IN_SHUTDOWN_PROCESSING,
    )
    late_start = decide_command(WorkerState(shutdown.desired_state, shutdown.status), "start")
    assert (late_start.write_row, late_start.publish_status, late_start.deploy_action) == (False, None, None)


def test_replayed_shutdown_republishes_stop_until_inactive() -> None:
    pending = decide_command(WorkerState(DesiredState.INACTIVE, S.IN_SHUTDOWN_PROCESSING), "shutdown")
    assert (pending.write_row, pending.publish_status, pending.deploy_action) == (
        False,
        S.IN_SHUTDOWN_PROCESSING,
        "stop",
    )
    done = decide_command(WorkerState(DesiredState.INACTIVE, S.INACTIVE), "shutdown")
    assert (done.write_row, done.publish_status, done.deploy_action) == (False, None, None)


def test_whole_sequence_replayed_twice_ends_in_the_same_row() -> None:
    state: WorkerState | None = None
    rows = []
    for command in ["start", "start", "shutdown", "shutdown", "start"]:
        effect = decide_command(state, command)  # type: ignore[arg-type]
        state = WorkerState(effect.desired_state, effect.status)
        rows.append(state)
    assert rows[-1] == rows[2] == WorkerState(DesiredState.INACTIVE, S.IN_SHUTDOWN_PROCESSING)


def test_runtime_status_only_moves_forward() -> None:
    assert next_worker_status(S.IN_STARTUP_PROCESSING, S.FAILED) == S.FAILED
    assert next_worker_status(S.INACTIVE, S.FAILED) is None
    assert next_worker_status(S.IN_SHUTDOWN_PROCESSING, S.IN_STARTUP_PROCESSING) is None


# --- restarts ---------------------------------------------------------------------------------------


def test_backoff_doubles_and_is_capped() -> None:
    assert [restart_backoff_seconds(n, POLICY) for n in range(6)] == [0, 2, 4, 8, 16, 30]


def test_restart_wait_counts_from_the_last_crash() -> None:
    assert restart_wait_seconds([], 50, POLICY) == 0
    assert restart_wait_seconds([10.0], 11.5, POLICY) == pytest.approx(0.5)
    assert restart_wait_seconds([10.0, 20.0], 21.0, POLICY) == pytest.approx(3.0)
    assert restart_wait_seconds([10.0], 500.0, POLICY) == 0  # outside the window: start at once


def test_crash_loop_needs_threshold_crashes_inside_the_window() -> None:
    assert not is_crash_loop([1, 2], 3, POLICY)
    assert is_crash_loop([1, 2, 3], 3, POLICY)
    assert not is_crash_loop([1, 2, 150], 150, POLICY)  # two of them are older than the window


def test_kept_crashes_drop_old_ones_but_keep_the_latest() -> None:
    assert keep_crashes([1, 50, 120], 130, POLICY) == [50, 120]
    assert keep_crashes([1, 5], 1000, POLICY) == [5]


@pytest.mark.parametrize(
    ("code", "stop", "kind"),
    [
        (0, False, ExitKind.COMPLETED),
        (3, False, ExitKind.GAVE_UP),
        (1, False, ExitKind.CRASHED),
        (-9, False, ExitKind.CRASHED),
        (None, False, ExitKind.CRASHED),
        (1, True, ExitKind.STOPPED),
        (-9, True, ExitKind.STOPPED),
    ],
)
def test_exit_codes_follow_the_runner_contract(code: int | None, stop: bool, kind: ExitKind) -> None:
    assert classify_exit(code, stop_requested=stop) == kind


def test_exit_0_of_a_runner_the_node_stopped_is_a_crash_and_any_other_exit_0_is_done() -> None:
    assert classify_exit(0, stop_requested=False, stopped_by_node=True) == ExitKind.CRASHED
    assert classify_exit(0, stop_requested=True, stopped_by_node=True) == ExitKind.STOPPED
    assert classify_exit(3, stop_requested=False, stopped_by_node=True) == ExitKind.GAVE_UP


def test_failure_reason_is_read_from_the_termination_message() -> None:
    assert failure_reason_from("SourceUnreachable: 5 attempts to rtsp://cam") == FailureReason.SOURCE_UNREACHABLE
    assert failure_reason_from("Traceback (most recent call last)") is None
    assert failure_reason_from(None) is None and failure_reason_from("  ") is None


# --- the reconcile plan -------------------------------------------------------------------------------


def plan(
    pod: ObservedPod | None,
    memory: RunnerMemory | None = None,
    *,
    desired: DesiredState = DesiredState.ACTIVE,
    now: float = 1000.0,
):  # type: ignore[no-untyped-def]
    return plan_reconcile(
        desired=desired, memory=memory or RunnerMemory(), pod=pod, now=now, policy=POLICY, poll_seconds=1.0
    )


def test_no_pod_creates_one() -> None:
    result = plan(None)
    assert (result.action, result.phase, result.wait_seconds) == (Action.CREATE_POD, S.IN_STARTUP_PROCESSING, None)
    assert [e.reason for e in result.events] == ["PodCreated"]


def test_pending_and_unready_pods_wait_for_their_next_event() -> None:
    for pod in (ObservedPod("u1", PodPhase.PENDING), ObservedPod("u1", PodPhase.RUNNING, ready=False)):
        result = plan(pod)
        assert (result.action, result.phase, result.wait_seconds, result.publish) == (
            Action.NONE,
            S.IN_STARTUP_PROCESSING,
            None,
            None,
        )


def test_ready_pod_is_active_and_the_event_is_posted_once() -> None:
    pod = ObservedPod("u1", PodPhase.RUNNING, ready=True)
    first = plan(pod)
    assert (first.phase, first.ready, first.publish) == (S.ACTIVE, True, None)  # the runner publishes `active` itself
    assert [e.reason for e in first.events] == ["RunnerReady"]
    assert plan(pod, RunnerMemory(ready=True)).events == ()


def test_first_crash_is_recorded_before_anything_is_deleted() -> None:
    result = plan(ObservedPod("u1", PodPhase.FAILED, exit_code=1, message="boom"))
    assert result.action == Action.NONE
    assert result.record_crash == Crash("u1", 1000.0, 1)
    assert (result.restarts, result.wait_seconds, result.publish) == (1, 2.0, None)
    assert result.last_error is not None and "code 1: boom" in result.last_error[1]


def test_a_failed_pod_whose_runner_exited_0_was_stopped_by_its_node_and_is_restarted() -> None:
    """Evicted (or its node shut down): the kubelet's SIGTERM drained the runner, which exited 0, and
    the Pod is Failed. The source did not end: a restart with backoff, not `inactive`."""
    evicted = plan(ObservedPod("u1", PodPhase.FAILED, exit_code=0, message="The node was low on resource: memory."))
    assert (evicted.phase, evicted.publish, evicted.record_crash) == (
        S.IN_STARTUP_PROCESSING,
        None,
        Crash("u1", 1000.0, 0),
    )
    assert (evicted.restarts, evicted.ready_reason) == (1, "BackOff")
    finished = plan(ObservedPod("u1", PodPhase.SUCCEEDED, exit_code=0))
    assert (finished.phase, finished.publish, finished.record_crash) == (S.INACTIVE, Publish(S.INACTIVE), None)


def test_recorded_crash_waits_for_backoff_then_replaces_the_pod() -> None:
    memory = RunnerMemory(crashes=(Crash("u1", 1000.0, 1),), restarts=1)
    waiting = plan(ObservedPod("u1", PodPhase.FAILED, exit_code=1), memory, now=1001.0)
    assert (waiting.action, waiting.wait_seconds, waiting.record_crash) == (Action.NONE, pytest.approx(1.0), None)
    replacing = plan(ObservedPod("u1", PodPhase.FAILED, exit_code=1), memory, now=1002.5)
    assert (replacing.action, replacing.delete_uid, replacing.graceful) == (Action.DELETE_POD, "u1", False)
    recreating = plan(None, memory, now=1002.6)
    assert recreating.action == Action.CREATE_POD
    assert [e.reason for e in recreating.events] == ["RunnerRestarted"]


def test_backoff_also_holds_when_the_crashed_pod_is_already_gone() -> None:
    memory = RunnerMemory(crashes=(Crash("u1", 1000.0, 1),), restarts=1)
    result = plan(None, memory, now=1000.5)
    assert (result.action, result.wait_seconds) == (Action.NONE, pytest.approx(1.5))


def test_crash_loop_ends_failed_and_publishes_it_once() -> None:
    memory = RunnerMemory(crashes=(Crash("u1", 990.0, 1), Crash("u2", 995.0, 1)), restarts=2)
    result = plan(ObservedPod("u3", PodPhase.FAILED, exit_code=137), memory)
    assert (result.phase, result.action) == (S.FAILED, Action.NONE)
    assert result.failed is not None and result.failed[0] == "RunnerCrashLoop"
    assert result.publish is not None and (result.publish.status, result.publish.reason) == (
        S.FAILED,
        FailureReason.RUNNER_CRASH_LOOP,
    )
    assert result.restarts == 2  # no restart follows
    terminal = plan(ObservedPod("u3", PodPhase.FAILED, exit_code=137), replace(memory, failed_reason="RunnerCrashLoop"))
    assert (terminal.phase, terminal.action, terminal.publish) == (
        S.FAILED,
        Action.NONE,
        None,
    )  # the failed Pod is kept for its logs


def test_exit_3_is_failed_without_restart_and_without_publishing() -> None:
    result = plan(
        ObservedPod("u1", PodPhase.FAILED, exit_code=3, message="SourceUnreachable: gave up after 5 attempts")
    )
    assert (result.phase, result.publish, result.record_crash) == (S.FAILED, None, None)
    assert result.failed == ("SourceUnreachable", "SourceUnreachable: gave up after 5 attempts")


def test_exit_0_is_inactive_and_published() -> None:
    result = plan(ObservedPod("u1", PodPhase.SUCCEEDED, exit_code=0))
    assert (result.phase, result.action) == (S.INACTIVE, Action.NONE)
    assert result.stopped is not None and result.publish is not None and result.publish.status == S.INACTIVE


def test_shutdown_deletes_the_pod_gracefully_then_reports_inactive_once_it_is_gone() -> None:
    running = plan(ObservedPod("u1", PodPhase.RUNNING, ready=True), desired=DesiredState.INACTIVE)
    assert (running.action, running.delete_uid, running.graceful, running.phase) == (
        Action.DELETE_POD,
        "u1",
        True,
        S.IN_SHUTDOWN_PROCESSING,
    )
    assert running.publish is None
    terminating = plan(ObservedPod("u1", PodPhase.RUNNING, deleting=True), desired=DesiredState.INACTIVE)
    assert (terminating.action, terminating.wait_seconds, terminating.publish) == (Action.NONE, 1.0, None)
    gone = plan(None, desired=DesiredState.INACTIVE)
    assert (gone.phase, gone.action) == (S.INACTIVE, Action.NONE)
    assert gone.publish is not None and gone.publish.status == S.INACTIVE and gone.stopped is not None


def test_shutdown_of_a_failed_scenario_cleans_its_pod_but_stays_failed() -> None:
    memory = RunnerMemory(failed_reason="RunnerCrashLoop")
    result = plan(ObservedPod("u3", PodPhase.FAILED, exit_code=1), memory, desired=DesiredState.INACTIVE)
    assert (result.phase, result.action, result.graceful, result.publish) == (S.FAILED, Action.DELETE_POD, False, None)
    assert plan(None, memory, desired=DesiredState.INACTIVE).action == Action.NONE


def test_terminal_scenario_never_starts_a_runner_again() -> None:
    for memory in (RunnerMemory(stopped_reason="RunnerCompleted"), RunnerMemory(failed_reason="RunnerCrashLoop")):
        result = plan(None, memory)
        assert (result.action, result.publish, result.wait_seconds) == (Action.NONE, None, None)


def test_a_pod_of_someone_else_with_the_runner_name_is_removed_first() -> None:
    result = plan(ObservedPod("old", PodPhase.RUNNING, owned=False))
    assert (result.action, result.delete_uid, result.wait_seconds) == (Action.DELETE_POD, "old", 1.0)


def test_replanning_the_same_observation_is_idempotent() -> None:
    memory = RunnerMemory(crashes=(Crash("u1", 1000.0, 1),), restarts=1)
    pod = ObservedPod("u1", PodPhase.FAILED, exit_code=1)
    assert plan(pod, memory, now=1001.0) == plan(pod, memory, now=1001.0)
    assert plan(pod, memory, now=1001.0).record_crash is None  # the same Pod is never counted twice


@pytest.mark.parametrize(
    ("current", "after"),
    [
        (S.IN_STARTUP_PROCESSING, S.IN_SHUTDOWN_PROCESSING),
        (S.ACTIVE, S.IN_SHUTDOWN_PROCESSING),
        (S.INIT_SHUTDOWN, S.IN_SHUTDOWN_PROCESSING),
        (S.FAILED, S.FAILED),
        (S.INACTIVE, S.INACTIVE),
    ],
)
def test_shutdown_of_a_starting_scenario_works(current: ScenarioStatus, after: ScenarioStatus) -> None:
    assert decide_command(WorkerState(DesiredState.ACTIVE, current), "shutdown").status == after


def test_remembered_crashes_add_the_new_one_and_forget_old_ones() -> None:
    memory = RunnerMemory(crashes=(Crash("old", 100.0, 1), Crash("recent", 950.0, 1)), restarts=2)
    result = plan(ObservedPod("new", PodPhase.FAILED, exit_code=1), memory)
    assert [c.pod_uid for c in crashes_after(result, memory, 1000.0, POLICY)] == ["recent", "new"]
    idle = plan(ObservedPod("x", PodPhase.RUNNING, ready=True), memory)
    assert [c.pod_uid for c in crashes_after(idle, memory, 1000.0, POLICY)] == ["recent"]
