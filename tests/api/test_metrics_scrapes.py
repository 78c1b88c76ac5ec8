"""/metrics stays cheap: the gauges it reads from the database are refreshed once for
all scrapes that come together, and reused for a few seconds."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import event

from tests.conftest import client_of
from tests.support.tokens import bearer


class TestCheapMetrics:
    async def test_concurrent_scrapes_share_one_refresh_and_business_goes_on(self, service_app):
        async with service_app(metrics_refresh_seconds=5) as app, client_of(app, **bearer()) as c:
            await c.post("/api/v1/contacts", json={"name": "Ada", "email": "ada@example.com"})
            counts: list[str] = []

            def count_statements(_conn, _cursor, statement, *_args) -> None:
                if "count(" in statement.lower():
                    counts.append(statement)

            engine = app.state.runtime.engine.sync_engine
            event.listen(engine, "before_cursor_execute", count_statements)
            try:
                scrapes = [asyncio.create_task(c.get("/metrics")) for _ in range(200)]
                await asyncio.sleep(0)
                started = time.perf_counter()
                business = await c.get("/api/v1/contacts")
                business_took = time.perf_counter() - started
                answers = await asyncio.gather(*scrapes)
            finally:
                event.remove(engine, "before_cursor_execute", count_statements)
        assert business.status_code == 200 and business.json()["total"] == 1
        assert [answer.status_code for answer in answers] == [200] * 200
        assert all('lkern_contacts{state="active"} 1.0' in a.text for a in answers)
        # One backlog count of the outbox and one count of contacts by state, for
        # all 200 (the list's own total is the business request's).
        assert len([s for s in counts if "outbox" in s]) == 1, counts
        assert len([s for s in counts if "GROUP BY" in s]) == 1, counts
        assert business_took < 1.0, business_took
        print(f"business request among 200 scrapes: {business_took * 1000:.0f} ms")

    async def test_gauges_are_refreshed_once_they_are_older_than_configured(self, service_app):
        async with service_app(metrics_refresh_seconds=0.2) as app, client_of(app, **bearer()) as c:
            assert 'lkern_contacts{state="active"} 0.0' in (await c.get("/metrics")).text
            await c.post("/api/v1/contacts", json={"name": "Ada", "email": "ada@example.com"})
            assert 'lkern_contacts{state="active"} 0.0' in (await c.get("/metrics")).text
            await asyncio.sleep(0.25)
            assert 'lkern_contacts{state="active"} 1.0' in (await c.get("/metrics")).text
