"""The kubernetes runtime's lease on its runners: ``workers.heartbeat_at`` of each Running, ready runner Pod.

Renewed from what the API server says, not from kopf's view of each object: one LIST of the runner
Pods and one UPDATE per period, whatever the number of scenarios. A lease that stops moving tells
readers of the row that nothing vouches for that runner any more (this operator is gone, or its Pod).
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session, sessionmaker

from vap_common.db import transaction
from vap_operator import workers
from vap_operator.kube import manifests
from vap_operator.kube.api import KubeApi
from vap_operator.kube.status import ready_runner_scenarios

log = logging.getLogger(__name__)


def renew_runner_leases(kube: KubeApi, sessions: sessionmaker[Session]) -> int:
    """One renewal; returns how many leases it renewed. API and database errors are the caller's."""
    scenarios = ready_runner_scenarios(kube.list_pods(manifests.RUNNER_SELECTOR))
    with transaction(sessions) as session:
        workers.renew_leases(session, scenarios)
    log.debug("runner leases renewed", extra={"count": len(scenarios)})
    return len(scenarios)
