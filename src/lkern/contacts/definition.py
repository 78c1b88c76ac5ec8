"""Contacts as the platform sees it."""

from pathlib import Path

from lkern.contacts.grpc import grpc_services
from lkern.contacts.models import ContactsBase
from lkern.contacts.service import count_by_state
from lkern.contacts.settings import ContactsSettings
from lkern.contacts.views import router
from lkern.events.contacts import (
    ContactCreated,
    ContactDeleted,
    ContactPermanentlyDeleted,
    ContactRestored,
    ContactUpdated,
)
from lkern.platform.metrics import ServiceMetrics
from lkern.platform.service import ServiceDefinition, UnitOfWorkFactory


async def collect_metrics(unit_of_work: UnitOfWorkFactory, metrics: ServiceMetrics) -> None:
    gauge = metrics.gauge("lkern_contacts", "Contacts by state.", ["state"])
    for state, number in (await count_by_state(unit_of_work())).items():
        gauge.labels(state).set(number)


CONTACTS = ServiceDefinition(
    name="contacts",
    code="lkms101",
    title="Contacts",
    description="The people and companies the business deals with.",
    version="0.1.0",
    rest_port=8101,
    grpc_port=5101,
    metadata=ContactsBase.metadata,
    routers=[router],
    migrations_dir=Path(__file__).parent / "migrations",
    collect_metrics=collect_metrics,
    grpc_services=grpc_services,
    settings_class=ContactsSettings,
    produces=[
        ContactCreated,
        ContactUpdated,
        ContactDeleted,
        ContactRestored,
        ContactPermanentlyDeleted,
    ],
)
