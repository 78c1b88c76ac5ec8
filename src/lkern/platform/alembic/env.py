"""The Alembic environment every service's migrations run in (async engines)."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from lkern.platform.db import Money, UTCDateTime
from lkern.platform.migrations import for_dialect, version_table

config = context.config
definition = config.attributes["definition"]
database_url: str = config.attributes["database_url"]


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Write platform column types as plain SQLAlchemy ones, so revisions never import them."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, Money):
        return "sa.BigInteger()"  # cents
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=definition.all_metadata,
        version_table=version_table(definition),
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        render_item=_render_item,
        include_object=for_dialect(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run() -> None:
    engine = create_async_engine(database_url, poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                # Replicas starting together migrate one after the other; the
                # later ones then find the schema at head and do nothing.
                await connection.execute(
                    text("SELECT pg_advisory_lock(hashtext(:name))"),
                    {"name": f"lkern-migrate-{definition.name}"},
                )
                await connection.commit()
            await connection.run_sync(_configure)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=database_url,
        target_metadata=definition.all_metadata,
        version_table=version_table(definition),
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run())
