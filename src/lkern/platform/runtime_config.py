"""Runtime-changeable configuration, persisted per service: the log level API of §4."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Any

from fastapi import Depends
from pydantic import BaseModel, Field, field_validator

from lkern.platform.auth import Role, require
from lkern.platform.logging import VALID_LEVELS, service_level, set_service_level
from lkern.platform.problems import problem_responses
from lkern.platform.routers import protected_router
from lkern.platform.runtime import Runtime, ServiceName, ServiceRuntime

logger = logging.getLogger(__name__)

RUNTIME_CONFIG_FILE = "runtime_config.json"

LogLevel = StrEnum("LogLevel", {level.upper(): level for level in VALID_LEVELS})  # type: ignore[misc]


class LogLevelRead(BaseModel):
    level: str = Field(description="Current level of the service's loggers.", examples=["info"])
    valid_levels: list[str] = Field(
        description="Levels that may be set.", examples=[list(VALID_LEVELS)]
    )


class LogLevelUpdate(BaseModel):
    level: LogLevel = Field(description="New level; case-insensitive.", examples=["debug"])

    @field_validator("level", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.lower() if isinstance(value, str) else value


def _config_path(runtime: ServiceRuntime) -> Path:
    return runtime.data_dir / RUNTIME_CONFIG_FILE


def read_runtime_config(path: Path) -> dict[str, Any]:
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        logger.warning("ignoring unreadable %s: %s", path.name, exc)
        return {}
    return content if isinstance(content, dict) else {}


def write_runtime_config(path: Path, content: dict[str, Any]) -> None:
    """Replace the file atomically, so a crash never leaves half a config."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, prefix=".runtime_config.", delete=False, encoding="utf-8"
    ) as handle:
        json.dump(content, handle, indent=2)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, path)


def apply_runtime_config(runtime: ServiceRuntime) -> None:
    """At start: the persisted level wins over the configured one."""
    level = read_runtime_config(_config_path(runtime)).get("log_level", runtime.settings.log_level)
    try:
        set_service_level(runtime.name, str(level))
    except ValueError:
        logger.warning("ignoring invalid persisted log level %r", level)
        set_service_level(runtime.name, runtime.settings.log_level)


router = protected_router(prefix="/config", tags=["runtime configuration"])


def _current(service: str) -> LogLevelRead:
    return LogLevelRead(level=service_level(service), valid_levels=list(VALID_LEVELS))


@router.get("/log-level", express=True, summary="Current log level", response_model=LogLevelRead)
async def get_log_level(service: ServiceName) -> LogLevelRead:
    return _current(service)


@router.put(
    "/log-level",
    dependencies=[Depends(require(Role.ADMIN))],
    summary="Change the log level of every logger of this service, without restart",
    response_model=LogLevelRead,
    responses=problem_responses(400, 422),
)
async def put_log_level(update: LogLevelUpdate, runtime: Runtime) -> LogLevelRead:
    level = str(update.level.value)
    path = _config_path(runtime)
    content = read_runtime_config(path)
    content["log_level"] = level
    write_runtime_config(path, content)
    set_service_level(runtime.name, level)
    logger.warning("log level of %s set to %s", runtime.name, level)
    return _current(runtime.name)
