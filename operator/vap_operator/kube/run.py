"""The kubernetes runtime: kopf in the main thread; the to_deploy consumer and the lease renewal in
threads beside it.

Outages of PostgreSQL or Kafka make it wait, never exit: kopf retries a handler that raised (after
``handlers.ERROR_BACKOFF_SECONDS``), the consumer loop retries its batch, the lease renewal skips a
period. Nothing connects at start-up either (clients connect on first use).
"""

from __future__ import annotations

import logging
import random
import threading
from functools import partial

import kopf
from sqlalchemy import Engine

from vap_common.consuming import ConsumerLoop
from vap_common.contracts import DeployCommand
from vap_common.db import is_permanent_error, make_session_factory
from vap_common.kafka import make_consumer, make_producer
from vap_common.topics import Topic, topic_name
from vap_operator.kube import handlers  # importing it registers the kopf handlers
from vap_operator.kube.api import KubeApi, api_server, load_config
from vap_operator.kube.crd import GROUP, PLURAL, VERSION
from vap_operator.kube.deployer import KubeDeployer
from vap_operator.kube.lease import renew_runner_leases
from vap_operator.publishing import Publisher
from vap_operator.settings import OperatorSettings
from vap_operator.threads import start_loop_thread, start_periodic_thread, stop_process

log = logging.getLogger(__name__)

# kopf's own bookkeeping lives in annotations under this prefix, so `status` holds only our fields.
KOPF_PREFIX = "vap.dev"
FINALIZER = "vap.dev/runner-cleanup"


def kopf_settings(settings: OperatorSettings) -> kopf.OperatorSettings:
    """kopf configured for this operator: annotations for progress, our finalizer, peering, explicit Events."""
    kube = settings.kubernetes
    configured = kopf.OperatorSettings()
    configured.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    configured.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    configured.persistence.finalizer = FINALIZER
    configured.posting.reporting_component = "vap-operator"
    configured.posting.loggers = False  # only the transitions we post explicitly become Events
    configured.peering.name = kube.peering_name
    configured.peering.clusterwide = False
    configured.peering.mandatory = kube.peering_mode == "mandatory"
    configured.peering.standalone = kube.peering_mode == "standalone"
    configured.peering.lifetime = kube.peering_lifetime_seconds
    configured.peering.priority = (
        kube.peering_priority if kube.peering_priority is not None else random.randint(1, 2**31 - 1)
    )
    configured.peering.stealth = True
    # Namespaced RBAC only: no cluster-wide CRD watch; the CRDs are installed before the operator.
    configured.scanning.disabled = True
    return configured


def run_kubernetes(settings: OperatorSettings, engine: Engine, stop: threading.Event) -> None:
    """Run the operator until SIGTERM/SIGINT (kopf's to handle); then ``stop`` ends the consumer loops.

    kopf's stop_flag is not used: it waits for a threading.Event in an executor thread that would
    keep the process alive after a signal. A crashed loop sends SIGTERM to this process instead.
    """
    load_config()
    namespace = settings.kubernetes.resolved_namespace()
    kube = KubeApi(namespace)
    sessions = make_session_factory(engine)
    producer = make_producer(settings.kafka)
    publisher = Publisher(producer, topic_prefix=settings.kafka.topic_prefix)
    deploy_loop = ConsumerLoop(
        new_consumer=partial(
            make_consumer, settings.kafka, group_id=settings.kubernetes.consumer_group, **settings.consumer_overrides()
        ),
        dlq_producer=producer,
        contracts={topic_name(Topic.TO_DEPLOY, settings.kafka.topic_prefix): DeployCommand},
        handler=KubeDeployer(
            kube=kube,
            sessions=sessions,
            publisher=publisher,
            max_workers=settings.runner.max_workers,
            keyring=settings.camera_keyring(),
        ),
        stop=stop,
        poll_timeout_seconds=settings.kubernetes.poll_timeout_seconds,
        is_permanent=is_permanent_error,
        stall_timeout_seconds=settings.consumer_stall_timeout_seconds,
    )
    deploy_thread = start_loop_thread("to-deploy", deploy_loop, on_crash=lambda: stop_process(stop))
    # A client of its own: the renewal must not queue behind the handlers' calls.
    lease_kube = KubeApi(namespace)
    lease_thread = start_periodic_thread(
        "runner-leases",
        lambda: renew_runner_leases(lease_kube, sessions),
        interval_seconds=settings.heartbeat_seconds,
        stop=stop,
    )
    deps = handlers.Dependencies(
        kube=kube,
        publisher=publisher,
        sessions=sessions,
        kafka=settings.kafka,
        kubernetes=settings.kubernetes,
        runner=settings.runner,
        policy=settings.restart.policy(),
        camera_policy=settings.camera_policy.policy(platform=[*settings.platform_servers(), *api_server()]),
    )
    kopf.timer(GROUP, VERSION, PLURAL, interval=settings.kubernetes.resync_seconds, id="resync_runner_status")(
        handlers.resync_runner_status
    )
    liveness = (
        f"http://0.0.0.0:{settings.kubernetes.liveness_port}/healthz" if settings.kubernetes.liveness_port else None
    )
    log.info("kubernetes runtime starting", extra={"namespace": namespace, "peering": settings.kubernetes.peering_mode})
    try:
        kopf.run(
            settings=kopf_settings(settings),
            namespaces=[namespace],
            clusterwide=False,
            memo=kopf.Memo(deps=deps),
            liveness_endpoint=liveness,
        )
    finally:
        stop.set()
        deploy_thread.join(timeout=30)
        lease_thread.join(timeout=10)
        producer.flush(10)
