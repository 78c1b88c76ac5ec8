"""The event contract shared by every service: what each event's ``data`` holds.

Producers and consumers import these models and nothing else of each other.
Each event type is a Pydantic model registered under its CloudEvents ``type``
(which is also its topic); its ``schema_version`` grows when its shape changes
incompatibly, and the package as a whole carries :data:`CONTRACT_VERSION`.
A service declares the events it produces in its definition (``produces``),
which is what the documents and the topics are made from.
"""

from lkern.events.base import CONTRACT_VERSION, EventData, UnknownEventType, event_types, lookup

__all__ = ["CONTRACT_VERSION", "EventData", "UnknownEventType", "event_types", "lookup"]
