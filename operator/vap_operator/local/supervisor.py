"""The local runtime's supervisor: one runner child process per active scenario on this machine.

Single-threaded by design: the runtime's main loop alternates ``ConsumerLoop.run_once`` (to_deploy
-> :meth:`Supervisor.deploy` / :meth:`Supervisor.stop`) and :meth:`Supervisor.tick` (exits,
restarts, stop deadlines), so the child processes are always started by the main thread (the
parent-death signal is tied to the thread that forked) and no lock is needed.

Exit codes follow vap_common.runner_contract.RunnerExit: 0 done -> `inactive`; 3 gave up (the
runner published `failed` itself) -> no restart; anything else -> restart with backoff, `failed`
(RunnerCrashLoop) after repeated crashes. Stop = SIGTERM to the group, SIGKILL after the grace.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from uuid import UUID

from prometheus_client import Counter, Gauge
from sqlalchemy.orm import Session, sessionmaker

from vap_common.contracts import DeployCommand
from vap_common.db import transaction
from vap_common.lifecycle import FailureReason, ScenarioStatus, is_terminal
from vap_common.runner_contract import runner_environment
from vap_common.schema import Worker
from vap_common.settings import KafkaSettings
from vap_operator import workers
from vap_operator.decisions import (
    DesiredState,
    ExitKind,
    RestartPolicy,
    classify_exit,
    is_crash_loop,
    keep_crashes,
    restart_wait_seconds,
)
from vap_operator.local import processes
from vap_operator.publishing import Publisher, status_event
from vap_operator.settings import LocalSettings, RunnerSettings

log = logging.getLogger(__name__)

RUNNERS = Gauge("vap_local_runners", "Runner processes alive")
RESTARTS = Counter("vap_local_runner_restarts_total", "Runner processes restarted after a crash")
EXITS = Counter("vap_local_runner_exits_total", "Runner process exits", ["kind"])

Spawn = Callable[[Sequence[str], Mapping[str, str]], "subprocess.Popen[bytes]"]


@dataclass
class LocalRunner:
    command: DeployCommand
    process: subprocess.Popen[bytes] | None = None
    crash_times: list[float] = field(default_factory=list)  # monotonic seconds
    restarts: int = 0
    start_at: float | None = None  # monotonic; set while waiting to (re)start
    stop_requested: bool = False
    kill_at: float | None = None  # monotonic SIGKILL deadline once stopping


class Supervisor:
    """Starts, stops, restarts and reports runner processes; owns their `workers` fields."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        publisher: Publisher,
        kafka: KafkaSettings,
        runner: RunnerSettings,
        local: LocalSettings,
        policy: RestartPolicy,
        base_environment: Mapping[str, str],
        clock: Callable[[], float] = time.monotonic,
        spawn: Spawn = processes.spawn,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._kafka = kafka
        self._runner = runner
        self._local = local
        self._policy = policy
        self._base_environment = dict(base_environment)
        self._clock = clock
        self._spawn = spawn
        self._runners: dict[UUID, LocalRunner] = {}
        self._next_port = local.http_port_base

    # --- commands (from to_deploy) ---------------------------------------------------------------

    def deploy(self, command: DeployCommand) -> None:
        """Run the scenario's runner unless it runs already, was stopped, or ended (idempotent)."""
        if command.scenario_uuid in self._runners:
            return
        with transaction(self._sessions) as session:
            row = workers.get(session, command.scenario_uuid)
            if row is not None and (row.desired_state != DesiredState.ACTIVE.value or is_terminal(ScenarioStatus(row.status))):
                log.info("deploy ignored: scenario stopped or ended", extra={"scenario_uuid": str(command.scenario_uuid), "status": row.status})
                return
        runner = LocalRunner(command=command)
        self._runners[command.scenario_uuid] = runner
        self._start(runner)

    def stop(self, command: DeployCommand) -> None:
        """SIGTERM the runner's group; `inactive` is reported once it exited (at once if none runs)."""
        runner = self._runners.get(command.scenario_uuid)
        if runner is not None and runner.process is not None:
            if not runner.stop_requested:
                runner.stop_requested = True
                runner.kill_at = self._clock() + self._runner.stop_grace_seconds
                processes.signal_group(runner.process.pid, signal.SIGTERM)
                log.info("runner stopping", extra={"scenario_uuid": str(command.scenario_uuid), "pid": runner.process.pid})
            return
        self._runners.pop(command.scenario_uuid, None)
        self._report_inactive(command.scenario_uuid, "stopped before a runner was running")

    # --- the loop's periodic step ----------------------------------------------------------------

    def tick(self) -> None:
        """Reap exits, enforce stop deadlines, start runners whose backoff is over."""
        now = self._clock()
        for uuid, runner in list(self._runners.items()):
            if runner.process is not None:
                code = runner.process.poll()
                if code is not None:
                    self._exited(uuid, runner, code)
                elif runner.kill_at is not None and now >= runner.kill_at:
                    log.warning("runner ignored SIGTERM; killing its group", extra={"scenario_uuid": str(uuid)})
                    processes.signal_group(runner.process.pid, signal.SIGKILL)
                    runner.kill_at = None
            elif runner.start_at is not None and now >= runner.start_at:
                self._start(runner)
        RUNNERS.set(sum(1 for runner in self._runners.values() if runner.process is not None))

    def running(self) -> dict[UUID, int]:
        """Scenario -> pid of each live runner process."""
        return {uuid: runner.process.pid for uuid, runner in self._runners.items() if runner.process is not None}

    # --- start-up and shut-down of the runtime ----------------------------------------------------

    def resume(self) -> None:
        """After a (re)start of the runtime: clear leftovers, run what should run, finish what was stopping."""
        with transaction(self._sessions) as session:
            leftovers = [(row.scenario_uuid, row.process_pid) for row in workers.with_pid(session)]
            runnable = [_command_of(row) for row in workers.runnable(session)]
            stopping = [row.scenario_uuid for row in workers.stopping(session)]
        for scenario_uuid, pid in leftovers:
            assert pid is not None
            if killed := processes.kill_stale_group(pid, str(scenario_uuid)):
                log.warning("killed leftover runner processes", extra={"scenario_uuid": str(scenario_uuid), "killed": killed})
            with transaction(self._sessions) as session:
                workers.record(session, scenario_uuid, workers.RunnerRecord(clear_process_pid=True))
        for scenario_uuid in stopping:
            self._report_inactive(scenario_uuid, "stopped while the runtime was down")
        for command in runnable:
            self.deploy(command)

    def shutdown(self) -> None:
        """The runtime is stopping: stop every runner (SIGTERM, SIGKILL after the grace), leave no orphan.

        Scenarios stay desired-active in `workers`: the next runtime start resumes them.
        """
        alive = {uuid: runner for uuid, runner in self._runners.items() if runner.process is not None}
        for runner in alive.values():
            assert runner.process is not None
            processes.signal_group(runner.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + self._runner.stop_grace_seconds
        while alive and time.monotonic() < deadline:
            alive = {uuid: runner for uuid, runner in alive.items() if runner.process is not None and runner.process.poll() is None}
            time.sleep(0.05)
        for runner in self._runners.values():
            if runner.process is not None:
                processes.signal_group(runner.process.pid, signal.SIGKILL)
                runner.process.wait()
        with transaction(self._sessions) as session:
            for uuid in self._runners:
                workers.record(session, uuid, workers.RunnerRecord(clear_process_pid=True))
        self._runners.clear()

    # --- internals -------------------------------------------------------------------------------

    def _start(self, runner: LocalRunner) -> None:
        runner.start_at = None
        env = {
            **self._base_environment,
            **runner_environment(
                runner.command, kafka=self._kafka, max_workers=self._runner.max_workers, target_fps=self._runner.target_fps, http_port=self._port()
            ),
        }
        runner.process = self._spawn(self._local.runner_command, env)
        log.info(
            "runner started",
            extra={"scenario_uuid": str(runner.command.scenario_uuid), "pid": runner.process.pid, "restarts": runner.restarts},
        )
        with transaction(self._sessions) as session:
            workers.record(
                session,
                runner.command.scenario_uuid,
                workers.RunnerRecord(process_pid=runner.process.pid, restart_count=runner.restarts, started=True),
            )

    def _port(self) -> int:
        if self._local.http_port_base == 0:
            return processes.free_port()
        port = self._next_port
        self._next_port += 1
        return port

    def _exited(self, uuid: UUID, runner: LocalRunner, code: int) -> None:
        assert runner.process is not None
        pid = runner.process.pid
        # The runner's own children (detector processes) must not outlive it.
        processes.signal_group(pid, signal.SIGKILL)
        runner.process = None
        runner.kill_at = None
        kind = classify_exit(code, stop_requested=runner.stop_requested)
        EXITS.labels(kind.value).inc()
        log.info("runner exited", extra={"scenario_uuid": str(uuid), "pid": pid, "exit_code": code, "kind": kind.value})
        if kind in (ExitKind.STOPPED, ExitKind.COMPLETED):
            del self._runners[uuid]
            self._report_inactive(uuid, "runner stopped" if kind == ExitKind.STOPPED else "runner completed")
            return
        if kind == ExitKind.GAVE_UP:
            del self._runners[uuid]
            with transaction(self._sessions) as session:
                workers.record(
                    session,
                    uuid,
                    workers.RunnerRecord(status=ScenarioStatus.FAILED, clear_process_pid=True, last_error="runner gave up (exit 3)", stopped=True),
                )
            return
        now = self._clock()
        runner.crash_times = keep_crashes([*runner.crash_times, now], now, self._policy)
        detail = f"runner exited with code {code}" if code >= 0 else f"runner killed by signal {_signal_name(-code)}"
        if is_crash_loop(runner.crash_times, now, self._policy):
            del self._runners[uuid]
            message = f"{self._policy.crash_loop_threshold} crashes within {self._policy.crash_loop_window_seconds:.0f}s; last: {detail}"
            self._publisher.send([status_event(uuid, ScenarioStatus.FAILED, reason=FailureReason.RUNNER_CRASH_LOOP, message=message)])
            with transaction(self._sessions) as session:
                workers.record(
                    session,
                    uuid,
                    workers.RunnerRecord(
                        status=ScenarioStatus.FAILED,
                        clear_process_pid=True,
                        last_error=f"{FailureReason.RUNNER_CRASH_LOOP.value}: {message}",
                        stopped=True,
                    ),
                )
            return
        runner.restarts += 1
        wait = restart_wait_seconds(runner.crash_times, now, self._policy)
        runner.start_at = now + wait
        RESTARTS.inc()
        with transaction(self._sessions) as session:
            workers.record(
                session,
                uuid,
                workers.RunnerRecord(clear_process_pid=True, restart_count=runner.restarts, last_error=f"RunnerCrashed: {detail}"),
            )
        log.warning("runner crashed; restarting", extra={"scenario_uuid": str(uuid), "detail": detail, "restart_in_seconds": round(wait, 2)})

    def _report_inactive(self, uuid: UUID, why: str) -> None:
        with transaction(self._sessions) as session:
            row = workers.get(session, uuid)
            if row is not None and is_terminal(ScenarioStatus(row.status)):
                return
        self._publisher.send([status_event(uuid, ScenarioStatus.INACTIVE, message=why)])
        with transaction(self._sessions) as session:
            workers.record(session, uuid, workers.RunnerRecord(status=ScenarioStatus.INACTIVE, clear_process_pid=True, stopped=True))


def _command_of(row: Worker) -> DeployCommand:
    return DeployCommand(
        scenario_uuid=row.scenario_uuid, worker_id=row.worker_id, action="deploy", camera_url=row.camera_url, detector=workers.detector_of(row)
    )


def runner_base_environment(environ: Mapping[str, str], *, log_level: str, environment: str) -> dict[str, str]:
    """The runtime's environment without its own VAP_* settings (e.g. the database URL): least privilege."""
    base = {key: value for key, value in environ.items() if not key.startswith("VAP_")}
    base.update({"VAP_LOG_LEVEL": log_level, "VAP_ENVIRONMENT": environment})
    return base


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)
