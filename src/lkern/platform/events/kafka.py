"""Kafka through aiokafka: ``kafka://host:port[,host:port]``.

The producer waits for all in-sync replicas (``acks=all``) and is idempotent
where the broker supports it. Whether it does is found out by asking: the
first producer asks for a producer id (``InitProducerId``), and a broker that
answers with an error (tansu) gets a plain producer and one warning.

Nothing here blocks for long: every call has a timeout. A broker that cannot
be reached surfaces as :class:`BrokerUnavailable`; one that answered and
refused a message as :class:`MessageRejected`, for that message alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    BrokerResponseError,
    KafkaError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)

from lkern.platform.background import left_running
from lkern.platform.events.broker import (
    Broker,
    BrokerUnavailable,
    IncomingMessage,
    MessageRejected,
    OutgoingMessage,
    Subscription,
    UnknownTopic,
    received,
)

logger = logging.getLogger(__name__)


class _InitProducerIdRefusal(logging.Filter):
    """aiokafka logs a refused InitProducerId as an error; our one warning says it instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Unexpected error during InitProducerIdRequest")


logging.getLogger("aiokafka.producer.sender").addFilter(_InitProducerIdRefusal())


@dataclass(frozen=True, slots=True)
class KafkaOptions:
    #: Use the idempotent producer where the broker supports it; False never asks.
    idempotence: bool = True
    request_timeout_ms: int = 5_000
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    rebalance_timeout_ms: int = 10_000
    partitions: int = 4
    replication_factor: int = 1
    #: How long a fetch may wait for data. tansu answers a fetch that found
    #: nothing only when this runs out, even if events arrived meanwhile, so on
    #: tansu it is added to an event's latency (half of it on average); Kafka
    #: answers as soon as data arrives, and then it only paces an idle consumer.
    fetch_max_wait_ms: int = 20
    #: The wait once fetches found nothing for ``IDLE_AFTER_SECONDS``: at 20 ms an
    #: idle consumer and tansu answering it cost about a quarter of a core
    #: together (docs/benchmarks.md); the first fetch with events ends it.
    fetch_idle_wait_ms: int = 200
    #: Most messages one fetch hands to the consumer: one inbox transaction.
    #: Less than a fetch brings holds up the next fetch until the rest is read.
    fetch_max_records: int = 500


class KafkaBroker(Broker):
    def __init__(self, url: str, options: KafkaOptions | None = None) -> None:
        self.bootstrap = url.split("://", 1)[1]
        self.options = options or KafkaOptions()
        self._producer: AIOKafkaProducer | None = None
        self._producer_lock = asyncio.Lock()
        #: Whether the producer is idempotent: None until a producer started.
        self.idempotent: bool | None = None if self.options.idempotence else False

    async def start(self) -> None:
        # Connections are made on first use, so a service starts (and answers
        # 503 on readiness) while the broker is down.
        pass

    async def stop(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                await producer.stop()  # flushes what is in flight
            except KafkaError as exc:
                logger.warning("producer did not stop cleanly: %s", exc)

    async def _ensure_producer(self) -> AIOKafkaProducer:
        async with self._producer_lock:
            if self._producer is None:
                if self.idempotent is not False:
                    try:
                        self._producer = await self._start_producer(idempotent=True)
                    except BrokerResponseError as exc:
                        # It answered, so it is there: it only lacks the feature.
                        logger.warning(
                            "Kafka at %s refused InitProducerId (%r): it has no idempotent "
                            "producer; publishing with a plain one (acks=all)",
                            self.bootstrap,
                            exc,
                        )
                        self.idempotent = False
                    else:
                        self.idempotent = True
                if self._producer is None:
                    self._producer = await self._start_producer(idempotent=False)
            return self._producer

    async def _start_producer(self, *, idempotent: bool) -> AIOKafkaProducer:
        """A started producer; BrokerResponseError when the broker refused what was asked."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=idempotent,
            request_timeout_ms=self.options.request_timeout_ms,
            linger_ms=1,
        )
        try:
            await asyncio.wait_for(producer.start(), self.options.request_timeout_ms / 1000)
        except BrokerResponseError as exc:
            await _quietly_stop(producer)
            if idempotent:
                raise
            raise BrokerUnavailable(f"Kafka at {self.bootstrap} answered with {exc!r}") from exc
        except (KafkaError, OSError, TimeoutError) as exc:
            await _quietly_stop(producer)
            raise BrokerUnavailable(f"cannot reach Kafka at {self.bootstrap}: {exc!r}") from exc
        return producer

    async def publish(self, messages: Sequence[OutgoingMessage]) -> list[BaseException | None]:
        """Queue each message, then wait for the acknowledgements.

        A message refused as it is queued (too large, a topic that does not
        exist) fails alone, and the others are sent. Once one cannot be queued
        because the broker is away, the rest are not queued either; those
        already queued are still awaited, so none is reported failed that was
        published, and none is published twice by the retry.
        """
        try:
            producer = await self._ensure_producer()
        except BrokerUnavailable as exc:
            return [exc for _ in messages]
        timeout = self.options.request_timeout_ms / 1000 * 2
        outcome: list[BaseException | None] = [None] * len(messages)
        queued: dict[int, asyncio.Future[object]] = {}
        unavailable: BrokerUnavailable | None = None
        for index, message in enumerate(messages):
            if unavailable is not None:
                outcome[index] = unavailable
                continue
            try:
                # A timeout scope, not wait_for: wait_for made a task of every
                # message, a cost paid per event at every rate.
                async with asyncio.timeout(timeout):
                    queued[index] = await producer.send(
                        message.topic,
                        value=message.value,
                        key=message.key.encode(),
                        headers=[(k, v.encode()) for k, v in message.headers.items()],
                    )
            except (KafkaError, TimeoutError) as exc:
                outcome[index] = failure = _classified(exc)
                if isinstance(failure, BrokerUnavailable):
                    unavailable = failure
        if queued:
            # One wait for all the acknowledgements (a batch is one or a few
            # requests to the broker), not a task per message.
            await asyncio.wait(queued.values(), timeout=timeout)
        for index, future in queued.items():
            if not future.done():
                future.cancel()
                outcome[index] = BrokerUnavailable("Kafka did not acknowledge in time")
            elif future.cancelled():
                outcome[index] = BrokerUnavailable("the send was cancelled")
            elif (error := future.exception()) is not None:
                outcome[index] = _classified(error)
        if any(isinstance(error, BrokerUnavailable) for error in outcome):
            await self._reset_producer()
        return outcome

    async def _reset_producer(self) -> None:
        """Drop a producer that failed, so the next publish reconnects."""
        async with self._producer_lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            await _quietly_stop(producer)

    async def ensure_topics(self, topics: Sequence[str]) -> None:
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.bootstrap, request_timeout_ms=self.options.request_timeout_ms
        )
        try:
            await asyncio.wait_for(admin.start(), self.options.request_timeout_ms / 1000)
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(topic, self.options.partitions, self.options.replication_factor)
                for topic in topics
                if topic not in existing
            ]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(missing)
        except BrokerResponseError as exc:
            raise BrokerUnavailable(
                f"Kafka at {self.bootstrap} refused to create topics: {exc!r}"
            ) from exc
        except (KafkaError, OSError, TimeoutError) as exc:
            raise BrokerUnavailable(
                f"cannot reach Kafka at {self.bootstrap} to create topics: {exc!r}"
            ) from exc
        finally:
            await _quietly_close(admin)

    def subscribe(self, group: str, topics: Sequence[str]) -> Subscription:
        return _KafkaSubscription(self, group, list(topics))

    async def ping(self) -> None:
        await self._ensure_producer()
        assert self._producer is not None
        try:
            await asyncio.wait_for(
                self._producer.client.fetch_all_metadata(), self.options.request_timeout_ms / 1000
            )
        except (KafkaError, OSError, TimeoutError) as exc:
            await self._reset_producer()
            raise BrokerUnavailable(f"Kafka at {self.bootstrap} does not answer") from exc


#: How long fetches must find nothing before a consumer waits longer for each.
IDLE_AFTER_SECONDS = 1.0
#: How long a stopping subscription waits for its consumer to leave the group: a
#: leave takes milliseconds unless a rebalance holds it, and a shutdown's grace
#: keeps only a share for the steps after the request drain.
LEAVE_WAIT_SECONDS = 1.0


class _KafkaSubscription(Subscription):
    def __init__(self, broker: KafkaBroker, group: str, topics: list[str]) -> None:
        self._broker = broker
        self._group = group
        self._topics = topics
        self._consumer: AIOKafkaConsumer | None = None
        self._joined = False
        self._last_records = time.monotonic()
        self._idle = False

    async def start(self) -> None:
        options = self._broker.options
        consumer = AIOKafkaConsumer(
            *self._topics,
            bootstrap_servers=self._broker.bootstrap,
            group_id=self._group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=options.session_timeout_ms,
            heartbeat_interval_ms=options.heartbeat_interval_ms,
            rebalance_timeout_ms=options.rebalance_timeout_ms,
            fetch_max_wait_ms=options.fetch_max_wait_ms,
            request_timeout_ms=max(options.request_timeout_ms, options.session_timeout_ms + 1000),
        )
        # Held before it has joined: a start cancelled mid-join (a shutdown) is
        # closed by stop() like a joined one.
        self._consumer, self._joined = consumer, False
        try:
            await asyncio.wait_for(consumer.start(), options.request_timeout_ms / 1000 * 3)
        except (KafkaError, OSError, TimeoutError) as exc:
            # Closed in the background: mid-rebalance the close waits for the
            # join, and this start may be cancelled meanwhile (a shutdown).
            self._consumer = None
            _close_in_background(consumer, self._group)
            raise BrokerUnavailable(f"cannot join group {self._group}") from exc
        self._joined = True
        # A new member reads from its group's committed offsets: a backlog, maybe.
        self._last_records, self._idle = time.monotonic(), False

    async def stop(self) -> None:
        """Leave the group, waiting at most :data:`LEAVE_WAIT_SECONDS` for it (not at
        all for a consumer that never finished joining).

        Asked mid-rebalance, aiokafka first finishes the join it is in, and a
        broker may hold that for its rebalance timeout (tansu held one past a
        service's whole shutdown grace). The leave then goes on by itself: the
        loop's end cancels it at a process exit, and a member that never said
        goodbye is expired by the broker after its session timeout. Nothing is
        lost either way: offsets were committed before, and an event delivered
        again is recognised by the inbox.
        """
        if self._consumer is None:
            return
        consumer, self._consumer = self._consumer, None
        leaving = _close_in_background(consumer, self._group)
        if not self._joined:
            return
        done, _ = await asyncio.wait([leaving], timeout=LEAVE_WAIT_SECONDS)
        if not done:
            logger.warning(
                "consumer of group %s still leaving after %.0fs (a rebalance in progress?); "
                "not waiting for it",
                self._group,
                LEAVE_WAIT_SECONDS,
            )

    async def fetch(self, timeout: float) -> list[IncomingMessage]:
        assert self._consumer is not None, "subscription not started"
        try:
            batches = await self._consumer.getmany(
                timeout_ms=int(timeout * 1000), max_records=self._broker.options.fetch_max_records
            )
        except KafkaError as exc:
            raise BrokerUnavailable(f"fetch failed: {exc!r}") from exc
        self._pace(self._consumer, bool(batches))
        messages: list[IncomingMessage] = []
        for records in batches.values():
            messages.extend(
                received(
                    record.topic,
                    record.key,
                    record.value,
                    record.headers,
                    record.partition,
                    record.offset,
                )
                for record in records
            )
        return messages

    def _pace(self, consumer: AIOKafkaConsumer, received: bool) -> None:
        """The short fetch wait while events come, the long one once none came for a while.

        aiokafka takes the wait only when the consumer is made, so it is changed
        on its fetcher, which reads it for every fetch it sends (the attribute
        is pinned by uv.lock; tests/events/test_fetch_pacing.py counts the fetches).
        """
        now = time.monotonic()
        if received:
            self._last_records = now
        idle = now - self._last_records >= IDLE_AFTER_SECONDS
        if idle == self._idle:
            return
        self._idle = idle
        options = self._broker.options
        busy = options.fetch_max_wait_ms
        if consumer._fetcher is not None:
            consumer._fetcher._fetch_max_wait_ms = (
                max(busy, options.fetch_idle_wait_ms) if idle else busy
            )

    @property
    def fetch_wait_ms(self) -> int | None:
        """The wait the consumer's fetches now ask for (None before it started)."""
        fetcher = self._consumer._fetcher if self._consumer is not None else None
        return int(fetcher._fetch_max_wait_ms) if fetcher is not None else None

    async def commit(self, messages: Sequence[IncomingMessage]) -> None:
        assert self._consumer is not None, "subscription not started"
        offsets: dict[TopicPartition, int] = {}
        for message in messages:
            partition = TopicPartition(message.topic, message.partition)
            offsets[partition] = max(offsets.get(partition, 0), message.offset + 1)
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            # The group rebalanced meanwhile; the messages come again and the
            # inbox makes the second delivery a no-op.
            logger.warning("offset commit failed for %s: %r", sorted(offsets), exc)


def _classified(exc: BaseException) -> BaseException:
    """A send's failure as the port reports it: the message refused, or the broker away."""
    if isinstance(exc, UnknownTopicOrPartitionError):
        return UnknownTopic(f"Kafka has no topic for it: {exc!r}")
    if isinstance(exc, BrokerResponseError) and not exc.retriable:
        return MessageRejected(f"Kafka refused the message: {exc!r}")
    return BrokerUnavailable(f"Kafka did not acknowledge: {exc!r}")


def _close_in_background(consumer: AIOKafkaConsumer, group: str) -> asyncio.Task[None]:
    """Stop ``consumer`` (leaving ``group``) in a task of its own."""
    return left_running(_quietly_stop(consumer), f"leave {group}")


async def _quietly_stop(client: AIOKafkaProducer | AIOKafkaConsumer) -> None:
    try:
        await client.stop()
    except Exception as exc:
        logger.debug("ignoring error while stopping a Kafka client: %r", exc)


async def _quietly_close(admin: AIOKafkaAdminClient) -> None:
    try:
        await admin.close()
    except Exception as exc:
        logger.debug("ignoring error while closing the Kafka admin client: %r", exc)
