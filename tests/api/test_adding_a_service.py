"""The least a service needs: its package and one registration line (what ``lkern
new-service`` builds on), for a throw-away service.

The test writes a minimal package, registers it the way
``src/lkern/services.py`` would (one entry in ``SERVICES``), then uses only
what every service gets: the CLI's migrations, the app factory on each
backend, the authorization walk, the metrics and the event declarations.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from lkern.cli import main
from lkern.platform.app import create_app
from lkern.platform.events.asyncapi import asyncapi_document
from lkern.platform.service import ServiceDefinition
from lkern.services import SERVICES
from tests.api.test_authorization import assert_every_route_demands_the_right_role
from tests.conftest import new_database_url, settings_for
from tests.support.tokens import bearer, trust_test_key

#: The files a minimal service is made of, for a service called {name}.
PACKAGE = {
    "__init__.py": '''
        """{title}: a throw-away service written by a test."""
    ''',
    "models.py": """
        from sqlalchemy import String
        from sqlalchemy.orm import Mapped, mapped_column

        from lkern.platform.db import Model, service_metadata
        from lkern.platform.models import ResourceMixin


        class {title}Base(Model):
            __abstract__ = True
            metadata = service_metadata()


        class Note(ResourceMixin, {title}Base):
            __tablename__ = "notes"

            text: Mapped[str] = mapped_column(String(500))
    """,
    "schemas.py": """
        import uuid

        from pydantic import BaseModel, ConfigDict


        class NoteCreate(BaseModel):
            text: str


        class NoteRead(BaseModel):
            model_config = ConfigDict(from_attributes=True)

            id: uuid.UUID
            text: str
            version: int
    """,
    "service.py": """
        from sqlalchemy import select

        from lkern.platform.uow import UnitOfWork
        from {name}.models import Note
        from {name}.schemas import NoteCreate, NoteRead


        async def create_note(uow: UnitOfWork, data: NoteCreate) -> NoteRead:
            async with uow:
                note = Note(text=data.text)
                uow.session.add(note)
                await uow.session.flush()
                read = NoteRead.model_validate(note)
                await uow.commit()
            return read


        async def list_notes(uow: UnitOfWork) -> list[NoteRead]:
            async with uow:
                notes = await uow.session.scalars(select(Note).order_by(Note.created_at))
                return [NoteRead.model_validate(note) for note in notes]
    """,
    "views.py": """
        from fastapi import status

        from lkern.platform.problems import problem_responses
        from lkern.platform.routers import protected_router
        from lkern.platform.runtime import Uow
        from {name} import service
        from {name}.schemas import NoteCreate, NoteRead

        router = protected_router(prefix="/api/v1/notes", tags=["notes"])


        @router.get("", summary="List notes", responses=problem_responses(503))
        async def list_notes(uow: Uow) -> list[NoteRead]:
            return await service.list_notes(uow)


        @router.post(
            "",
            summary="Write a note",
            status_code=status.HTTP_201_CREATED,
            responses=problem_responses(422, 503),
        )
        async def create_note(data: NoteCreate, uow: Uow) -> NoteRead:
            return await service.create_note(uow, data)
    """,
    "definition.py": """
        from pathlib import Path

        from lkern.platform.service import ServiceDefinition
        from {name}.models import {title}Base
        from {name}.views import router

        SERVICE = ServiceDefinition(
            name="{name}",
            code="lkms199",
            title="{title}",
            description="Notes, for a test.",
            version="0.1.0",
            rest_port=8199,
            metadata={title}Base.metadata,
            routers=[router],
            migrations_dir=Path(__file__).parent / "migrations",
        )
    """,
}


def write_package(root: Path, name: str) -> Path:
    package = root / name
    (package / "migrations").mkdir(parents=True)
    for filename, text in PACKAGE.items():
        content = textwrap.dedent(text).format(name=name, title=name.capitalize()).lstrip()
        (package / filename).write_text(content)
    return package


@pytest.fixture
def throwaway(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ServiceDefinition]:
    """The service's package on the path and its one registration line, undone afterwards."""
    # One name per backend: both runs share this process's imports and mapper registry.
    name = f"scratch{backend}"
    write_package(tmp_path / "src", name)
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    definition: ServiceDefinition = importlib.import_module(f"{name}.definition").SERVICE
    monkeypatch.setitem(SERVICES, name, definition)  # what services.py's line does
    yield definition
    for module in [m for m in sys.modules if m == name or m.startswith(f"{name}.")]:
        del sys.modules[module]


async def cli(*args: str) -> str:
    # In a thread: Alembic runs an event loop of its own.
    result = await asyncio.to_thread(CliRunner().invoke, main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


async def test_a_new_service_needs_only_its_package_and_one_registration_line(
    request: pytest.FixtureRequest,
    backend: str,
    throwaway: ServiceDefinition,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    name = throwaway.name
    url = new_database_url(request, backend, tmp_path)
    monkeypatch.setenv("LKERN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(f"LKERN_{name.upper()}_DATABASE_URL", url)

    # The platform tables it uses, then its first revision, by the CLI, which knows
    # the service from the registration.
    await cli("migrate", name)
    await cli("make-migration", name, "initial")
    [revision] = throwaway.migrations_dir.glob("*.py")
    assert "notes" in revision.read_text()
    assert f"{name}: upgrade to head done" in await cli("migrate", name)
    assert f"{name}: downgrade to base done" in await cli("migrate", name, "downgrade")
    await cli("migrate", name)

    app = create_app(throwaway, settings_for(throwaway, tmp_path / "app", url))
    async with app.router.lifespan_context(app):
        trust_test_key(app.state.runtime)
        # Its routes, the platform's routes, all behind the right roles.
        assert await assert_every_route_demands_the_right_role(app) >= 4
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=bearer("member")
        ) as client:
            created = await client.post("/api/v1/notes", json={"text": "remember the milk"})
            assert created.status_code == 201, created.text
            assert [note["text"] for note in (await client.get("/api/v1/notes")).json()] == [
                "remember the milk"
            ]
            assert (await client.get("/health/ready")).status_code == 200
            assert "lkern_http_requests" in (await client.get("/metrics")).text

    # It produces no events, and the event contract says so; it receives only what
    # every service receives from the platform: identity's revocations of users (§9).
    document = asyncapi_document(SERVICES)
    operations = [key for key in document["operations"] if key.startswith(f"{name}.")]
    assert operations == [f"{name}.receive.lkern.identity.user_changed"]
