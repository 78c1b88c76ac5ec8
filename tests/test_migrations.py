"""Each service's migrations: up to head, down to base, up again, in step with the models."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from lkern.platform.migrations import downgrade, for_dialect, upgrade, version_table
from lkern.services import SERVICES
from tests.conftest import new_database_url, settings_for


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def _differences(url: str, service: str) -> list[object]:
    definition = SERVICES[service]
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:

            def compare(sync_connection):
                context = MigrationContext.configure(
                    sync_connection,
                    opts={
                        "compare_type": True,
                        "version_table": version_table(definition),
                        "include_object": for_dialect(sync_connection.dialect.name),
                    },
                )
                return compare_metadata(context, definition.all_metadata)  # type: ignore[arg-type]

            return list(await connection.run_sync(compare))
    finally:
        await engine.dispose()


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_upgrade_downgrade_upgrade(request, backend, tmp_path: Path, service: str):
    url = new_database_url(request, backend, tmp_path)
    settings = settings_for(tmp_path, url)
    definition = SERVICES[service]
    # Alembic drives its own event loop, so it runs in a worker thread here as in the app.
    await asyncio.to_thread(upgrade, definition, settings)
    tables = await _tables(url)
    assert {t.name for m in definition.all_metadata for t in m.sorted_tables} <= tables
    assert await _differences(url, service) == [], "models and migrations disagree"

    await asyncio.to_thread(downgrade, definition, settings, "base")
    assert await _tables(url) <= {version_table(definition)}

    await asyncio.to_thread(upgrade, definition, settings)
    assert await _differences(url, service) == []
