"""Migrations: the platform's tables in branches of their own, each service's
tables in its own history; up to head, down to base, up again, in step with
the models."""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import shutil
import textwrap
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.util import to_tuple
from click.testing import CliRunner
from sqlalchemy import column, inspect, select, table, text
from sqlalchemy.ext.asyncio import create_async_engine

from lkern import cli
from lkern.platform import migrations
from lkern.platform.db import PLATFORM_METADATA, PlatformTables, platform_table_names
from lkern.platform.migrations import (
    alembic_config,
    downgrade,
    for_dialect,
    platform_branch,
    platform_revision,
    revision,
    unmapped_tables,
    upgrade,
    version_table,
)
from lkern.platform.service import ServiceDefinition
from lkern.services import SERVICES
from tests.conftest import new_database_url, settings_for

PLATFORM_TABLES = platform_table_names()
INBOX_TABLES = set(PLATFORM_METADATA[PlatformTables.INBOX].tables)


def _sqlite_url(folder: Path, name: str = "db.sqlite") -> str:
    return f"sqlite+aiosqlite:///{folder / name}"


async def _tables(url: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def _columns(url: str, table: str) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            found = await connection.run_sync(lambda c: inspect(c).get_columns(table))
            return {found_column["name"] for found_column in found}
    finally:
        await engine.dispose()


async def _differences(url: str, definition: ServiceDefinition) -> list[object]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:

            def compare(sync_connection):
                context = MigrationContext.configure(
                    sync_connection,
                    opts={
                        "compare_type": True,
                        "version_table": version_table(definition),
                        "include_object": for_dialect(
                            sync_connection.dialect.name,
                            unmapped_tables(definition.all_metadata),
                        ),
                    },
                )
                return compare_metadata(context, definition.all_metadata)  # type: ignore[arg-type]

            return list(await connection.run_sync(compare))
    finally:
        await engine.dispose()


def _own_tables(definition: ServiceDefinition) -> set[str]:
    return set(definition.metadata.tables)


def _platform_tables(definition: ServiceDefinition) -> set[str]:
    return {
        name for group in definition.platform_tables for name in PLATFORM_METADATA[group].tables
    }


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_upgrade_downgrade_upgrade(request, backend, tmp_path: Path, service: str):
    url = new_database_url(request, backend, tmp_path)
    definition = SERVICES[service]
    settings = settings_for(definition, tmp_path, url)
    # Alembic drives its own event loop, so it runs in a worker thread here as in the app.
    await asyncio.to_thread(upgrade, definition, settings)
    tables = await _tables(url)
    # The service's tables and the platform tables it uses, nothing else.
    expected = _own_tables(definition) | _platform_tables(definition)
    # Tables the migrations keep without a model (SQLite's FTS5 search tables).
    expected |= tables & unmapped_tables(definition.all_metadata)
    assert tables == expected | {version_table(definition)}
    assert "token_revocations" in tables, "every service refuses revoked users' tokens (§9)"
    if not definition.event_handlers:
        assert not tables & INBOX_TABLES, "a service that consumes nothing has no inbox"
    assert await _differences(url, definition) == [], "models and migrations disagree"

    await asyncio.to_thread(downgrade, definition, settings, "base")
    assert await _tables(url) <= {version_table(definition)}

    await asyncio.to_thread(upgrade, definition, settings)
    assert await _differences(url, definition) == []


def test_each_service_takes_the_platform_tables_it_uses():
    taken = {name: definition.platform_tables for name, definition in SERVICES.items()}
    # Every service keeps revoked users (§9) and, but identity which publishes them,
    # consumes them: so every other service has an inbox.
    always = {PlatformTables.DELETION_AUDITS, PlatformTables.REVOCATIONS}
    # The project's own services, by name; one added since by `lkern new-service` is
    # held to the rule of the loop below like them.
    own = {
        "identity": always | {PlatformTables.OUTBOX},
        "contacts": always | {PlatformTables.OUTBOX, PlatformTables.INBOX},
        "orders": set(PlatformTables),
        "issues": always
        | {PlatformTables.OUTBOX, PlatformTables.INBOX, PlatformTables.CODE_COUNTERS},
        "inventory": always | {PlatformTables.OUTBOX, PlatformTables.INBOX},
    }
    assert {name: taken[name] for name in own} == own
    for definition in SERVICES.values():
        consumes = bool(definition.event_handlers)
        assert (PlatformTables.INBOX in definition.platform_tables) == consumes
        assert (PlatformTables.OUTBOX in definition.platform_tables) == bool(definition.produces)


def _history(definition: ServiceDefinition, tmp: Path) -> ScriptDirectory:
    return ScriptDirectory.from_config(
        alembic_config(definition, settings_for(definition, tmp, _sqlite_url(tmp)))
    )


def _revisions_in(history: ScriptDirectory, folder: Path) -> list[Script]:
    return [rev for rev in history.walk_revisions() if Path(rev.path).parent == folder]


def _revision_of(path: Path, definition: ServiceDefinition, tmp: Path) -> Script:
    [found] = [rev for rev in _history(definition, tmp).walk_revisions() if Path(rev.path) == path]
    return found


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_a_service_history_depends_on_the_platform_branches_it_uses(tmp_path: Path, service):
    definition = SERVICES[service]
    history = _history(definition, tmp_path)
    own = _revisions_in(history, definition.migrations_dir)
    assert own, "every service has revisions of its own"
    # A dependency is named by a branch label or a revision; either way, its branch counts.
    depends_on = {
        label
        for rev in own
        for dependency in to_tuple(rev.dependencies, default=())
        for label in history.get_revision(dependency).branch_labels
    }
    assert depends_on == {platform_branch(group) for group in definition.platform_tables}
    bases = [rev for rev in own if rev.down_revision is None]
    assert len(bases) == 1 and definition.name in bases[0].branch_labels


def _op_calls(path: Path) -> list[ast.Call]:
    """Calls on ``op`` and ``batch_op`` in a revision file."""
    return [
        node
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in {"op", "batch_op"}
    ]


def _strings(call: ast.Call) -> set[str]:
    return {
        node.value
        for argument in [*call.args, *(keyword.value for keyword in call.keywords)]
        for node in ast.walk(argument)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_no_service_revision_touches_a_platform_table(service):
    files = sorted(SERVICES[service].migrations_dir.glob("*.py"))
    assert files
    touched = {
        (path.name, name)
        for path in files
        for call in _op_calls(path)
        for string in _strings(call)
        for name in PLATFORM_TABLES
        if string == name or name in string.split()  # a table argument, or in SQL
    }
    assert touched == set()


def test_platform_revisions_stay_on_their_group_branch(tmp_path: Path):
    orders = SERVICES["orders"]  # takes every group
    history = _history(orders, tmp_path)
    for group in PlatformTables:
        folder = migrations.PLATFORM_VERSIONS_DIR / group.value
        revisions = _revisions_in(history, folder)
        assert revisions, group
        assert {rev.revision for rev in revisions} == {
            rev.revision
            for rev in history.iterate_revisions(f"{platform_branch(group)}@head", "base")
        }
        touched = {
            string
            for rev in revisions
            for call in _op_calls(Path(rev.path))
            for string in _strings(call)
            if string in PLATFORM_TABLES
        }
        assert touched == set(PLATFORM_METADATA[group].tables)


def _write_platform_revision(folder: Path, revision_id: str, table_name: str) -> None:
    """A new revision on the folder's branch: a ``note`` column in ``table_name``."""
    down = ScriptDirectory(str(folder.parent), version_locations=[str(folder)]).get_current_head()
    (folder / f"9999_{revision_id}.py").write_text(
        textwrap.dedent(f'''\
            """a throw-away change of {table_name}"""
            import sqlalchemy as sa
            from alembic import op

            revision = "{revision_id}"
            down_revision = "{down}"
            branch_labels = None
            depends_on = None


            def upgrade() -> None:
                with op.batch_alter_table("{table_name}") as batch_op:
                    batch_op.add_column(sa.Column("note", sa.Text(), nullable=True))


            def downgrade() -> None:
                with op.batch_alter_table("{table_name}") as batch_op:
                    batch_op.drop_column("note")
        ''')
    )


async def _versions(url: str, definition: ServiceDefinition) -> set[str]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            versions = table(version_table(definition), column("version_num"))
            return set((await connection.execute(select(versions.c.version_num))).scalars())
    finally:
        await engine.dispose()


async def test_a_platform_revision_reaches_every_service_database_by_lkern_migrate_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    versions = tmp_path / "versions"
    shutil.copytree(migrations.PLATFORM_VERSIONS_DIR, versions)
    monkeypatch.setattr(migrations, "PLATFORM_VERSIONS_DIR", versions)
    monkeypatch.setattr(cli, "_setup_logging", lambda: None)  # the test's logging stays
    data = tmp_path / "data"
    environment = {"LKERN_DATA_DIR": str(data), "LKERN_DATABASE_URL": None}

    def migrate_all() -> None:
        result = CliRunner().invoke(cli.main, ["migrate", "all"], env=environment)
        assert result.exit_code == 0, result.output

    def url(definition: ServiceDefinition) -> str:
        return _sqlite_url(data / definition.name, f"{definition.name}.db")

    await asyncio.to_thread(migrate_all)
    # One change to a table every service holds, one to a table only consumers hold.
    _write_platform_revision(versions / "deletion_audits", "ffff00000001", "deletion_audits")
    _write_platform_revision(versions / "inbox", "ffff00000002", "dead_letters")
    await asyncio.to_thread(migrate_all)

    for definition in SERVICES.values():
        database = url(definition)
        assert "note" in await _columns(database, "deletion_audits"), definition.name
        assert "ffff00000001" in await _versions(database, definition)
        consumes = PlatformTables.INBOX in definition.platform_tables
        assert ("ffff00000002" in await _versions(database, definition)) == consumes
        if consumes:
            assert "note" in await _columns(database, "dead_letters")
        else:
            assert not INBOX_TABLES & await _tables(database)


async def _drop(url: str, table: str) -> None:
    await _execute(url, f"DROP TABLE {table}")


async def _drop_index(url: str, index: str) -> None:
    await _execute(url, f"DROP INDEX {index}")


async def _execute(url: str, statement: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


def _new_revisions(folder: Path, before: set[Path]) -> list[Path]:
    return sorted(set(folder.glob("*.py")) - before)


async def test_make_migration_writes_to_the_service_folder_and_leaves_platform_tables_out(
    tmp_path: Path,
):
    folder = tmp_path / "migrations"
    shutil.copytree(SERVICES["orders"].migrations_dir, folder)
    definition = dataclasses.replace(SERVICES["orders"], migrations_dir=folder)
    url = _sqlite_url(tmp_path)
    settings = settings_for(definition, tmp_path, url)
    await asyncio.to_thread(upgrade, definition, settings)
    # A platform table out of step with the models is no business of a service revision.
    await _drop(url, "code_counters")
    before = set(folder.glob("*.py"))
    platform_before = set(migrations.PLATFORM_VERSIONS_DIR.rglob("*.py"))

    await asyncio.to_thread(revision, definition, settings, "nothing new")

    [written] = _new_revisions(folder, before)
    assert set(migrations.PLATFORM_VERSIONS_DIR.rglob("*.py")) == platform_before
    new = _revision_of(written, definition, tmp_path)
    assert new.down_revision == "2d6f0a48b1c3"  # on the service's branch, after its head
    assert _op_calls(written) == [], written.read_text()


async def test_make_migration_starts_a_new_service_history_on_the_platform_branches(
    tmp_path: Path,
):
    folder = tmp_path / "migrations"
    folder.mkdir()
    definition = dataclasses.replace(SERVICES["contacts"], migrations_dir=folder)
    url = _sqlite_url(tmp_path)
    settings = settings_for(definition, tmp_path, url)
    await asyncio.to_thread(upgrade, definition, settings)  # the platform tables alone
    assert await _tables(url) == _platform_tables(definition) | {version_table(definition)}

    await asyncio.to_thread(revision, definition, settings, "initial")

    [written] = _new_revisions(folder, set())
    first = _revision_of(written, definition, tmp_path)
    assert first.down_revision is None
    assert first.branch_labels == {"contacts"}
    assert set(to_tuple(first.dependencies)) == {
        platform_branch(PlatformTables.OUTBOX),
        platform_branch(PlatformTables.DELETION_AUDITS),
        # Contacts consumes the platform's revocations of users (§9).
        platform_branch(PlatformTables.INBOX),
        platform_branch(PlatformTables.REVOCATIONS),
    }
    assert not PLATFORM_TABLES & {s for call in _op_calls(written) for s in _strings(call)}
    await asyncio.to_thread(upgrade, definition, settings)
    # Trigram indexes are PostgreSQL's; on SQLite the first revision is the whole schema.
    assert await _differences(url, definition) == []


async def test_make_migration_of_a_platform_group_writes_to_its_branch_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    versions = tmp_path / "versions"
    shutil.copytree(migrations.PLATFORM_VERSIONS_DIR, versions)
    monkeypatch.setattr(migrations, "PLATFORM_VERSIONS_DIR", versions)
    definition = SERVICES["orders"]
    url = _sqlite_url(tmp_path)
    settings = settings_for(definition, tmp_path, url)
    await asyncio.to_thread(upgrade, definition, settings)
    # Out of step with the models: one inbox index, one of orders' own.
    await _drop_index(url, "ix_dead_letters_topic")
    await _drop_index(url, "ix_orders_status")
    before = set(versions.rglob("*.py"))

    await asyncio.to_thread(
        platform_revision, PlatformTables.INBOX, definition, settings, "topic index again"
    )

    [written] = sorted(set(versions.rglob("*.py")) - before)
    assert written.parent == versions / "inbox"
    new = _revision_of(written, definition, tmp_path)
    assert new.down_revision == "4b8d2e7a5c13"  # on the inbox branch
    made = {s for call in _op_calls(written) for s in _strings(call)}
    assert "ix_dead_letters_topic" in made and "ix_orders_status" not in made
    with pytest.raises(ValueError, match="identity does not use"):
        platform_revision(PlatformTables.INBOX, SERVICES["identity"], settings, "no inbox")
