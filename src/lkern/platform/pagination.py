"""The one list contract of §2: skip/limit, search, sort enum, stable order, envelope."""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Select, func, literal_column, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from lkern.platform.enums import SortOrder

T = TypeVar("T")
U = TypeVar("U")
DEFAULT_LIMIT = 100
DEFAULT_MAX_LIMIT = 1000
# Far beyond any real offset, and small enough for every database integer type.
MAX_SKIP = 2**31 - 1
#: ``total`` counts matches up to here and then stops, saying so with
#: ``total_exact`` (§2): a broad search of a large table costs a bounded count.
TOTAL_CAP = 10_000


class Page(BaseModel, Generic[T]):
    items: list[T] = Field(description="The page of results.")
    total: int = Field(
        description=f"Number of matching items over all pages, counted up to {TOTAL_CAP:,}.",
        examples=[42],
    )
    total_exact: bool = Field(
        description=f"False when more than {TOTAL_CAP:,} items match and `total` stops there.",
        examples=[True],
    )
    skip: int = Field(description="Items skipped before this page.", examples=[0])
    limit: int = Field(description="Page size asked for.", examples=[100])
    has_more: bool = Field(
        description="Whether items follow this page (exact, however many match).",
        examples=[False],
    )


@dataclass(frozen=True, slots=True)
class Slice(Generic[T]):
    """One page of domain items, and what is known of the matches around it."""

    items: list[T]
    total: int
    total_exact: bool
    skip: int
    limit: int
    has_more: bool

    def map(self, convert: Callable[[T], U]) -> "Slice[U]":
        """The same slice, each item converted."""
        return Slice(
            items=[convert(item) for item in self.items],
            total=self.total,
            total_exact=self.total_exact,
            skip=self.skip,
            limit=self.limit,
            has_more=self.has_more,
        )

    def page(self, read: Callable[[T], U]) -> Page[U]:
        """The page as the API answers it, each item shown by ``read``."""
        return Page[U].model_validate(self.map(read), from_attributes=True)


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


def sort_columns(fields: type[StrEnum], model: type[Any]) -> dict[str, InstrumentedAttribute[Any]]:
    """The column of ``model`` each member of a sort enum names (they are named alike)."""
    return {field.value: getattr(model, field.value) for field in fields}


async def count_bounded(session: AsyncSession, stmt: Select[Any]) -> tuple[int, bool]:
    """How many rows ``stmt`` selects, counted no further than :data:`TOTAL_CAP`,
    and whether that is the exact number."""
    cap = TOTAL_CAP
    # The cap is written into the SQL, not bound: PostgreSQL plans a prepared
    # statement generically after five runs, and a LIMIT it cannot see is
    # assumed to keep a tenth of the rows, so a seq scan that "stops early"
    # wins over the search's indexes and then reads the whole table (18 ms
    # instead of 0.6 ms at 10k contacts, docs/benchmarks.md).
    bounded = stmt.limit(literal_column(str(cap + 1))).subquery()
    counted = int((await session.execute(select(func.count()).select_from(bounded))).scalar_one())
    return min(counted, cap), counted <= cap


async def paginate(
    session: AsyncSession,
    stmt: Select[Any],
    query: ListQuery,
    *,
    sort_columns: Mapping[str, InstrumentedAttribute[Any]],
    tie_breaker: InstrumentedAttribute[Any],
    rows: bool = False,
) -> Slice[Any]:
    """Count and fetch one page; ties are broken by id so pages never overlap.

    Items are the first column of each row, or whole rows with ``rows``. The
    page is fetched one row long, so ``has_more`` is exact even when the
    count stopped at :data:`TOTAL_CAP`.
    """
    total, total_exact = await count_bounded(session, stmt)
    column = sort_columns[query.sort_by]
    if query.sort_order is SortOrder.DESC:
        ordered = stmt.order_by(column.desc(), tie_breaker.desc())
    else:
        ordered = stmt.order_by(column.asc(), tie_breaker.asc())
    page = ordered.offset(query.skip).limit(query.limit + 1)
    items: list[Any]
    if rows:
        items = [tuple(row) for row in (await session.execute(page)).all()]
    else:
        items = list((await session.scalars(page)).all())
    has_more = len(items) > query.limit
    return Slice(
        items=items[: query.limit],
        total=total,
        total_exact=total_exact,
        skip=query.skip,
        limit=query.limit,
        has_more=has_more,
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
    found = await paginate(
        session, stmt, query, sort_columns={"moment": moment}, tie_breaker=tie_breaker
    )
    return found.page(read)
