"""Each revision of the service goes up, down and up again, and head matches the models.

Run for real on a throw-away SQLite database, one revision at a time, so a
broken downgrade is named by its own revision file.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import Connection

from lkern.conformance.subject import Subject, Violation
from lkern.platform.db import platform_table_names
from lkern.platform.migrations import (
    alembic_config,
    downgrade,
    for_dialect,
    unmapped_tables,
    upgrade,
    version_table,
)

DOWNGRADE = "MIGRATION-DOWNGRADE"
DRIFT = "MIGRATION-DRIFT"

#: The throw-away database, in the check's scratch folder.
DATABASE = "migrations.db"

Schema = dict[str, tuple[frozenset[str], frozenset[str]]]


def _function_line(path: Path, name: str) -> int:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node.lineno
    return 1


def _own_revisions(subject: Subject) -> list[Script]:
    """The service's revisions, base first."""
    config = alembic_config(subject.definition, subject.settings(DATABASE))
    history = ScriptDirectory.from_config(config)
    folder = subject.definition.migrations_dir.resolve()
    own = [rev for rev in history.walk_revisions() if Path(rev.path).parent.resolve() == folder]
    return list(reversed(own))


@contextmanager
def _connected(subject: Subject) -> Iterator[Connection]:
    """The throw-away database, read without the service's async driver."""
    engine = create_engine(f"sqlite:///{subject.scratch / DATABASE}")
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def _schema(subject: Subject) -> Schema:
    """The service's own tables (not the platform's), each with its columns and indexes."""
    skipped = platform_table_names() | {version_table(subject.definition)}
    with _connected(subject) as connection:
        inspector = inspect(connection)
        return {
            name: (
                frozenset(c["name"] for c in inspector.get_columns(name)),
                frozenset(str(i["name"]) for i in inspector.get_indexes(name)),
            )
            for name in inspector.get_table_names()
            if name not in skipped
        }


def _difference(before: Schema, after: Schema) -> str:
    changes = [f"table {name} left behind" for name in sorted(after.keys() - before.keys())]
    changes += [f"table {name} not restored" for name in sorted(before.keys() - after.keys())]
    for name in sorted(before.keys() & after.keys()):
        if before[name] != after[name]:
            changes.append(f"table {name} changed")
    return ", ".join(changes)


def check_migrations(subject: Subject) -> Iterator[Violation]:
    definition = subject.definition
    # A service without revisions goes on to the comparison, which names its tables.
    for rev in _own_revisions(subject):
        failure = _round_trip(subject, rev, _schema(subject))
        if failure is not None:
            yield failure
            return  # the revisions above it cannot be tried on a broken database
    upgrade(definition, subject.settings(DATABASE))  # the platform branches too, to heads
    with _connected(subject) as connection:
        differences = _compare(connection, subject)
    for difference in differences:
        table = _table_of(difference)
        path, line = _model_location(subject, table)
        yield Violation(
            path,
            line,
            DRIFT,
            f"the models and the migrations' head differ ({_describe(difference)}): "
            f"write a revision (lkern make-migration {definition.name} MESSAGE)",
        )


def _round_trip(subject: Subject, rev: Script, before: Schema) -> Violation | None:
    """Up to ``rev``, down below it, up again: what goes wrong first, if anything."""
    definition = subject.definition
    settings = subject.settings(DATABASE)
    path = Path(rev.path)
    below = rev.down_revision if rev.down_revision else f"{definition.name}@base"

    def failed(function: str, what: str) -> Violation:
        return Violation(
            path, _function_line(path, function), DOWNGRADE, f"revision {rev.revision}: {what}"
        )

    step = "upgrade"
    try:
        upgrade(definition, settings, rev.revision)
        up = _schema(subject)
        step = "downgrade"
        downgrade(definition, settings, str(below))
        down = _schema(subject)
        if down != before:
            return failed(
                "downgrade", f"downgrade does not undo its upgrade ({_difference(before, down)})"
            )
        step = "upgrade after its downgrade"
        upgrade(definition, settings, rev.revision)
        again = _schema(subject)
    except Exception as exc:
        return failed(
            "downgrade" if step == "downgrade" else "upgrade", f"{step} fails: {exc!r:.300}"
        )
    if again != up:
        return failed(
            "upgrade",
            f"upgrading again after the downgrade gives another schema ({_difference(up, again)})",
        )
    return None


def _compare(connection: Connection, subject: Subject) -> list[Any]:
    definition = subject.definition
    context = MigrationContext.configure(
        connection,
        opts={
            "compare_type": True,
            "version_table": version_table(definition),
            "include_object": for_dialect(
                connection.dialect.name, unmapped_tables(definition.all_metadata)
            ),
        },
    )
    return list(compare_metadata(context, definition.all_metadata))  # type: ignore[arg-type]


def _table_of(difference: Any) -> str | None:
    """The table an autogenerate difference is about (changes of one column come as a list)."""
    if isinstance(difference, list):
        difference = difference[0]
    for part in difference[1:]:
        if isinstance(part, str) and part:
            return part
        table = getattr(part, "table", None)
        if table is not None and getattr(table, "name", None):
            return str(table.name)
        if getattr(part, "name", None) and hasattr(part, "columns") and hasattr(part, "c"):
            return str(part.name)
    return None


def _describe(difference: Any) -> str:
    changes = difference if isinstance(difference, list) else [difference]
    words = []
    for change in changes:
        kind, *rest = change
        names = [
            str(getattr(part, "name", part))
            for part in rest
            if isinstance(part, str) or getattr(part, "name", None)
        ]
        words.append(f"{kind} {'.'.join(n for n in names if n)}".strip())
    return "; ".join(words)


def _model_location(subject: Subject, table: str | None) -> tuple[Path, int]:
    """Where the model of ``table`` is declared (``__tablename__``), else the models module."""
    models = [path for path in subject.files() if "migrations" not in path.parts]
    for path in models:
        for node in ast.walk(subject.tree(path)):
            if (
                isinstance(node, ast.Assign)
                and any(isinstance(t, ast.Name) and t.id == "__tablename__" for t in node.targets)
                and isinstance(node.value, ast.Constant)
                and node.value.value == table
            ):
                return path, node.lineno
    fallback = subject.package_dir / "models.py"
    return (fallback if fallback.exists() else subject.definition.migrations_dir), 1
