"""Alembic, driven from Python: the platform's tables in branches of their own,
each service's tables in its own history.

All services share one Alembic environment (``platform/alembic``). The
platform's tables come in groups (:class:`~lkern.platform.db.PlatformTables`),
each an Alembic branch of its own in ``platform/alembic/versions/<group>/``
(labelled ``platform_<group>``). A service's ``version_locations`` are the
folders of the groups it uses and its own ``migrations/`` folder, whose first
revision is labelled with the service's name and ``depends_on`` those
branches; service revisions create only the service's own tables. Changing a
platform table is one new revision on its group's branch: upgrading a service
to ``heads`` (``lkern migrate``, or the app at start) applies it to every
service database that holds the group. Each service keeps its own version
table (``alembic_version_<service>``). :func:`revision` autogenerates into the
service's folder, :func:`platform_revision` into a group's.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData

from lkern.platform.db import PLATFORM_METADATA, PlatformTables, platform_table_names
from lkern.platform.service import ServiceDefinition
from lkern.platform.settings import Settings

logger = logging.getLogger(__name__)

ENVIRONMENT_DIR = Path(__file__).parent / "alembic"
PLATFORM_VERSIONS_DIR = ENVIRONMENT_DIR / "versions"

# Alembic keeps its running context in module globals, so two services
# migrating at once in one process (lkern run) would share it.
_alembic_in_use = threading.Lock()


def platform_branch(group: PlatformTables) -> str:
    """The branch label of a group's revisions."""
    return f"platform_{group.value}"


def version_locations(definition: ServiceDefinition) -> list[Path]:
    """The platform groups' folders the service uses, then its own."""
    used = definition.platform_tables
    platform = [PLATFORM_VERSIONS_DIR / group.value for group in PlatformTables if group in used]
    return [*platform, definition.migrations_dir]


def alembic_config(definition: ServiceDefinition, settings: Settings) -> Config:
    settings.service_data_dir(definition.name).mkdir(parents=True, exist_ok=True)
    config = Config()
    config.set_main_option("script_location", str(ENVIRONMENT_DIR))
    config.set_main_option(
        "version_locations", os.pathsep.join(str(path) for path in version_locations(definition))
    )
    config.set_main_option("path_separator", "os")
    config.attributes["definition"] = definition
    config.attributes["database_url"] = settings.resolved_database_url(definition.name)
    return config


def version_table(definition: ServiceDefinition) -> str:
    return f"alembic_version_{definition.name}"


def upgrade(definition: ServiceDefinition, settings: Settings, revision: str = "heads") -> None:
    """Upgrade the service's database; ``heads`` (or ``head``): the service's branch
    and every platform branch it uses."""
    if revision == "head":
        revision = "heads"
    logger.info("migrating %s up to %s", definition.name, revision)
    with _alembic_in_use:
        command.upgrade(alembic_config(definition, settings), revision)


def downgrade(definition: ServiceDefinition, settings: Settings, revision: str = "base") -> None:
    logger.info("migrating %s down to %s", definition.name, revision)
    with _alembic_in_use:
        command.downgrade(alembic_config(definition, settings), revision)


def revision(definition: ServiceDefinition, settings: Settings, message: str) -> None:
    """Autogenerate a service revision from the difference between its models and database.

    It goes to the service's folder, on the service's branch (the first one
    starts the branch and depends on the platform branches the service uses);
    platform tables are left out: they change by :func:`platform_revision`.
    """
    platform = platform_table_names()
    config = alembic_config(definition, settings)
    with _alembic_in_use:
        script = ScriptDirectory.from_config(config)
        labels = {label for rev in script.walk_revisions() for label in rev.branch_labels}
        if definition.name in labels:
            where: dict[str, Any] = {"head": f"{definition.name}@head"}
        else:
            where = {
                "head": "base",
                "branch_label": definition.name,
                "depends_on": [
                    platform_branch(group)
                    for group in PlatformTables
                    if group in definition.platform_tables
                ],
            }
        _autogenerate(
            config, message, definition.migrations_dir, lambda table: table not in platform, where
        )


def platform_revision(
    group: PlatformTables, definition: ServiceDefinition, settings: Settings, message: str
) -> None:
    """Autogenerate a revision of one platform group's tables, compared in the database of
    a service that uses the group; upgrading applies it to every service that does."""
    if group not in definition.platform_tables:
        raise ValueError(f"{definition.name} does not use the platform's {group.value} tables")
    tables = set(PLATFORM_METADATA[group].tables)
    with _alembic_in_use:
        _autogenerate(
            alembic_config(definition, settings),
            message,
            PLATFORM_VERSIONS_DIR / group.value,
            lambda table: table in tables,
            {"head": f"{platform_branch(group)}@head"},
        )


def _autogenerate(
    config: Config,
    message: str,
    folder: Path,
    compared: Callable[[str], bool],
    where: dict[str, Any],
) -> None:
    """``compared``: which tables (by name) the revision may create, change or drop."""
    config.attributes["compared_tables"] = compared
    command.revision(config, message=message, autogenerate=True, version_path=str(folder), **where)


#: ``MetaData.info`` key naming the tables a service's migrations keep outside its
#: models (SQLite's FTS5 search tables and their shadow tables).
UNMAPPED_TABLES = "unmapped_tables"


def unmapped_tables(metadata: Sequence[MetaData] | MetaData) -> frozenset[str]:
    many = [metadata] if isinstance(metadata, MetaData) else metadata
    return frozenset(name for one in many for name in one.info.get(UNMAPPED_TABLES, ()))


def for_dialect(dialect: str, unmapped: frozenset[str] = frozenset()) -> Callable[..., bool]:
    """Autogenerate's object filter: leave out what is declared for other databases only,
    and the ``unmapped`` tables migrations keep without a model.

    An index declared with ``ddl_if(dialect="postgresql")`` (a trigram index,
    say) does not exist on SQLite, and should not be reported missing there.
    """

    def include(obj: Any, name: str | None, type_: str, reflected: bool, _other: Any) -> bool:
        if type_ == "table" and reflected and name in unmapped:
            return False
        condition = getattr(obj, "_ddl_if", None)
        if condition is None or condition.dialect is None:
            return True
        wanted = condition.dialect
        return dialect in ((wanted,) if isinstance(wanted, str) else wanted)

    return include
