"""Prometheus metrics, one registry per service so ``lkern run`` keeps them apart."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class ServiceMetrics:
    def __init__(self, service: str, version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._gauges: dict[str, Gauge] = {}
        self._refreshing: asyncio.Future[None] | None = None
        self._refreshed_at = float("-inf")
        self._counters: dict[str, Counter] = {}
        r = self.registry
        # The pid tells apart the workers of ``lkern serve --workers N``: a scrape
        # through their shared port reaches one of them.
        Gauge(
            "lkern_service_info", "This service.", ["service", "version", "pid"], registry=r
        ).labels(service, version, str(os.getpid())).set(1)
        self.http_requests = Counter(
            "lkern_http_requests",
            "HTTP requests answered.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "lkern_http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "lkern_outbox_backlog", "Committed events not yet published.", registry=r
        )
        self.outbox_oldest_age = Gauge(
            "lkern_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest unpublished event (0 when none).",
            registry=r,
        )
        self.outbox_published = Counter(
            "lkern_outbox_published", "Events published by the relay.", registry=r
        )
        self.outbox_publish_lag = Histogram(
            "lkern_outbox_publish_lag_seconds",
            "From commit to broker acknowledgement.",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.consumer_events = Counter(
            "lkern_consumer_events",
            "Events consumed, by outcome: processed, duplicate, failed (an attempt), "
            "dead_lettered, ignored.",
            ["topic", "outcome"],
            registry=r,
        )
        self.consumer_lag = Histogram(
            "lkern_consumer_handling_lag_seconds",
            "From the event's time to its handling being committed.",
            ["topic"],
            buckets=LAG_BUCKETS,
            registry=r,
        )

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        """A service's own gauge, created on first use (for ``collect_metrics`` hooks)."""
        if name not in self._gauges:
            self._gauges[name] = Gauge(name, documentation, list(labels), registry=self.registry)
        return self._gauges[name]

    async def refresh_gauges(
        self, refresh: Callable[[], Awaitable[None]], *, max_age_seconds: float
    ) -> None:
        """Run ``refresh`` unless a run ended less than ``max_age_seconds`` ago.

        Callers that come while a run is in flight wait for that one: however
        many scrapes arrive at once, the gauges' queries run once and hold one
        connection. A caller that gives up does not cancel the run.
        """
        if self._refreshing is None:
            loop = asyncio.get_running_loop()
            if loop.time() - self._refreshed_at < max_age_seconds:
                return
            self._refreshing = asyncio.ensure_future(self._refresh(refresh))
        await asyncio.shield(self._refreshing)

    async def _refresh(self, refresh: Callable[[], Awaitable[None]]) -> None:
        try:
            await refresh()
        finally:
            self._refreshed_at = asyncio.get_running_loop().time()
            self._refreshing = None

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        """A service's own counter, created on first use (events a service counts as they
        happen, which no query could count cheaply)."""
        if name not in self._counters:
            self._counters[name] = Counter(
                name, documentation, list(labels), registry=self.registry
            )
        return self._counters[name]

    def watch_pool(self, engine: AsyncEngine) -> None:
        self.registry.register(_PoolCollector(engine))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _PoolCollector(Collector):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def collect(self) -> Iterable[Metric]:
        pool = self._engine.sync_engine.pool
        if not isinstance(pool, QueuePool):
            return
        in_use = GaugeMetricFamily("lkern_db_pool_in_use", "Connections checked out.")
        in_use.add_metric([], pool.checkedout())
        idle = GaugeMetricFamily("lkern_db_pool_idle", "Connections idle in the pool.")
        idle.add_metric([], pool.checkedin())
        size = GaugeMetricFamily("lkern_db_pool_size", "Configured pool size.")
        size.add_metric([], pool.size())
        overflow = GaugeMetricFamily("lkern_db_pool_overflow", "Connections beyond the pool size.")
        overflow.add_metric([], max(pool.overflow(), 0))
        yield from (in_use, idle, size, overflow)
