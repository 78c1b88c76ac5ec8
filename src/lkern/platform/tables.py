"""The platform's own tables, kept in a service's database beside the service's.

Each is defined in the module of its purpose, in one of the groups of
:class:`~lkern.platform.db.PlatformTables`; importing this module makes sure
all of them are in :data:`PLATFORM_METADATA`.
"""

from __future__ import annotations

from lkern.platform.db import PLATFORM_METADATA
from lkern.platform.events.dead_letters import DeadLetter
from lkern.platform.events.inbox import ProcessedEvent
from lkern.platform.events.outbox import OutboxMessage
from lkern.platform.models import CodeCounter, DeletionAudit
from lkern.platform.revocations import TokenRevocation

__all__ = [
    "PLATFORM_METADATA",
    "CodeCounter",
    "DeadLetter",
    "DeletionAudit",
    "OutboxMessage",
    "ProcessedEvent",
    "TokenRevocation",
]
