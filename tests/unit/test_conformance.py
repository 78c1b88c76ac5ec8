"""``lkern check``: each rule catches a service broken on purpose; a sound one passes.

The services under check are small packages written to a temporary folder on
``sys.path``, each from the same sound template with one thing broken, so a
test shows the rule it is about and no other firing.
"""

from __future__ import annotations

import ast
import importlib
import uuid
from collections.abc import Callable
from pathlib import Path
from string import Template

import pytest
from click.testing import CliRunner

from lkern import cli
from lkern.conformance import Violation, check_service
from lkern.events import base as events_base
from lkern.platform.service import ServiceDefinition
from lkern.services import SERVICES

TEMPLATE = {
    "__init__.py": '"""A service written by a test, for lkern check to read."""\n',
    "models.py": """
import uuid

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from lkern.platform.db import Model, service_metadata


class Base(Model):
    __abstract__ = True
    metadata = service_metadata()


class Widget(Base):
    __tablename__ = "widgets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    $columns
""",
    "events.py": '''
from lkern.events.base import EventData, event


@event("lkern.$name.created")
class WidgetCreated(EventData):
    id: str


@event("lkern.$name.renamed")
class WidgetRenamed(EventData):
    id: str


class WidgetLost(EventData):
    """Shaped like an event, never registered."""

    event_type = "lkern.$name.lost"
    schema_version = 1
    id: str
''',
    "service.py": """
import uuid

from lkern.platform.errors import Conflict
from lkern.platform.uow import UnitOfWork
from $package.events import WidgetCreated, WidgetLost, WidgetRenamed
$imports


async def create_widget(uow: UnitOfWork, name: str) -> uuid.UUID:
    # print("a comment is no call")
    if name == "taken":
        raise Conflict("The name is taken.", code="WIDGET_NAME_TAKEN")
    widget_id = uuid.uuid4()
    uow.emit(WidgetCreated(id=str(widget_id)), widget_id)
    $service
    return widget_id
""",
    "views.py": """
import uuid
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from pydantic import BaseModel

from lkern.platform.http import ExpectedVersion
from lkern.platform.pagination import ListQuery, Page, list_query
from lkern.platform.problems import problem_responses
from lkern.platform.routers import protected_router, public_router
from lkern.platform.runtime import Uow
from $package import service

router = protected_router(prefix="/api/v1/widgets", tags=["widgets"])
public = public_router(prefix="/api/v1/public", tags=["public"])
open_router = APIRouter(prefix="/api/v1/open")
extra = protected_router(prefix="/api/v1/extra", tags=["extra"])


class WidgetRead(BaseModel):
    id: uuid.UUID
    name: str


class WidgetSortField(StrEnum):
    NAME = "name"


WidgetListQuery = Annotated[
    ListQuery, Depends(list_query(WidgetSortField, WidgetSortField.NAME$list_options))
]


$list_route
async def list_widgets(uow: Uow, query: WidgetListQuery) -> Page[WidgetRead]:
    raise NotImplementedError("never served: the check reads the route")


@router.post(
    "",
    summary="Create a widget",
    status_code=status.HTTP_201_CREATED,
    response_model=WidgetRead,
    responses=problem_responses($create_problems),
)
async def create_widget(
    uow: Uow, name: Annotated[str, Query(description="Its name.")]
) -> WidgetRead:
    return WidgetRead(id=await service.create_widget(uow, name), name=name)

$routes
""",
    "definition.py": """
from pathlib import Path

from lkern.platform.service import ServiceDefinition
from $package.events import WidgetCreated, WidgetLost, WidgetRenamed
from $package.models import Base
from $package.views import extra, open_router, public, router

DEFINITION = ServiceDefinition(
    name="$name",
    code="lkms900",
    title="Widgets",
    description="A service written by a test.",
    version="0.1.0",
    rest_port=8900,
    metadata=Base.metadata,
    routers=[$routers],
    public_routers=[$public_routers],
    migrations_dir=Path(__file__).parent / "migrations",
    produces=[$produces],
)
""",
    "migrations/0001_widgets.py": '''
"""widgets"""

import sqlalchemy as sa
from alembic import op

revision = "c0ffee000001"
down_revision = None
branch_labels = ("$name",)
depends_on = ("platform_outbox", "platform_deletion_audits")


def upgrade() -> None:
    op.create_table(
        "widgets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_widgets")),
    )


def downgrade() -> None:
    $downgrade
''',
}

SOUND = {
    "columns": "",
    "imports": "",
    "service": "",
    "list_options": "",
    "list_route": """@router.get(
    "",
    summary="List widgets",
    response_model=Page[WidgetRead],
    responses=problem_responses(400, 422, 503),
)""",
    "create_problems": "400, 409, 422, 503",
    "routes": "",
    "routers": "router",
    "public_routers": "",
    "produces": "WidgetCreated",
    "downgrade": 'op.drop_table("widgets")',
}

Service = Callable[..., tuple[ServiceDefinition, Path]]


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Service:
    """Writes the template with some slots changed, imports it, gives its definition
    and folder. Each gets a package (and event types) of its own, registered only
    for the test: the contract tests read the registry as the project's own."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(events_base, "_REGISTRY", dict(events_base._REGISTRY))

    def write(**changes: str) -> tuple[ServiceDefinition, Path]:
        name = f"widgets_{uuid.uuid4().hex[:8]}"
        slots = {**SOUND, **changes, "name": name, "package": name}
        folder = tmp_path / name
        for relative, text in TEMPLATE.items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(Template(text.lstrip()).substitute(slots))
        definition = importlib.import_module(f"{name}.definition").DEFINITION
        return definition, folder

    return write


def found(definition: ServiceDefinition) -> list[Violation]:
    return check_service(definition, SERVICES)


def only(violations: list[Violation], rule: str) -> list[Violation]:
    assert {v.rule for v in violations} == {rule}, "\n".join(v.render() for v in violations)
    return violations


def line_of(path: Path, text: str) -> int:
    [line] = [n for n, row in enumerate(path.read_text().splitlines(), 1) if text in row]
    return line


def declared_at(path: Path, function: str) -> int:
    """Where a route is declared: its first decorator."""
    [node] = [
        node
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) and node.name == function
    ]
    return node.decorator_list[0].lineno if node.decorator_list else node.lineno


def test_the_sound_service_passes(service: Service):
    definition, _ = service()
    assert found(definition) == []


def test_the_project_s_services_pass():
    for definition in SERVICES.values():
        assert found(definition) == [], definition.name


@pytest.mark.parametrize(
    ("routes", "registered"),
    [
        # On a router that checks nothing.
        ('@open_router.get("", summary="Open")', {"routers": "router, open_router"}),
        # On a public router, but listed with the protected ones.
        ('@public.get("", summary="Public")', {"routers": "router, public"}),
        # On a protected router, listed as public.
        ('@extra.get("", summary="Extra")', {"public_routers": "extra"}),
    ],
)
def test_an_unguarded_route(service: Service, routes: str, registered: dict[str, str]):
    route = f"{routes}\nasync def unguarded() -> dict[str, str]:\n    return {{}}\n"
    definition, folder = service(routes=route, **registered)
    [violation] = only(found(definition), "ROUTE-UNGUARDED")
    assert violation.path == folder / "views.py"
    assert violation.line == declared_at(folder / "views.py", "unguarded")


def test_a_problem_the_service_raises_but_does_not_document(service: Service):
    definition, folder = service(create_problems="400, 422, 503")
    [violation] = only(found(definition), "PROBLEM-UNDOCUMENTED")
    assert violation.line == declared_at(folder / "views.py", "create_widget")
    assert "409 (it can raise Conflict in " in violation.message


def test_a_problem_the_platform_answers_but_the_route_does_not_document(service: Service):
    """The database behind it may be down. (A protected route documents 503 whatever
    it does: identity's keys may be out of reach; so this is a public one.)"""
    count = """@public.get("/count", summary="Count widgets", responses=problem_responses(422))
async def count_widgets(uow: Uow) -> int:
    raise NotImplementedError"""
    definition, _ = service(routes=count, public_routers="public")
    [violation] = only(found(definition), "PROBLEM-UNDOCUMENTED")
    assert "503 (it reaches the database)" in violation.message


@pytest.mark.parametrize(
    ("route", "missing"),
    [
        (
            """@router.get("/{widget_id}", summary="Get a widget",
    responses=problem_responses(400, 422, 503))
async def get_widget(widget_id: uuid.UUID, uow: Uow) -> None:
    raise NotImplementedError""",
            "404 (its path's widget_id may name nothing)",
        ),
        (
            """@router.patch("/{widget_id}", summary="Change a widget",
    responses=problem_responses(400, 404, 409, 422, 503))
async def change_widget(widget_id: uuid.UUID, uow: Uow, version: ExpectedVersion) -> None:
    raise NotImplementedError""",
            "412 (it takes If-Match)",
        ),
    ],
)
def test_a_problem_the_request_can_cause_but_the_route_does_not_document(
    service: Service, route: str, missing: str
):
    definition, _ = service(routes=route)
    [violation] = only(found(definition), "PROBLEM-UNDOCUMENTED")
    assert f"can answer {missing}, which" in violation.message


def test_a_list_that_answers_a_bare_array(service: Service):
    route = """@router.get("", summary="List widgets", response_model=list[WidgetRead],
    responses=problem_responses(400, 422, 503))"""
    definition, folder = service(list_route=route)
    [violation] = only(found(definition), "LIST-ENVELOPE")
    assert violation.line == declared_at(folder / "views.py", "list_widgets")
    assert violation.message.endswith(": it answers an array")


def test_a_top_level_route_that_is_no_collection_is_no_list(service: Service):
    """``GET /api/v1/extra`` answers one object and has no items below it."""
    summary = """@extra.get("", summary="Count widgets")
async def summary() -> dict[str, int]:
    return {"widgets": 0}
"""
    definition, _ = service(routes=summary, routers="router, extra")
    assert found(definition) == []


def test_a_list_without_paging(service: Service):
    route = """@router.get("", summary="List widgets", response_model=Page[WidgetRead],
    responses=problem_responses(400, 422, 503))
async def list_widgets_unpaged(uow: Uow) -> Page[WidgetRead]:
    raise NotImplementedError

"""
    definition, _ = service(
        list_route=route
        + '@router.get("/all", summary="All", responses=problem_responses(400, 422, 503))'
    )
    [violation] = only(found(definition), "LIST-PAGING")
    assert "no skip; no limit" in violation.message


def test_a_list_with_too_large_a_page(service: Service):
    definition, _ = service(list_options=", max_limit=5000")
    [violation] = only(found(definition), "LIST-PAGING")
    assert "maximum of at most 1000" in violation.message


def test_a_soft_deletable_resource_s_list_without_search_or_sort(service: Service):
    route = """@router.get("", summary="List widgets", response_model=Page[WidgetRead],
    responses=problem_responses(400, 422, 503))
async def list_widgets_plain(
    uow: Uow,
    skip: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[WidgetRead]:
    raise NotImplementedError

"""
    restore = """@router.post("/{widget_id}/restore", summary="Restore a widget",
    responses=problem_responses(404, 409, 412, 422, 503))
async def restore_widget(widget_id: uuid.UUID, uow: Uow) -> None:
    raise NotImplementedError
"""
    definition, _ = service(
        list_route=route
        + '@router.get("/plain", summary="Plain", responses=problem_responses(400, 422, 503))',
        routes=restore,
    )
    [violation] = only(found(definition), "LIST-QUERY")
    assert "no search; no sort_by; no sort_order; no include_deleted" in violation.message


def test_a_downgrade_that_leaves_the_table(service: Service):
    definition, folder = service(downgrade="pass")
    [violation] = only(found(definition), "MIGRATION-DOWNGRADE")
    revision = folder / "migrations" / "0001_widgets.py"
    assert violation.path == revision
    assert violation.line == line_of(revision, "def downgrade")
    assert "table widgets left behind" in violation.message


def test_a_downgrade_that_fails(service: Service):
    definition, _ = service(downgrade='op.drop_table("gadgets")')
    [violation] = only(found(definition), "MIGRATION-DOWNGRADE")
    assert "downgrade fails" in violation.message


def test_models_without_any_revision(service: Service):
    definition, folder = service()
    (folder / "migrations" / "0001_widgets.py").unlink()
    [violation] = only(found(definition), "MIGRATION-DRIFT")
    assert "add_table widgets" in violation.message


def test_a_model_that_differs_from_head(service: Service):
    definition, folder = service(columns="size: Mapped[int]")
    [violation] = only(found(definition), "MIGRATION-DRIFT")
    assert violation.path == folder / "models.py"
    assert violation.line == line_of(folder / "models.py", "__tablename__")
    assert "add_column widgets.size" in violation.message


def test_a_produced_event_without_a_registered_schema(service: Service):
    definition, folder = service(produces="WidgetCreated, WidgetLost")
    [violation] = only(found(definition), "EVENT-UNREGISTERED")
    assert violation.path == folder / "definition.py"
    assert f"lkern.{definition.name}.lost" in violation.message


def test_an_event_written_to_the_outbox_without_a_registered_schema(service: Service):
    definition, folder = service(service="uow.emit(WidgetLost(id=str(widget_id)), widget_id)")
    [violation] = only(found(definition), "EVENT-UNREGISTERED")
    assert violation.line == line_of(folder / "service.py", "WidgetLost(id=")


def test_an_event_written_to_the_outbox_but_not_declared(service: Service):
    emit = "uow.emit(WidgetRenamed.model_validate({'id': str(widget_id)}), widget_id)"
    definition, folder = service(service=emit)
    [violation] = only(found(definition), "EVENT-UNDECLARED")
    assert violation.line == line_of(folder / "service.py", "WidgetRenamed.model_validate")


def test_an_import_of_another_service(service: Service):
    definition, folder = service(imports="from lkern.contacts.enums import ContactSortField")
    [violation] = only(found(definition), "IMPORT-OTHER-SERVICE")
    assert violation.line == line_of(folder / "service.py", "lkern.contacts")
    assert "the contacts service" in violation.message


def test_print_in_service_code(service: Service):
    definition, folder = service(service='print("created", widget_id)')
    [violation] = only(found(definition), "PRINT")
    # The commented-out print of the template is not a call.
    assert violation.line == line_of(folder / "service.py", 'print("created"')


def test_the_command_reports_and_fails(service: Service, monkeypatch: pytest.MonkeyPatch):
    definition, folder = service(service='print("created", widget_id)')
    monkeypatch.setitem(SERVICES, definition.name, definition)
    monkeypatch.setattr(cli, "SERVICES", SERVICES)
    result = CliRunner().invoke(cli.main, ["check", definition.name])
    assert result.exit_code == 1
    line = line_of(folder / "service.py", 'print("created"')
    assert f"{folder / 'service.py'}:{line}: PRINT print() in service code" in result.output
    assert "1 violation(s) in 1 file(s)" in result.output


def test_the_command_passes_a_sound_service(service: Service, monkeypatch: pytest.MonkeyPatch):
    definition, _ = service()
    monkeypatch.setitem(SERVICES, definition.name, definition)
    result = CliRunner().invoke(cli.main, ["check", definition.name])
    assert result.exit_code == 0, result.output
    assert result.output == f"1 service(s) checked ({definition.name}): no violations\n"
