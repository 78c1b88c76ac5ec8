"""Human-readable codes ``PREFIX-YYMM-NNNN`` (e.g. ``BUG-2512-0001``).

The sequence is a counter row bumped with one atomic upsert in the caller's
transaction: concurrent creators queue on the row lock, so codes are distinct,
and a rolled-back create rolls its number back too, so there are no gaps.
``SELECT MAX()`` would be neither.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import Insert
from sqlalchemy.ext.asyncio import AsyncSession

from lkern.platform.db import conflict_insert, utcnow
from lkern.platform.models import CodeCounter

_PREFIX = re.compile(r"^[A-Z]{2,4}$")
CODE_PATTERN = re.compile(r"^([A-Z]{2,4})-(\d{4})-(\d{4,})$")


def format_code(prefix: str, period: str, number: int) -> str:
    return f"{prefix}-{period}-{number:04d}"


def period_of(moment: datetime) -> str:
    return moment.strftime("%y%m")


async def next_code(session: AsyncSession, prefix: str, *, at: datetime | None = None) -> str:
    """Reserve the next code for ``prefix`` in the month of ``at`` (UTC now by default)."""
    if not _PREFIX.match(prefix):
        raise ValueError(f"code prefix must be 2-4 capital letters, got {prefix!r}")
    period = period_of(at or utcnow())
    stmt = conflict_insert(CodeCounter, session.get_bind().dialect.name).values(
        prefix=prefix, period=period, value=1
    )
    upsert: Insert = stmt.on_conflict_do_update(
        index_elements=[CodeCounter.prefix, CodeCounter.period],
        set_={"value": CodeCounter.value + 1},
    ).returning(CodeCounter.value)
    number = (await session.execute(upsert)).scalar_one()
    return format_code(prefix, period, number)
