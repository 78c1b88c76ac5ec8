"""The one list contract of §2: skip/limit, search, sort enum, stable order, envelope."""

from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    Select,
    bindparam,
    func,
    literal_column,
    or_,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from lkern.platform.enums import SortOrder
from lkern.platform.reads import Row

if TYPE_CHECKING:
    from lkern.platform.uow import UnitOfWork

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


#: The bound parameter :func:`search_clause` uses for a statement built once: its value
#: is ``like_pattern(query.search)``.
SEARCH = "search_pattern"


def search_clause(
    text: str | BindParameter[str],
    columns: Sequence[ColumnElement[Any] | InstrumentedAttribute[Any]],
) -> ColumnElement[bool]:
    """Any of ``columns`` holding ``text``, case-insensitively; or holding the pattern
    bound to ``text`` (``bindparam(SEARCH)``) in a statement built once for many values."""
    pattern = text if isinstance(text, BindParameter) else like_pattern(text)
    return or_(*(column.ilike(pattern, escape="\\") for column in columns))


def sort_columns(fields: type[StrEnum], model: type[Any]) -> dict[str, InstrumentedAttribute[Any]]:
    """The column of ``model`` each member of a sort enum names (they are named alike)."""
    return {field.value: getattr(model, field.value) for field in fields}


def _count_bounded_stmt(stmt: Select[Any]) -> Select[Any]:
    # The cap is written into the SQL, not bound: PostgreSQL plans a prepared
    # statement generically after five runs, and a LIMIT it cannot see is
    # assumed to keep a tenth of the rows, so a seq scan that "stops early"
    # wins over the search's indexes and then reads the whole table (18 ms
    # instead of 0.6 ms at 10k contacts, docs/benchmarks.md).
    bounded = stmt.limit(literal_column(str(TOTAL_CAP + 1))).subquery()
    return select(func.count().label("count")).select_from(bounded)


def _bounded(counted: int) -> tuple[int, bool]:
    return min(counted, TOTAL_CAP), counted <= TOTAL_CAP


async def count_bounded(session: AsyncSession, stmt: Select[Any]) -> tuple[int, bool]:
    """How many rows ``stmt`` selects, counted no further than :data:`TOTAL_CAP`,
    and whether that is the exact number."""
    return _bounded(int((await session.execute(_count_bounded_stmt(stmt))).scalar_one()))


def _ordered(
    stmt: Select[Any],
    query: ListQuery,
    sort_columns: Mapping[str, ColumnElement[Any] | InstrumentedAttribute[Any]],
    tie_breaker: ColumnElement[Any] | InstrumentedAttribute[Any],
) -> Select[Any]:
    column = sort_columns[query.sort_by]
    if query.sort_order is SortOrder.DESC:
        return stmt.order_by(column.desc(), tie_breaker.desc())
    return stmt.order_by(column.asc(), tie_breaker.asc())


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
    page = _ordered(stmt, query, sort_columns, tie_breaker).offset(query.skip)
    page = page.limit(query.limit + 1)
    items: list[Any]
    if rows:
        items = [tuple(row) for row in (await session.execute(page)).all()]
    else:
        items = list((await session.scalars(page)).all())
    return _slice(items, total, total_exact, query)


def _slice(items: list[T], total: int, total_exact: bool, query: ListQuery) -> Slice[T]:
    return Slice(
        items=items[: query.limit],
        total=total,
        total_exact=total_exact,
        skip=query.skip,
        limit=query.limit,
        has_more=len(items) > query.limit,
    )


@dataclass(frozen=True, slots=True)
class _PageStatements:
    count: Select[Any]
    page: Select[Any]


class RowPages(Generic[T]):
    """A list answered from rows below the ORM: :func:`paginate`'s contract (the
    bounded count, the page one row long, ties broken by the tie-breaker) for a use
    case that only shows its items.

    Composing a statement costs more than running one compiled before (and a
    page of ORM entities far more than its rows, docs/benchmarks.md), so the
    count and page statements are built once per *shape* of a list and sort:
    ``build(*shape)`` selects the rows, a filter's presence in the shape and its
    value bound by name (given in ``params``); the search's pattern is bound as
    :data:`SEARCH`. The reads run in one transaction below the ORM
    (``uow.direct()``), so count and page agree; ``item`` makes each row what the
    use case returns.
    """

    def __init__(
        self,
        build: Callable[..., Select[Any]],
        *,
        sort_columns: Mapping[str, ColumnElement[Any] | InstrumentedAttribute[Any]],
        tie_breaker: ColumnElement[Any] | InstrumentedAttribute[Any],
        item: Callable[[Row], T],
    ) -> None:
        self._build = build
        self._sort_columns = sort_columns
        self._tie_breaker = tie_breaker
        self._item = item
        self._built: dict[Hashable, _PageStatements] = {}

    def _statements(self, query: ListQuery, shape: tuple[Hashable, ...]) -> _PageStatements:
        key = (shape, query.sort_by, query.sort_order)
        found = self._built.get(key)
        if found is None:
            stmt = self._build(*shape)
            page = _ordered(stmt, query, self._sort_columns, self._tie_breaker)
            page = page.offset(bindparam("page_skip", type_=Integer))
            found = self._built[key] = _PageStatements(
                count=_count_bounded_stmt(stmt),
                page=page.limit(bindparam("page_limit", type_=Integer)),
            )
        return found

    async def fetch(
        self,
        uow: "UnitOfWork",
        query: ListQuery,
        shape: tuple[Hashable, ...],
        params: Mapping[str, Any] | None = None,
    ) -> Slice[T]:
        """Count and fetch one page in ``uow``'s transaction (``async with uow.direct():``),
        for a use case that reads more in it. The search's pattern is
        ``like_pattern(query.search)`` unless ``params`` has its own under :data:`SEARCH`."""
        statements = self._statements(query, shape)
        values = dict(params or {})
        if query.search and SEARCH not in values:
            values[SEARCH] = like_pattern(query.search)
        (counted,) = await uow.rows(statements.count, **values)
        total, total_exact = _bounded(int(counted["count"]))
        values["page_skip"] = query.skip
        values["page_limit"] = query.limit + 1
        rows = await uow.rows(statements.page, **values)
        return _slice([self._item(row) for row in rows], total, total_exact, query)

    async def read(
        self,
        uow: "UnitOfWork",
        query: ListQuery,
        shape: tuple[Hashable, ...],
        params: Mapping[str, Any] | None = None,
    ) -> Slice[T]:
        """:meth:`fetch` in a transaction of its own, below the ORM."""
        async with uow.direct():
            return await self.fetch(uow, query, shape, params)


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
