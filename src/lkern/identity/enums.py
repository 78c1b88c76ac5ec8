"""Identity's enumerations."""

from enum import StrEnum


class UserSortField(StrEnum):
    EMAIL = "email"
    FULL_NAME = "full_name"
    CREATED_AT = "created_at"
