"""CloudEvents 1.0 in structured JSON mode: the one envelope on every topic."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lkern.events import EventData, lookup
from lkern.platform.db import utcnow
from lkern.platform.ids import new_id
from lkern.platform.tracing import current_trace, new_trace

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
    time: datetime
    datacontenttype: Literal["application/json"] = "application/json"
    dataschema: str | None = None
    traceparent: str | None = None
    data: dict[str, Any]

    def encode(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode()

    def parsed_data(self) -> EventData:
        """The data as its registered model; raises MalformedEvent if it does not fit."""
        try:
            return lookup(self.type).model_validate(self.data)
        except (LookupError, ValidationError) as exc:
            raise MalformedEvent(f"{self.type}: {exc}") from exc


def build_event(service: str, data: EventData, subject: uuid.UUID | str) -> CloudEvent:
    """Wrap ``data`` for publishing from ``service``, in the current trace."""
    if data.service() != service:
        raise ValueError(f"{service} cannot emit {data.event_type}")
    # Re-validate: a model built with model_construct() or mutated would
    # otherwise reach the outbox unchecked.
    checked = type(data).model_validate(data.model_dump())
    trace = current_trace.get() or new_trace()
    return CloudEvent(
        id=str(new_id()),
        source=f"/lkern/{service}",
        type=data.event_type,
        subject=str(subject),
        time=utcnow(),
        dataschema=data.dataschema(),
        traceparent=trace.child().traceparent,
        data=checked.model_dump(mode="json"),
    )


def decode_event(value: bytes) -> CloudEvent:
    try:
        return CloudEvent.model_validate(json.loads(value))
    except (ValueError, ValidationError) as exc:
        raise MalformedEvent(str(exc)) from exc
