"""Alembic, one migration history per service, driven from Python.

All services share one Alembic environment (``platform/alembic``); each keeps
its revisions in its own ``migrations/`` folder and its own version table, so
two services could even share a database without stepping on each other.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from lkern.platform.service import ServiceDefinition
from lkern.platform.settings import Settings

logger = logging.getLogger(__name__)

ENVIRONMENT_DIR = Path(__file__).parent / "alembic"

# Alembic keeps its running context in module globals, so two services
# migrating at once in one process (lkern run) would share it.
_alembic_in_use = threading.Lock()


def alembic_config(definition: ServiceDefinition, settings: Settings) -> Config:
    settings.service_data_dir(definition.name).mkdir(parents=True, exist_ok=True)
    config = Config()
    config.set_main_option("script_location", str(ENVIRONMENT_DIR))
    config.set_main_option("version_locations", str(definition.migrations_dir))
    config.set_main_option("path_separator", "os")
    config.attributes["definition"] = definition
    config.attributes["database_url"] = settings.resolved_database_url(definition.name)
    return config


def version_table(definition: ServiceDefinition) -> str:
    return f"alembic_version_{definition.name}"


def upgrade(definition: ServiceDefinition, settings: Settings, revision: str = "head") -> None:
    logger.info("migrating %s up to %s", definition.name, revision)
    with _alembic_in_use:
        command.upgrade(alembic_config(definition, settings), revision)


def downgrade(definition: ServiceDefinition, settings: Settings, revision: str = "base") -> None:
    logger.info("migrating %s down to %s", definition.name, revision)
    with _alembic_in_use:
        command.downgrade(alembic_config(definition, settings), revision)


def revision(definition: ServiceDefinition, settings: Settings, message: str) -> None:
    """Autogenerate a new revision from the difference between models and database."""
    with _alembic_in_use:
        command.revision(alembic_config(definition, settings), message=message, autogenerate=True)


def for_dialect(dialect: str) -> Callable[..., bool]:
    """Autogenerate's object filter: leave out what is declared for other databases only.

    An index declared with ``ddl_if(dialect="postgresql")`` (a trigram index,
    say) does not exist on SQLite, and should not be reported missing there.
    """

    def include(obj: Any, _name: str | None, _type: str, _reflected: bool, _other: Any) -> bool:
        condition = getattr(obj, "_ddl_if", None)
        if condition is None or condition.dialect is None:
            return True
        wanted = condition.dialect
        return dialect in ((wanted,) if isinstance(wanted, str) else wanted)

    return include
