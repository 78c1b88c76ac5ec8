"""Orders' enumerations."""

from enum import StrEnum


class OrderStatus(StrEnum):
    DRAFT = "draft"
    CONFIRMED = "confirmed"
    FULFILLED = "fulfilled"
    CLOSED = "closed"
    CANCELLED = "cancelled"


class OrderSortField(StrEnum):
    CODE = "code"
    CREATED_AT = "created_at"
    TOTAL = "total"
    STATUS = "status"
