"""The base of every event model, and the registry of event types."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

CONTRACT_VERSION = "1.0.0"

_REGISTRY: dict[str, type[EventData]] = {}


class UnknownEventType(LookupError):
    pass


class EventData(BaseModel):
    """The ``data`` of one kind of event; immutable and strict about extra fields."""

    # Fields named after Python keywords ("from") are written by their alias.
    model_config = ConfigDict(
        frozen=True, extra="forbid", serialize_by_alias=True, validate_by_name=True
    )

    event_type: ClassVar[str]
    schema_version: ClassVar[int]

    @classmethod
    def service(cls) -> str:
        return cls.event_type.split(".")[1]

    @classmethod
    def dataschema(cls) -> str:
        return f"urn:lkern:events:{cls.event_type}:v{cls.schema_version}"


# A file of a resource, as the events of its attachments name it (a comment, not a
# docstring: that would change the published schemas of issues' attachment events).
class AttachmentData(EventData):
    file_id: uuid.UUID
    filename: str
    content_type: str
    size: int


E = TypeVar("E", bound=type[EventData])


def event(event_type: str, *, version: int = 1) -> Callable[[E], E]:
    """Register a model as the data of ``event_type`` (``lkern.<service>.<event>``)."""
    parts = event_type.split(".")
    if len(parts) != 3 or parts[0] != "lkern" or not all(parts):
        raise ValueError(f"event types look like lkern.<service>.<event>, not {event_type!r}")

    def register(cls: E) -> E:
        if event_type in _REGISTRY:
            raise ValueError(f"event type {event_type} is registered twice")
        cls.event_type = event_type
        cls.schema_version = version
        _REGISTRY[event_type] = cls
        return cls

    return register


def lookup(event_type: str) -> type[EventData]:
    try:
        return _REGISTRY[event_type]
    except KeyError:
        raise UnknownEventType(event_type) from None


def event_types(service: str | None = None) -> list[type[EventData]]:
    """Registered event models, of one producing service or of all, sorted by type."""
    return [
        cls
        for name, cls in sorted(_REGISTRY.items())
        if service is None or cls.service() == service
    ]
