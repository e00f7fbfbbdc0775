"""The local runtime's supervisor: one runner process per active scenario on this machine.

Single-threaded by design: the runtime's main loop alternates ``ConsumerLoop.run_once`` (to_deploy
-> :meth:`Supervisor.deploy` / :meth:`Supervisor.stop`) and :meth:`Supervisor.tick` (exits,
restarts, admissions, stop deadlines, leases), so no lock is needed.

Rules, in order:
- Admission: at most ``capacity`` runners hold a slot (running, or waiting out a restart backoff);
  the others wait, oldest first, with the reason in ``workers.wait_reason``; runners start at most
  ``starts_per_second``, so a restart with hundreds of scenarios does not start them all at once.
- Exits follow vap_common.runner_contract.RunnerExit and ``decisions.classify_exit``: 0 done ->
  `inactive`; 3 gave up (the runner published `failed` itself) -> no restart; anything else ->
  restart with backoff, `failed` (RunnerCrashLoop) after repeated crashes. Stop = SIGTERM to the
  runner's process group, SIGKILL after the grace.
- Runners outlive the runtime: each runs in its own session and writes its exit code to a file, so
  a runtime that crashed and restarted adopts the runners still running (found by pid and the
  scenario's UUID in their environment) instead of killing and restarting them.
- Dependencies may be away: what must reach PostgreSQL or Kafka (pids, statuses) is queued as
  effects and written in order when they answer again; the runners keep running meanwhile.
"""

from __future__ import annotations

import collections
import logging
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID

from prometheus_client import Counter, Gauge
from sqlalchemy.orm import Session, sessionmaker

from vap_common.address_policy import AddressPolicy
from vap_common.camera_secrets import CameraKeyring, UnreadableCredentials
from vap_common.contracts import DeployCommand, StatusEvent
from vap_common.db import transaction
from vap_common.lifecycle import FailureReason, ScenarioStatus, is_terminal
from vap_common.runner_contract import RunnerSpec, read_exit_code, runner_environment
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
from vap_operator.settings import LocalSettings, RunnerLaunchSettings

log = logging.getLogger(__name__)

RUNNERS = Gauge("vap_local_runners", "Runner processes alive")
WAITING = Gauge("vap_local_runners_waiting", "Scenarios waiting for a runner slot")
RESTARTS = Counter("vap_local_runner_restarts_total", "Runner processes restarted after a crash")
EXITS = Counter("vap_local_runner_exits_total", "Runner process exits", ["kind"])
ADOPTED = Counter("vap_local_runners_adopted_total", "Running runners adopted after a runtime restart")
EFFECTS_DELAYED = Counter(
    "vap_local_effects_delayed_total", "Runner state writes delayed because PostgreSQL or Kafka was away"
)

Spawn = Callable[[Sequence[str], Mapping[str, str]], "subprocess.Popen[bytes]"]

# Longest wait between two attempts to write queued effects while a dependency is away.
_MAX_EFFECT_BACKOFF_SECONDS = 10.0


@dataclass
class LocalRunner:
    command: DeployCommand
    process: subprocess.Popen[bytes] | None = None
    adopted_pid: int | None = None  # a runner started by an earlier runtime (not our child)
    crash_times: list[float] = field(default_factory=list)  # monotonic seconds
    restarts: int = 0
    start_at: float | None = None  # monotonic; set while waiting out a restart backoff
    stop_requested: bool = False
    kill_at: float | None = None  # monotonic SIGKILL deadline once stopping
    wait_reported: bool = False  # workers.wait_reason says it waits for capacity

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else self.adopted_pid


@dataclass(frozen=True)
class Effect:
    """What must reach Kafka and PostgreSQL about one runner, in this order."""

    scenario_uuid: UUID
    event: StatusEvent | None = None
    record: workers.RunnerRecord | None = None
    unless_terminal: bool = False  # skip it all if the workers row is already terminal


class Supervisor:
    """Starts, stops, restarts, admits and reports runner processes; owns their `workers` fields."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        publisher: Publisher,
        kafka: KafkaSettings,
        runner: RunnerLaunchSettings,
        local: LocalSettings,
        policy: RestartPolicy,
        camera_policy: AddressPolicy,
        base_environment: Mapping[str, str],
        capacity: int,
        state_dir: Path,
        keyring: CameraKeyring,
        heartbeat_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        spawn: Spawn = processes.spawn,
    ) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._kafka = kafka
        self._runner = runner
        self._local = local
        self._policy = policy
        self._camera_policy = camera_policy  # passed on to every runner
        self._base_environment = dict(base_environment)
        self._clock = clock
        self._spawn = spawn
        self.capacity = capacity
        self._keyring = keyring
        self._state_dir = state_dir
        self._state_dir.mkdir(parents=True, exist_ok=True)
        self._heartbeat_seconds = heartbeat_seconds
        self._runners: dict[UUID, LocalRunner] = {}  # holding a slot
        self._waiting: dict[UUID, LocalRunner] = {}  # oldest first
        self._effects: collections.deque[Effect] = collections.deque()
        self._effects_retry_at = 0.0
        self._effect_failures = 0
        self._next_heartbeat = 0.0
        self._start_tokens = 1.0
        self._tokens_at = clock()
        self._next_port = local.http_port_base

    # --- commands (from to_deploy) ---------------------------------------------------------------

    def deploy(self, command: DeployCommand) -> str | None:
        """Queue the scenario's runner unless it runs or waits already, was stopped, or ended.

        Returns why the command is refused (no such scenario: it goes to the dead-letter topic).
        """
        if command.scenario_uuid in self._runners or command.scenario_uuid in self._waiting:
            return None
        with transaction(self._sessions) as session:
            row = workers.get(session, command.scenario_uuid)
            if row is None:
                return f"no workers row for scenario {command.scenario_uuid}: the orchestrator never accepted it"
            if row.desired_state != DesiredState.ACTIVE.value or is_terminal(ScenarioStatus(row.status)):
                log.info(
                    "deploy ignored: scenario stopped or ended",
                    extra={"scenario_uuid": str(command.scenario_uuid), "status": row.status},
                )
                return None
            # The row is the truth (the orchestrator wrote it); the message only wakes us up.
            command = _command_of(row)
        self._waiting[command.scenario_uuid] = LocalRunner(command=command)
        return None

    def stop(self, command: DeployCommand) -> None:
        """SIGTERM the runner's group; `inactive` is reported once it exited (at once if none runs)."""
        uuid = command.scenario_uuid
        runner = self._runners.get(uuid)
        if runner is not None and runner.pid is not None:
            self._request_stop(uuid, runner)
            return
        self._runners.pop(uuid, None)
        self._waiting.pop(uuid, None)
        self._report_inactive(uuid, "stopped before a runner was running")

    # --- the loop's periodic step ----------------------------------------------------------------

    def tick(self) -> None:
        """Reap exits, enforce stop deadlines, admit waiting runners, renew leases, write effects."""
        now = self._clock()
        for uuid, runner in list(self._runners.items()):
            if runner.pid is not None:
                code = self._exit_code(uuid, runner)
                if code is not False:
                    self._exited(uuid, runner, code)
                elif runner.kill_at is not None and now >= runner.kill_at:
                    log.warning("runner ignored SIGTERM; killing its group", extra={"scenario_uuid": str(uuid)})
                    processes.signal_group(runner.pid, signal.SIGKILL)
                    runner.kill_at = None
            elif runner.start_at is not None and now >= runner.start_at and self._take_start_token(now):
                self._start(runner)
        self._admit(now)
        RUNNERS.set(sum(1 for runner in self._runners.values() if runner.pid is not None))
        WAITING.set(len(self._waiting))
        self._renew_leases(now)
        self.flush_effects()

    def running(self) -> dict[UUID, int]:
        """Scenario -> pid of each live runner process (its process group id)."""
        return {uuid: pid for uuid, runner in self._runners.items() if (pid := runner.pid) is not None}

    def waiting(self) -> list[UUID]:
        """Scenarios waiting for a slot, oldest first."""
        return list(self._waiting)

    def flush_effects(self) -> bool:
        """Write queued effects in order; True when none is left. Stops at the first failure."""
        if self._effects and self._clock() < self._effects_retry_at:
            return False
        while self._effects:
            effect = self._effects[0]
            try:
                self._apply(effect)
            except Exception as error:  # noqa: BLE001 - PostgreSQL or Kafka away: keep it, retry later
                self._effect_failures += 1
                delay = min(0.2 * 2 ** (self._effect_failures - 1), _MAX_EFFECT_BACKOFF_SECONDS)
                self._effects_retry_at = self._clock() + delay
                EFFECTS_DELAYED.inc()
                log.warning(
                    "cannot record runner state yet; retrying",
                    extra={
                        "pending": len(self._effects),
                        "retry_in_seconds": round(delay, 2),
                        "error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
                    },
                )
                return False
            self._effects.popleft()
        self._effect_failures = 0
        return True

    # --- start-up and shut-down of the runtime ----------------------------------------------------

    def resume(self) -> None:
        """After a (re)start of the runtime: adopt runners still running, queue what should run,
        finish what was stopping, clear leftovers of runners that are gone."""
        with transaction(self._sessions) as session:
            rows = [row for row in workers.with_pid(session)] + workers.runnable(session) + workers.stopping(session)
            seen: dict[UUID, Worker] = {}
            for row in rows:
                seen.setdefault(row.scenario_uuid, row)
            snapshot = [
                (
                    row.scenario_uuid,
                    row.process_pid,
                    row.desired_state,
                    ScenarioStatus(row.status),
                    _command_of(row),
                    row.restart_count,
                )
                for row in seen.values()
            ]
        for uuid, pid, desired, status, command, restarts in snapshot:
            wanted = desired == DesiredState.ACTIVE.value and not is_terminal(status)
            stopping = desired == DesiredState.INACTIVE.value and not is_terminal(status)
            alive = pid is not None and processes.runner_alive(pid, str(uuid))
            if alive and (wanted or stopping):
                assert pid is not None
                runner = LocalRunner(command=command, adopted_pid=pid, restarts=restarts)
                self._runners[uuid] = runner
                ADOPTED.inc()
                log.info("adopted a running runner", extra={"scenario_uuid": str(uuid), "pid": pid})
                if stopping:
                    self._request_stop(uuid, runner)
                continue
            if pid is not None:
                if killed := processes.kill_stale_group(pid, str(uuid)):
                    log.warning(
                        "killed leftover runner processes", extra={"scenario_uuid": str(uuid), "killed": killed}
                    )
                if wanted and (code := read_exit_code(self._exit_file(uuid))) is not None:
                    # It ended while no runtime watched it: decide on its exit as if we had.
                    runner = LocalRunner(command=command, adopted_pid=pid, restarts=restarts)
                    self._runners[uuid] = runner
                    self._exited(uuid, runner, code)
                    continue
                self._effects.append(Effect(uuid, record=workers.RunnerRecord(clear_process_pid=True)))
            if stopping:
                self._report_inactive(uuid, "stopped while the runtime was down")
            elif wanted:
                self._waiting[uuid] = LocalRunner(command=command, restarts=restarts)
        self.flush_effects()

    def shutdown(self) -> None:
        """The runtime is stopping on request: stop every runner (SIGTERM, SIGKILL after the grace).

        Scenarios stay desired-active in `workers`: the next runtime start resumes them.
        """
        alive = {uuid: runner for uuid, runner in self._runners.items() if runner.pid is not None}
        for runner in alive.values():
            assert runner.pid is not None
            processes.signal_group(runner.pid, signal.SIGTERM)
        deadline = time.monotonic() + self._runner.stop_grace_seconds
        while alive and time.monotonic() < deadline:
            alive = {uuid: runner for uuid, runner in alive.items() if self._exit_code(uuid, runner) is False}
            time.sleep(0.05)
        for runner in self._runners.values():
            if runner.pid is not None:
                processes.signal_group(runner.pid, signal.SIGKILL)
                if runner.process is not None:
                    runner.process.wait()
        for uuid in self._runners:
            self._effects.append(Effect(uuid, record=workers.RunnerRecord(clear_process_pid=True)))
        self._runners.clear()
        self.flush_effects()

    # --- internals -------------------------------------------------------------------------------

    def _admit(self, now: float) -> None:
        """Start waiting runners, oldest first, while a slot and a start token are free."""
        while self._waiting and len(self._runners) < self.capacity and self._take_start_token(now):
            uuid = next(iter(self._waiting))
            runner = self._waiting.pop(uuid)
            self._runners[uuid] = runner
            self._start(runner)
        if len(self._runners) >= self.capacity:
            reason = f"WaitingForCapacity: {len(self._runners)} of {self.capacity} runners running on this machine"
            for uuid, runner in self._waiting.items():
                if not runner.wait_reported:
                    runner.wait_reported = True
                    self._effects.append(Effect(uuid, record=workers.RunnerRecord(wait_reason=reason)))

    def _take_start_token(self, now: float) -> bool:
        rate = self._local.starts_per_second
        self._start_tokens = min(max(1.0, rate), self._start_tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if self._start_tokens < 1.0:
            return False
        self._start_tokens -= 1.0
        return True

    def _start(self, runner: LocalRunner) -> None:
        runner.start_at = None
        uuid = runner.command.scenario_uuid
        try:
            # In plain text only in the runner's environment (never in a file, a log or the database).
            camera_url = self._keyring.open(runner.command.camera_url)
        except UnreadableCredentials as error:
            del self._runners[uuid]
            self._fail(uuid, FailureReason.CREDENTIALS_UNREADABLE, str(error))
            return
        exit_file = self._exit_file(uuid)
        exit_file.unlink(missing_ok=True)
        env = {
            **self._base_environment,
            **runner_environment(
                RunnerSpec(
                    scenario_uuid=uuid,
                    worker_id=runner.command.worker_id,
                    camera_url=camera_url,
                    detector=runner.command.detector,
                    max_workers=self._runner.max_workers,
                    grace_seconds=self._runner.stop_grace_seconds,
                    target_fps=self._runner.target_fps_for(runner.command.analysis_fps),
                ),
                kafka=self._kafka,
                camera_policy=self._camera_policy,
                http_port=self._port(),
                exit_code_file=exit_file,
                extra=self._runner.environment,
            ),
        }
        runner.process = self._spawn(self._local.runner_command, env)
        runner.adopted_pid = None
        log.info(
            "runner started", extra={"scenario_uuid": str(uuid), "pid": runner.process.pid, "restarts": runner.restarts}
        )
        self._effects.append(
            Effect(
                uuid,
                record=workers.RunnerRecord(
                    process_pid=runner.process.pid, restart_count=runner.restarts, started=True, clear_wait_reason=True
                ),
            )
        )

    def _request_stop(self, uuid: UUID, runner: LocalRunner) -> None:
        if runner.stop_requested or runner.pid is None:
            return
        runner.stop_requested = True
        runner.kill_at = self._clock() + self._runner.stop_grace_seconds
        processes.signal_group(runner.pid, signal.SIGTERM)
        log.info("runner stopping", extra={"scenario_uuid": str(uuid), "pid": runner.pid})

    def _exit_code(self, uuid: UUID, runner: LocalRunner) -> int | None | bool:
        """False while the runner runs; else its exit code (None: it died without one)."""
        if runner.process is not None:
            code = runner.process.poll()
            return False if code is None else code
        assert runner.adopted_pid is not None
        if processes.runner_alive(runner.adopted_pid, str(uuid)):
            return False
        return read_exit_code(self._exit_file(uuid))

    def _exit_file(self, uuid: UUID) -> Path:
        return self._state_dir / f"{uuid}.exit"

    def _port(self) -> int:
        if self._local.http_port_base == 0:
            return processes.free_port()
        port = self._next_port
        self._next_port += 1
        return port

    def _renew_leases(self, now: float) -> None:
        if now < self._next_heartbeat:
            return
        self._next_heartbeat = now + self._heartbeat_seconds
        running = [
            uuid for uuid, runner in self._runners.items() if runner.pid is not None and not runner.stop_requested
        ]
        try:
            with transaction(self._sessions) as session:
                workers.renew_leases(session, running)
        except Exception as error:  # noqa: BLE001 - the lease lapses and the API shows it; retried next period
            log.warning("cannot renew the runners' leases", extra={"error": f"{type(error).__name__}"})

    def _exited(self, uuid: UUID, runner: LocalRunner, code: int | None) -> None:
        pid = runner.pid
        assert pid is not None
        # The runner's own children (detector processes) must not outlive it.
        processes.signal_group(pid, signal.SIGKILL)
        runner.process = None
        runner.adopted_pid = None
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
            record = workers.RunnerRecord(
                status=ScenarioStatus.FAILED, clear_process_pid=True, last_error="runner gave up (exit 3)", stopped=True
            )
            self._effects.append(Effect(uuid, record=record))
            return
        now = self._clock()
        runner.crash_times = keep_crashes([*runner.crash_times, now], now, self._policy)
        detail = _describe_exit(code)
        if is_crash_loop(runner.crash_times, now, self._policy):
            del self._runners[uuid]
            message = (
                f"{self._policy.crash_loop_threshold} crashes within "
                f"{self._policy.crash_loop_window_seconds:.0f}s; last: {detail}"
            )
            self._fail(uuid, FailureReason.RUNNER_CRASH_LOOP, message)
            return
        runner.restarts += 1
        wait = restart_wait_seconds(runner.crash_times, now, self._policy)
        runner.start_at = now + wait
        RESTARTS.inc()
        record = workers.RunnerRecord(
            clear_process_pid=True, restart_count=runner.restarts, last_error=f"RunnerCrashed: {detail}"
        )
        self._effects.append(Effect(uuid, record=record))
        log.warning(
            "runner crashed; restarting",
            extra={"scenario_uuid": str(uuid), "detail": detail, "restart_in_seconds": round(wait, 2)},
        )

    def _fail(self, uuid: UUID, reason: FailureReason, message: str) -> None:
        event = status_event(uuid, ScenarioStatus.FAILED, reason=reason, message=message)
        record = workers.RunnerRecord(
            status=ScenarioStatus.FAILED, clear_process_pid=True, last_error=f"{reason.value}: {message}", stopped=True
        )
        self._effects.append(Effect(uuid, event=event, record=record))

    def _report_inactive(self, uuid: UUID, why: str) -> None:
        record = workers.RunnerRecord(
            status=ScenarioStatus.INACTIVE, clear_process_pid=True, stopped=True, clear_wait_reason=True
        )
        self._effects.append(
            Effect(
                uuid,
                event=status_event(uuid, ScenarioStatus.INACTIVE, message=why),
                record=record,
                unless_terminal=True,
            )
        )

    def _apply(self, effect: Effect) -> None:
        if effect.unless_terminal:
            with transaction(self._sessions) as session:
                row = workers.get(session, effect.scenario_uuid)
                if row is not None and is_terminal(ScenarioStatus(row.status)):
                    return
        if effect.event is not None:
            self._publisher.send([effect.event])
        if effect.record is not None:
            with transaction(self._sessions) as session:
                workers.record(session, effect.scenario_uuid, effect.record)


def _command_of(row: Worker) -> DeployCommand:
    return DeployCommand(
        scenario_uuid=row.scenario_uuid,
        worker_id=row.worker_id,
        action="deploy",
        camera_url=row.camera_url,
        detector=workers.detector_of(row),
        tenant=row.tenant,
        analysis_fps=row.analysis_fps,
    )


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "runner died without an exit code (killed while no runtime watched it)"
    if code >= 0:
        return f"runner exited with code {code}"
    try:
        return f"runner killed by signal {signal.Signals(-code).name}"
    except ValueError:
        return f"runner killed by signal {-code}"


def runner_base_environment(environ: Mapping[str, str], *, log_level: str, environment: str) -> dict[str, str]:
    """The runtime's environment without its own VAP_* settings (e.g. the database URL): least privilege."""
    base = {key: value for key, value in environ.items() if not key.startswith("VAP_")}
    base.update({"VAP_LOG_LEVEL": log_level, "VAP_ENVIRONMENT": environment})
    return base
