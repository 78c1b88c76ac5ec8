"""The shared event contract: generated documents that match the code and the wire."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
from click.testing import CliRunner

from lkern.cli import main
from lkern.events import EventData, event_types
from lkern.platform.events.asyncapi import asyncapi_document
from lkern.services import SERVICES
from tests.events.helpers import collect

DOCS = Path(__file__).parents[2] / "docs" / "events"


def test_committed_documents_are_what_the_code_generates(tmp_path: Path):
    result = CliRunner().invoke(main, ["events", "schema", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    generated = {path.name: path.read_text() for path in tmp_path.iterdir()}
    committed = {path.name: path.read_text() for path in DOCS.iterdir()}
    assert generated == committed, "run `lkern events schema` and commit docs/events"


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []


def _declared() -> list[type[EventData]]:
    return [cls for definition in SERVICES.values() for cls in definition.produces]


def _emitted_names(package: Path) -> set[str]:
    """Event classes a package builds (``OrderCreated(…)``, to emit) or hands the
    platform to emit (``LifecycleEvents(updated=ContactUpdated, …)``,
    ``FileSlot(added=IssueAttachmentAdded, …)``)."""
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            names.add(node.func.id)
            names |= {kw.value.id for kw in node.keywords if isinstance(kw.value, ast.Name)}
    return names


def test_each_service_declares_exactly_the_events_it_emits():
    for name, definition in SERVICES.items():
        emitted = _emitted_names(definition.migrations_dir.parent)
        own = {cls.__name__ for cls in event_types(name)}
        assert {cls.__name__ for cls in definition.produces} == emitted & own, name


def test_every_registered_event_is_declared_by_its_producer():
    assert sorted(cls.event_type for cls in _declared()) == [
        cls.event_type for cls in event_types()
    ]


def test_asyncapi_document_is_complete_and_its_references_resolve():
    document = asyncapi_document(SERVICES)
    assert document["asyncapi"].startswith("3.")
    assert set(document["channels"]) == {cls.event_type for cls in _declared()}
    for ref in _refs(document):
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]  # KeyError means a dangling reference
    sends = {
        op["channel"]["$ref"] for op in document["operations"].values() if op["action"] == "send"
    }
    assert len(sends) == len(_declared())


async def test_published_events_validate_against_their_schema(contacts_app):
    async with contacts_app.client() as client:
        created = (
            await client.post("/api/v1/contacts", json={"name": "S", "email": "s@example.com"})
        ).json()
        url = f"/api/v1/contacts/{created['id']}"
        await client.patch(url, json={"phone": "+421905123456"})
        await client.delete(url)
        await client.post(f"{url}/restore")
        await client.delete(f"{url}/permanent")
    topics = [cls.event_type for cls in SERVICES["contacts"].produces]
    seen = await collect(contacts_app.runtime.broker, topics, 5)
    assert len(seen) == 5
    for message in seen:
        schema = json.loads((DOCS / f"{message.message.topic}.schema.json").read_text())
        jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(
            message.event
        )


async def test_metrics_show_outbox_and_consumer_figures(contacts_app, ledger_app):
    async with contacts_app.client() as client:
        await client.post("/api/v1/contacts", json={"name": "M", "email": "m@example.com"})
        from tests.events.helpers import eventually

        async def published() -> bool:
            text = (await client.get("/metrics")).text
            return bool(re.search(r"^lkern_outbox_published_total 1\.0$", text, re.M))

        await eventually(published)
        text = (await client.get("/metrics")).text
    assert re.search(r"^lkern_outbox_backlog 0\.0$", text, re.M)
    assert re.search(r"^lkern_outbox_publish_lag_seconds_count 1\.0$", text, re.M)
    assert "# TYPE lkern_consumer_events_total counter" in text
    assert re.search(
        r'^lkern_http_requests_total\{method="POST",route="/api/v1/contacts",status="201"\} 1\.0$',
        text,
        re.M,
    )
    assert "lkern_http_request_duration_seconds_bucket" in text
    assert re.search(r"^lkern_db_pool_size \d", text, re.M)
    assert re.search(r'^lkern_contacts\{state="active"\} 1\.0$', text, re.M)

    from tests.events.helpers import eventually

    async def consumed() -> bool:
        async with ledger_app.client() as ledger:
            body = (await ledger.get("/metrics")).text
        return (
            'lkern_consumer_events_total{outcome="processed",topic="lkern.contacts.created"} 1.0'
            in body
        )

    await eventually(consumed)
