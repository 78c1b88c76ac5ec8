"""What a running service instance holds, and the FastAPI dependencies reaching it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from lkern.platform.settings import Settings
from lkern.platform.uow import UnitOfWork

if TYPE_CHECKING:
    from lkern.platform.service import ServiceDefinition

ReadinessCheck = Callable[[], Awaitable[None]]


@dataclass
class ServiceRuntime:
    definition: ServiceDefinition
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    readiness: dict[str, ReadinessCheck] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def data_dir(self) -> Path:
        return self.settings.service_data_dir(self.name)

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self.sessions)


def get_runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def get_uow(runtime: Annotated[ServiceRuntime, Depends(get_runtime)]) -> UnitOfWork:
    return runtime.unit_of_work()


Runtime = Annotated[ServiceRuntime, Depends(get_runtime)]
Uow = Annotated[UnitOfWork, Depends(get_uow)]
