"""Trigram indexes: what makes a list's ``search`` (ILIKE '%text%', §2) read only the
matching rows on PostgreSQL instead of the whole table.

Declared once per searched column, in the model (so autogenerate and the
migration test know them) and in the revision that creates them; SQLite has
no such index and scans, which at its sizes is fine.
"""

from __future__ import annotations

from collections.abc import Iterable

from alembic import op
from sqlalchemy import Index


def index_name(table: str, column: str) -> str:
    return f"ix_{table}_{column}_trgm"


def trigram_indexes(table: str, columns: Iterable[str]) -> tuple[Index, ...]:
    """For a model's ``__table_args__``: a GIN trigram index per column, PostgreSQL only."""
    return tuple(
        Index(
            index_name(table, column),
            column,
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        ).ddl_if(dialect="postgresql")
        for column in columns
    )


def create_trigram_indexes(table: str, columns: Iterable[str]) -> None:
    """In a revision's ``upgrade``: the indexes of :func:`trigram_indexes` (PostgreSQL)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    # Trusted since PostgreSQL 13: the database's owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in columns:
        op.create_index(
            index_name(table, column),
            table,
            [column],
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
        )


def drop_trigram_indexes(table: str, columns: Iterable[str]) -> None:
    """In a revision's ``downgrade``: the indexes :func:`create_trigram_indexes` made."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for column in columns:
        op.drop_index(index_name(table, column), table_name=table)
