"""Contacts' enumerations."""

from enum import StrEnum


class ContactSortField(StrEnum):
    NAME = "name"
    EMAIL = "email"
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
