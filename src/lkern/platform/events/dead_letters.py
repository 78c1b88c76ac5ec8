"""Dead letters: events a consumer gave up on, parked to be listed and replayed.

A parked event is a row in the service's ``dead_letters`` table (the record
that counts) and a copy on ``<topic>.dlq`` for tooling. Replaying applies it
again through the inbox, so it is applied at most once.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, mapped_column

from lkern.platform.db import PLATFORM_METADATA, IdMixin, PlatformBase, PlatformTables, utcnow
from lkern.platform.events.broker import Broker, IncomingMessage, OutgoingMessage
from lkern.platform.events.envelope import CONTENT_TYPE, CloudEvent, decode_event
from lkern.platform.events.handlers import EventHandlers
from lkern.platform.events.inbox import apply_event
from lkern.platform.uow import UnitOfWork

logger = logging.getLogger(__name__)


_EVENT_ID_LENGTH = 64


class DeadLetterStatus(StrEnum):
    PENDING = "pending"
    REPLAYED = "replayed"


class DeadLetter(IdMixin, PlatformBase):
    metadata = PLATFORM_METADATA[PlatformTables.INBOX]
    __tablename__ = "dead_letters"
    __table_args__ = (UniqueConstraint("event_id", "consumer_group"),)

    event_id: Mapped[str] = mapped_column(String(_EVENT_ID_LENGTH))
    consumer_group: Mapped[str] = mapped_column(String(128))
    topic: Mapped[str] = mapped_column(String(255), index=True)
    event_type: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[str] = mapped_column(Text)
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), default=DeadLetterStatus.PENDING, index=True)
    failed_at: Mapped[datetime] = mapped_column(default=utcnow)
    replayed_at: Mapped[datetime | None]


async def park(
    unit_of_work: Callable[[], UnitOfWork],
    broker: Broker,
    group: str,
    message: IncomingMessage,
    envelope: CloudEvent | None,
    error: str,
    *,
    attempts: int,
) -> None:
    """Park the event: a row to list and replay, and a message on ``<topic>.dlq``.

    Whatever the message holds can be stored: a NUL, which PostgreSQL's text
    cannot hold, is replaced, and an id made up for an unreadable message fits
    its column. Raises when the row cannot be written; the caller retries later.
    """
    event_id = envelope.id if envelope else _position_id(message)
    payload = _storable(message.value.decode(errors="replace"))
    error = _storable(error)
    async with unit_of_work() as uow:
        existing = await uow.session.scalar(
            select(DeadLetter).where(
                DeadLetter.event_id == event_id, DeadLetter.consumer_group == group
            )
        )
        if existing is None:
            uow.session.add(
                DeadLetter(
                    event_id=event_id,
                    consumer_group=group,
                    topic=message.topic,
                    event_type=envelope.type if envelope else None,
                    payload=payload,
                    error=error[:4000],
                    attempts=attempts,
                )
            )
        else:
            existing.status = DeadLetterStatus.PENDING
            existing.error = error[:4000]
            existing.attempts = attempts
            existing.failed_at = utcnow()
        await uow.commit()
    dlq_message = OutgoingMessage(
        topic=f"{message.topic}.dlq",
        key=message.key or event_id,
        value=json.dumps(
            {
                "event": json.loads(payload) if envelope else payload,
                "error": error,
                "attempts": attempts,
                "consumer_group": group,
                "failed_at": utcnow().isoformat(),
            }
        ).encode(),
        headers={
            "content-type": "application/json",
            "lkern-original-content-type": CONTENT_TYPE,
            "lkern-error": error[:500],
            "lkern-attempts": str(attempts),
            "lkern-consumer-group": group,
        },
    )
    results = await broker.publish([dlq_message])
    if results[0] is not None:
        # The row is the record that counts; the topic copy is for tooling.
        logger.warning("dead letter not copied to %s: %r", dlq_message.topic, results[0])


def _position_id(message: IncomingMessage) -> str:
    """An id for a message without a readable one: where it was, or a digest of that."""
    position = f"{message.topic}:{message.partition}:{message.offset}"
    if len(position) <= _EVENT_ID_LENGTH:
        return position
    return str(uuid.uuid5(uuid.NAMESPACE_URL, position))


def _storable(text: str) -> str:
    return text.replace("\x00", "\ufffd")


async def replay_dead_letters(
    unit_of_work: Callable[[], UnitOfWork],
    handlers: EventHandlers,
    group: str,
    ids: Sequence[uuid.UUID] | None = None,
) -> list[tuple[uuid.UUID, str]]:
    """Apply parked events again, once each (the inbox still guards); returns id, result."""
    async with unit_of_work() as uow:
        stmt = select(DeadLetter).where(
            DeadLetter.consumer_group == group, DeadLetter.status == DeadLetterStatus.PENDING
        )
        if ids is not None:
            stmt = stmt.where(DeadLetter.id.in_(list(ids)))
        letters = list((await uow.session.scalars(stmt.order_by(DeadLetter.failed_at))).all())
    results: list[tuple[uuid.UUID, str]] = []
    for letter in letters:
        try:
            envelope = decode_event(letter.payload.encode())
            outcome = (await apply_event(unit_of_work(), handlers, group, envelope)).value
        except Exception as exc:
            results.append((letter.id, f"failed: {exc!r}"))
            continue
        async with unit_of_work() as uow:
            stored = await uow.session.get_one(DeadLetter, letter.id)
            stored.status = DeadLetterStatus.REPLAYED
            stored.replayed_at = utcnow()
            await uow.commit()
        results.append((letter.id, outcome))
    return results
