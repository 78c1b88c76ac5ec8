"""How a service describes itself to the platform."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter
from sqlalchemy import MetaData

from lkern.platform.db import PlatformBase


@dataclass(frozen=True)
class ServiceDefinition:
    name: str  # "contacts"
    code: str  # "lkms101"
    title: str
    description: str
    version: str
    rest_port: int
    metadata: MetaData
    routers: Sequence[APIRouter]
    migrations_dir: Path
    grpc_port: int | None = None

    @property
    def all_metadata(self) -> list[MetaData]:
        """The service's tables and the platform's, which live in the same database."""
        return [PlatformBase.metadata, self.metadata]
