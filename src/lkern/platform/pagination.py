"""The one list contract of §2: skip/limit, search, sort enum, stable order, envelope."""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from lkern.platform.enums import SortOrder

T = TypeVar("T")
DEFAULT_LIMIT = 100
DEFAULT_MAX_LIMIT = 1000
# Far beyond any real offset, and small enough for every database integer type.
MAX_SKIP = 2**31 - 1


class Page(BaseModel, Generic[T]):
    items: list[T] = Field(description="The page of results.")
    total: int = Field(description="Number of matching items over all pages.", examples=[42])
    skip: int = Field(description="Items skipped before this page.", examples=[0])
    limit: int = Field(description="Page size asked for.", examples=[100])
    has_more: bool = Field(description="Whether items follow this page.", examples=[False])


@dataclass(frozen=True, slots=True)
class ListQuery:
    skip: int
    limit: int
    search: str | None
    sort_by: str
    sort_order: SortOrder
    include_deleted: bool


def list_query(
    sort_fields: type[StrEnum],
    default_sort: StrEnum,
    *,
    max_limit: int = DEFAULT_MAX_LIMIT,
    searchable: str = "the resource's text fields",
) -> Callable[..., Awaitable[ListQuery]]:
    """A FastAPI dependency with the resource's own sort enum and bounds in OpenAPI."""

    async def dependency(
        skip: Annotated[int, Query(ge=0, le=MAX_SKIP, description="Items to skip.")] = 0,
        limit: Annotated[
            int, Query(ge=1, le=max_limit, description=f"Page size, 1 to {max_limit}.")
        ] = min(DEFAULT_LIMIT, max_limit),
        search: Annotated[
            str | None,
            Query(
                min_length=2,
                max_length=200,
                description=f"Case-insensitive text search over {searchable}.",
            ),
        ] = None,
        sort_by: Annotated[sort_fields, Query(description="Field to sort by.")] = default_sort,  # type: ignore[valid-type]
        sort_order: Annotated[SortOrder, Query(description="Sort direction.")] = SortOrder.ASC,
        include_deleted: Annotated[bool, Query(description="Include soft-deleted items.")] = False,
    ) -> ListQuery:
        return ListQuery(skip, limit, search, str(sort_by), sort_order, include_deleted)

    return dependency


def like_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, with wildcards in it taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search_clause(
    text: str, columns: Sequence[ColumnElement[Any] | InstrumentedAttribute[Any]]
) -> ColumnElement[bool]:
    pattern = like_pattern(text)
    return or_(*(column.ilike(pattern, escape="\\") for column in columns))


async def paginate(
    session: AsyncSession,
    stmt: Select[Any],
    query: ListQuery,
    *,
    sort_columns: Mapping[str, InstrumentedAttribute[Any]],
    tie_breaker: InstrumentedAttribute[Any],
    rows: bool = False,
) -> tuple[list[Any], int]:
    """Count and fetch one page; ties are broken by id so pages never overlap.

    Items are the first column of each row, or whole rows with ``rows``.
    """
    total = (await session.execute(select(func.count()).select_from(stmt.subquery()))).scalar_one()
    column = sort_columns[query.sort_by]
    if query.sort_order is SortOrder.DESC:
        ordered = stmt.order_by(column.desc(), tie_breaker.desc())
    else:
        ordered = stmt.order_by(column.asc(), tie_breaker.asc())
    page = ordered.offset(query.skip).limit(query.limit)
    if rows:
        return [tuple(row) for row in (await session.execute(page)).all()], int(total)
    return list((await session.scalars(page)).all()), int(total)


def page_of(items: Sequence[T], total: int, query: ListQuery) -> Page[T]:
    return Page[T](
        items=list(items),
        total=total,
        skip=query.skip,
        limit=query.limit,
        has_more=query.skip + len(items) < total,
    )


@dataclass(frozen=True, slots=True)
class PageParams:
    skip: int
    limit: int


async def page_params(
    skip: Annotated[int, Query(ge=0, le=MAX_SKIP, description="Items to skip.")] = 0,
    limit: Annotated[
        int, Query(ge=1, le=DEFAULT_MAX_LIMIT, description=f"Page size, 1 to {DEFAULT_MAX_LIMIT}.")
    ] = DEFAULT_LIMIT,
) -> PageParams:
    """Paging alone, for lists that have no search or sort choice (admin logs)."""
    return PageParams(skip, limit)


async def newest_first(
    session: AsyncSession,
    stmt: Select[Any],
    params: PageParams,
    *,
    moment: InstrumentedAttribute[Any],
    tie_breaker: InstrumentedAttribute[Any],
    read: Callable[[Any], T],
) -> Page[T]:
    """One page of a log-like list, newest first."""
    query = ListQuery(params.skip, params.limit, None, "moment", SortOrder.DESC, False)
    rows, total = await paginate(
        session, stmt, query, sort_columns={"moment": moment}, tie_breaker=tie_breaker
    )
    return page_of([read(row) for row in rows], total, query)
