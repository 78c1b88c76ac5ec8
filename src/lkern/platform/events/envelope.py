"""CloudEvents 1.0 in structured JSON mode: the one envelope on every topic."""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator

from lkern.events import EventData, lookup
from lkern.platform.db import utcnow
from lkern.platform.ids import new_id
from lkern.platform.telemetry import current_traceparent

CONTENT_TYPE = "application/cloudevents+json"


class MalformedEvent(ValueError):
    """Bytes that are not a CloudEvent of a known type with valid data."""


class CloudEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    specversion: Literal["1.0"] = "1.0"
    id: str = Field(description="UUIDv7, unique per event; the consumers' idempotency key.")
    source: str = Field(examples=["/lkern/contacts"])
    type: str = Field(examples=["lkern.contacts.created"])
    subject: str = Field(description="The aggregate's id; also the message key.")
    time: AwareDatetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = None
    traceparent: str | None = None
    data: dict[str, Any]

    @field_validator("id")
    @classmethod
    def _canonical_uuid(cls, value: str) -> str:
        # The inbox keys on it as a UUID; anything else would fail there, or in
        # a column too short for it, instead of here.
        try:
            canonical = str(uuid.UUID(value))
        except ValueError:
            canonical = None
        if canonical != value.lower():
            raise ValueError("must be a UUID in its canonical form")
        return value

    def encode(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    def parsed_data(self) -> EventData:
        """The data as its registered model; raises MalformedEvent if it does not fit."""
        try:
            return lookup(self.type).model_validate(self.data)
        except (LookupError, ValidationError) as exc:
            raise MalformedEvent(f"{self.type}: {exc}") from exc


def build_event(service: str, data: EventData, subject: uuid.UUID | str) -> CloudEvent:
    """Wrap ``data`` for publishing from ``service``, in the current trace: its
    ``traceparent`` names the current span, the parent of the relay's publish
    span and of each consumer's span."""
    if data.service() != service:
        raise ValueError(f"{service} cannot emit {data.event_type}")
    # Re-validate: a model built with model_construct() or mutated would
    # otherwise reach the outbox unchecked.
    checked = type(data).model_validate(data.model_dump())
    return CloudEvent(
        id=str(new_id()),
        source=f"/lkern/{service}",
        type=data.event_type,
        subject=str(subject),
        time=utcnow(),
        dataschema=data.dataschema(),
        traceparent=current_traceparent(),
        data=checked.model_dump(mode="json"),
    )


def decode_event(value: bytes) -> CloudEvent:
    """The event in ``value``; MalformedEvent, saying why, for whatever else a producer sent."""
    if not value:
        raise MalformedEvent("the message has no value")
    try:
        text = value.decode()
    except UnicodeDecodeError as exc:
        raise MalformedEvent(f"the value is not UTF-8: {exc}") from exc
    try:
        document = json.loads(text)
    except RecursionError as exc:
        raise MalformedEvent("the value is nested too deeply to read") from exc
    except ValueError as exc:
        raise MalformedEvent(f"the value is not JSON: {exc}") from exc
    # A NUL is valid JSON, but PostgreSQL cannot store it in text, so a handler
    # would fail on it every time. (Raw NUL bytes are not JSON: caught above.)
    if "\\u0000" in text and _has_nul(document):
        raise MalformedEvent("the event contains a NUL character")
    try:
        return CloudEvent.model_validate(document)
    except ValidationError as exc:
        raise MalformedEvent(f"not a CloudEvent: {exc}") from exc


def _has_nul(node: object) -> bool:
    if isinstance(node, str):
        return "\x00" in node
    if isinstance(node, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in node.items())
    if isinstance(node, list):
        return any(_has_nul(item) for item in node)
    return False
