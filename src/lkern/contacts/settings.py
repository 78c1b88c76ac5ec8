"""Contacts' own settings, read like the platform's (``LKERN_`` / ``LKERN_CONTACTS_``)."""

from __future__ import annotations

from pydantic import Field

from lkern.platform.settings import Settings


class ContactsSettings(Settings):
    phone_default_region: str | None = Field(
        default=None,
        description="ISO 3166 region used to read phone numbers written without a country code.",
    )
