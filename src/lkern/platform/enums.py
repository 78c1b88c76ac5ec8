"""Enumerations the platform itself uses."""

from enum import StrEnum


class DeletionStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    PARTIAL = "partial"


class SortOrder(StrEnum):
    ASC = "asc"
    DESC = "desc"
