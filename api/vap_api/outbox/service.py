"""Writing commands to the outbox, inside the caller's transaction."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from vap_common.contracts import ScenarioCommand
from vap_common.schema import OutboxScenario
from vap_common.topics import Topic

# The table, not the ORM entity: a Core INSERT skips the ORM's bulk-insert machinery (hot path).
_OUTBOX = cast(Table, OutboxScenario.__table__)


def enqueue(*, session: Session, command: ScenarioCommand) -> None:
    """Add ``command`` to the outbox; it is published only if the caller's transaction commits."""
    session.execute(
        insert(_OUTBOX).values(
            scenario_uuid=command.scenario_uuid,
            topic=Topic.INIT_SCENARIO.value,
            event_type=command.command,
            payload=command.model_dump(mode="json"),
        )
    )
