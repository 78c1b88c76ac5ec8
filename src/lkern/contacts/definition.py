"""Contacts as the platform sees it."""

from pathlib import Path

from lkern.contacts.models import ContactsBase
from lkern.contacts.views import router
from lkern.platform.service import ServiceDefinition

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
)
