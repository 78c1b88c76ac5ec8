"""Orders' event handlers: the contacts read model."""

from __future__ import annotations

from lkern.events.contacts import (
    ContactCreated,
    ContactData,
    ContactDeleted,
    ContactPermanentlyDeleted,
    ContactRestored,
    ContactUpdated,
)
from lkern.orders.models import ContactView
from lkern.platform.events.consumer import EventHandlers, ReceivedEvent
from lkern.platform.uow import UnitOfWork

handlers = EventHandlers()

# Newer than any real version: nothing may bring a purged contact back.
PURGED_VERSION = 2**62


@handlers.on(ContactCreated, ContactUpdated, ContactDeleted, ContactRestored)
async def sync_contact(uow: UnitOfWork, event: ReceivedEvent[ContactData]) -> None:
    contact = event.data
    view = await uow.session.get(ContactView, contact.id)
    if view is None:
        view = ContactView(contact_id=contact.id, version=0)
        uow.session.add(view)
    elif contact.version <= view.version:
        return  # an older state arriving late, on another topic
    view.name = contact.name
    view.email = contact.email
    view.is_active = contact.is_active
    view.deleted = contact.deleted_at is not None
    view.version = contact.version


@handlers.on(ContactPermanentlyDeleted)
async def forget_contact(uow: UnitOfWork, event: ReceivedEvent[ContactPermanentlyDeleted]) -> None:
    view = await uow.session.get(ContactView, event.data.id)
    if view is None:
        view = ContactView(contact_id=event.data.id, name="", email="", is_active=False)
        uow.session.add(view)
    view.deleted = True
    view.is_active = False
    view.version = PURGED_VERSION
