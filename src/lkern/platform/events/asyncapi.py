"""The event contract as documents: JSON Schemas per event and an AsyncAPI 3 description.

Both are generated from what the services' definitions declare (the events
each produces, the handlers of those it consumes), so the documents cannot
drift from the code that produces and consumes the events.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic.json_schema import models_json_schema

from lkern.events import CONTRACT_VERSION, EventData
from lkern.platform.events.envelope import CONTENT_TYPE
from lkern.platform.service import ServiceDefinition

REF = "#/components/schemas/{model}"


def envelope_schema(cls: type[EventData]) -> dict[str, Any]:
    """The CloudEvent carrying ``cls`` as its data."""
    return {
        "type": "object",
        "title": f"{cls.__name__}Event",
        "description": f"CloudEvents 1.0 envelope of `{cls.event_type}` (structured JSON mode).",
        "required": [
            "specversion",
            "id",
            "source",
            "type",
            "subject",
            "time",
            "datacontenttype",
            "data",
        ],
        "properties": {
            "specversion": {"const": "1.0"},
            "id": {
                "type": "string",
                "format": "uuid",
                "description": "UUIDv7; the idempotency key.",
            },
            "source": {"const": f"/lkern/{cls.service()}"},
            "type": {"const": cls.event_type},
            "subject": {
                "type": "string",
                "description": "Id of the aggregate; also the message key.",
            },
            "time": {"type": "string", "format": "date-time"},
            "datacontenttype": {"const": "application/json"},
            "dataschema": {"const": cls.dataschema()},
            "traceparent": {"type": "string", "description": "W3C trace context of the change."},
            "data": {"$ref": REF.format(model=cls.__name__)},
        },
    }


def declared_events(services: Mapping[str, ServiceDefinition]) -> list[type[EventData]]:
    """The events the services declare they produce, sorted by type."""
    declared = {cls.event_type: cls for service in services.values() for cls in service.produces}
    return [declared[event_type] for event_type in sorted(declared)]


def event_json_schemas(services: Mapping[str, ServiceDefinition]) -> dict[str, dict[str, Any]]:
    """One self-contained JSON Schema per event type: the envelope with its data inlined."""
    schemas = {}
    for cls in declared_events(services):
        schema = envelope_schema(cls)
        data = cls.model_json_schema()
        schema["properties"]["data"] = data
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = cls.dataschema()
        schemas[cls.event_type] = schema
    return schemas


def asyncapi_document(services: Mapping[str, ServiceDefinition]) -> dict[str, Any]:
    classes = declared_events(services)
    _, definitions = models_json_schema([(cls, "validation") for cls in classes], ref_template=REF)
    schemas: dict[str, Any] = dict(definitions.get("$defs", {}))
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for cls in classes:
        name = cls.__name__
        schemas[f"{name}Event"] = envelope_schema(cls)
        messages[name] = {
            "name": cls.event_type,
            "title": name,
            "summary": (cls.__doc__ or "").strip().splitlines()[0]
            if cls.__doc__
            else cls.event_type,
            "contentType": CONTENT_TYPE,
            "payload": {"$ref": REF.format(model=f"{name}Event")},
            "bindings": {
                "kafka": {
                    "key": {
                        "type": "string",
                        "description": "The aggregate id (CloudEvent subject).",
                    },
                    "bindingVersion": "0.5.0",
                }
            },
        }
        channels[cls.event_type] = {
            "address": cls.event_type,
            "description": f"Dead letters of its consumers go to `{cls.event_type}.dlq`.",
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
        }
    for service in services.values():
        for cls in service.produces:
            operations[f"{service.name}.send.{cls.event_type}"] = _operation(
                "send", cls, service.name
            )
        if service.event_handlers:
            for topic in service.event_handlers.topics:
                found = [c for c in classes if c.event_type == topic]
                if not found:
                    raise ValueError(f"{service.name} consumes {topic}, which no service produces")
                cls = found[0]
                operations[f"{service.name}.receive.{topic}"] = _operation(
                    "receive", cls, service.name
                )
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "L-KERN events",
            "version": CONTRACT_VERSION,
            "description": "Every event L-KERN services publish and consume. Generated by "
            "`lkern events schema`; do not edit by hand.",
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "kafka": {
                "host": "localhost:9092",
                "protocol": "kafka",
                "description": "Any Kafka cluster.",
            }
        },
        "channels": channels,
        "operations": dict(sorted(operations.items())),
        "components": {"messages": messages, "schemas": dict(sorted(schemas.items()))},
    }


def _operation(action: str, cls: type[EventData], service: str) -> dict[str, Any]:
    return {
        "action": action,
        "title": f"{service} {'publishes' if action == 'send' else 'consumes'} {cls.event_type}",
        "channel": {"$ref": f"#/channels/{cls.event_type}"},
        "messages": [{"$ref": f"#/channels/{cls.event_type}/messages/{cls.__name__}"}],
    }


def write_documents(directory: Path, services: Mapping[str, ServiceDefinition]) -> list[Path]:
    """Write every event's JSON Schema and the AsyncAPI document; returns the files."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type, schema in event_json_schemas(services).items():
        path = directory / f"{event_type}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    path = directory / "asyncapi.json"
    path.write_text(json.dumps(asyncapi_document(services), indent=2) + "\n", encoding="utf-8")
    written.append(path)
    return written
