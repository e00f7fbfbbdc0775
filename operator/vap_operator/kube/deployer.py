"""The kubernetes runtime's to_deploy consumer: each DeployCommand -> its VideoScenario.

A message is first checked against the scenario's `workers` row (decisions.judge_deploy): one for a
scenario the orchestrator never registered is rejected to the dead-letter topic and creates nothing;
a deploy for a scenario already stopped or terminal is a late replay and is dropped. A database
outage raises, so the batch is retried: a message is never rejected for want of an answer.
The object name comes from the scenario UUID, so a replay finds the object it made the first time.
A deploy never touches an existing object (a stopped scenario is never re-activated by a replay);
a stop sets desiredState inactive, creating an inactive object when none exists yet so a late
deploy is refused too. The API server is the durable store: offsets are committed after it answered.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from kubernetes.client.exceptions import ApiException
from prometheus_client import Counter
from sqlalchemy.orm import Session, sessionmaker

from vap_common import camera
from vap_common.camera_secrets import CameraKeyring, UnreadableCredentials
from vap_common.consuming import Accepted, Rejected
from vap_common.contracts import DeployCommand
from vap_common.db import transaction
from vap_common.lifecycle import FailureReason, ScenarioStatus
from vap_operator import workers
from vap_operator.decisions import (
    DeployVerdict,
    DesiredState,
    camera_secret_name_for,
    judge_deploy,
    pod_name_for,
    resource_name_for,
)
from vap_operator.kube import manifests
from vap_operator.kube.api import KubeApi
from vap_operator.publishing import Publisher, status_event

log = logging.getLogger(__name__)

DEPLOYS_REFUSED = Counter("vap_operator_deploys_refused_total", "to_deploy messages not acted on", ["verdict"])


class KubeDeployer:
    """ConsumerLoop handler for to_deploy (kubernetes runtime)."""

    def __init__(
        self,
        *,
        kube: KubeApi,
        sessions: sessionmaker[Session],
        publisher: Publisher,
        max_workers: int,
        keyring: CameraKeyring,
    ) -> None:
        self._kube = kube
        self._keyring = keyring
        self._sessions = sessions
        self._publisher = publisher
        self._max_workers = max_workers

    def __call__(self, batch: Sequence[Accepted[DeployCommand]]) -> Sequence[Rejected]:
        rejected: list[Rejected] = []
        for item in batch:
            command = item.value
            verdict = self._judge(command)
            if verdict == DeployVerdict.APPLY:
                self.apply(command)
                continue
            DEPLOYS_REFUSED.labels(verdict.value).inc()
            unknown = verdict == DeployVerdict.UNKNOWN
            log.log(
                logging.WARNING if unknown else logging.INFO,
                "to_deploy message not acted on",
                extra={"scenario_uuid": str(command.scenario_uuid), "action": command.action, "verdict": verdict.value},
            )
            if unknown:
                rejected.append(
                    Rejected(
                        item.message,
                        f"unknown scenario {command.scenario_uuid}: "
                        "no workers row (not registered by the orchestrator)",
                    )
                )
        return rejected

    def _judge(self, command: DeployCommand) -> DeployVerdict:
        """Against the row as it is now (a short session per message: none is held open across API calls)."""
        with self._sessions() as session:
            return judge_deploy(workers.state_of(workers.get(session, command.scenario_uuid)), command.action)

    def apply(self, command: DeployCommand) -> None:
        name = resource_name_for(command.scenario_uuid)
        if (
            command.action == "stop"
            and self._kube.patch_videoscenario(name, {"spec": {"desiredState": DesiredState.INACTIVE.value}})
            is not None
        ):
            log.info(
                "videoscenario stop requested", extra={"scenario_uuid": str(command.scenario_uuid), "resource": name}
            )
            return
        desired = DesiredState.ACTIVE if command.action == "deploy" else DesiredState.INACTIVE
        self._ensure(command, name, desired)

    def _ensure(self, command: DeployCommand, name: str, desired: DesiredState) -> None:
        try:
            # From here on the URL is in plain text: it goes into the Secret (never a spec, an Event or a log).
            opened = camera.admit(self._keyring.open(command.camera_url), allow_files=True)
        except camera.InadmissibleCamera as error:
            self._invalid(command, str(error))
            return
        except UnreadableCredentials as error:
            self._invalid(command, str(error), reason=FailureReason.CREDENTIALS_UNREADABLE)
            return
        command = command.model_copy(update={"camera_url": opened.url})
        if manifests.needs_secret(command):
            self._kube.apply_secret(manifests.camera_secret(command))
        try:
            created = self._kube.create_videoscenario(
                manifests.videoscenario(command, max_workers=self._max_workers, desired=desired)
            )
        except ApiException as error:
            if error.status == 422:
                self._invalid(command, _api_message(error))
                return
            raise
        current = created or self._kube.read_videoscenario(name)
        if current is None:
            raise RuntimeError(f"VideoScenario {name} neither created nor found")  # deleted meanwhile: retry the batch
        if manifests.needs_secret(command):
            self._kube.set_secret_owner(camera_secret_name_for(name), [manifests.owner_reference(current)])
        with transaction(self._sessions) as session:
            workers.record(session, command.scenario_uuid, workers.RunnerRecord(pod_name=pod_name_for(name)))
        log.info(
            "videoscenario ensured",
            extra={
                "scenario_uuid": str(command.scenario_uuid),
                "resource": name,
                "object_created": created is not None,
                "desired": desired.value,
            },
        )

    def _invalid(
        self, command: DeployCommand, problem: str, *, reason: FailureReason = FailureReason.INVALID_CONFIG
    ) -> None:
        """A scenario that can never run (the API server would not accept it, or its credentials do not
        open): report `failed` with ``reason``, do not retry."""
        log.warning("invalid scenario", extra={"scenario_uuid": str(command.scenario_uuid), "problem": problem})
        self._publisher.send(
            [status_event(command.scenario_uuid, ScenarioStatus.FAILED, reason=reason, message=problem)]
        )
        with transaction(self._sessions) as session:
            workers.record(
                session,
                command.scenario_uuid,
                workers.RunnerRecord(
                    status=ScenarioStatus.FAILED,
                    last_error=f"{reason.value}: {problem}",
                    stopped=True,
                ),
            )


def _api_message(error: ApiException) -> str:
    try:
        body: Any = json.loads(error.body or "{}")
        return str(body.get("message") or error.reason)
    except ValueError:
        return str(error.reason)
