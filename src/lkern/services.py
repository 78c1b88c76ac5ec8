"""The services this installation runs, in start order."""

from __future__ import annotations

from lkern.contacts.definition import CONTACTS
from lkern.identity.definition import IDENTITY
from lkern.inventory.definition import INVENTORY
from lkern.issues.definition import ISSUES
from lkern.orders.definition import ORDERS
from lkern.platform.service import ServiceDefinition

SERVICES: dict[str, ServiceDefinition] = {
    definition.name: definition for definition in (IDENTITY, CONTACTS, ORDERS, ISSUES, INVENTORY)
}
