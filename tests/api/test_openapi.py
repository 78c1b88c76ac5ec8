"""Each service's OpenAPI document says exactly what the service accepts.

The rules here are the ones Schemathesis and Redocly's recommended set found
broken (tests/system/test_fuzz.py runs Schemathesis, the last test here
Redocly's CLI): a document valid for OpenAPI 3.1, no parameter that claims to
take null, no body property that claims to take null and refuses it, e-mail
addresses and currencies as precise as the service checks them, security
declared on every operation, servers and a licence, and links from each
create to the operations on what it created (Schemathesis' stateful phase
follows them).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from openapi_spec_validator import validate
from pydantic import BaseModel, ValidationError

from lkern.orders.rules import CURRENCIES
from lkern.platform.app import create_app
from lkern.services import SERVICES
from tests.conftest import settings_for
from tests.support.tools import redocly

METHODS = {"get", "put", "post", "patch", "delete"}


@pytest.fixture(scope="module", params=sorted(SERVICES))
def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    tmp: Path = tmp_path_factory.mktemp(f"openapi-{request.param}")
    definition = SERVICES[request.param]
    url = f"sqlite+aiosqlite:///{tmp / 'db.sqlite'}"
    return create_app(definition, settings_for(definition, tmp, url), migrate=False)


@pytest.fixture(scope="module")
def document(app: FastAPI) -> dict[str, Any]:
    return app.openapi()


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


def admits_null(schema: dict[str, Any], document: dict[str, Any]) -> bool:
    if "$ref" in schema:
        return admits_null(resolve(schema["$ref"], document), document)
    if schema.get("type") == "null" or "null" in (schema.get("type") or []):
        return True
    if None in schema.get("enum", [object()]) or ("const" in schema and schema["const"] is None):
        return True
    return any(admits_null(option, document) for option in schema.get("anyOf", []))


def resolve(ref: str, document: dict[str, Any]) -> dict[str, Any]:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def properties(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for name, schema in document["components"]["schemas"].items():
        for field, field_schema in schema.get("properties", {}).items():
            yield name, field, field_schema


def test_document_is_valid_openapi(document):
    validate(document)


def test_no_parameter_claims_to_take_null(document):
    """A query string or header cannot carry JSON null: an optional one is absent."""
    nullable = [
        f"{method.upper()} {path} {parameter['in']} {parameter['name']}"
        for path, method, operation in operations(document)
        for parameter in operation.get("parameters", [])
        if admits_null(parameter["schema"], document)
    ]
    assert not nullable


def body_models(app: FastAPI) -> dict[str, type[BaseModel]]:
    models: dict[str, type[BaseModel]] = {}
    for route in app.routes:
        if isinstance(route, APIRoute) and route.body_field is not None:
            annotation = route.body_field.field_info.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                models[annotation.__name__] = annotation
    return models


def test_body_properties_that_claim_to_take_null_take_it(app, document):
    """Null clears an optional field; a field that refuses null must not offer it."""
    schemas = document["components"]["schemas"]
    refused = []
    for name, model in body_models(app).items():
        for field, schema in schemas[name].get("properties", {}).items():
            if not admits_null(schema, document):
                continue
            try:
                model.model_validate({field: None})
            except ValidationError as exc:
                # Other required fields missing is not this field's refusal.
                if any(error["loc"][:1] in {(), (field,)} for error in exc.errors()):
                    refused.append(f"{name}.{field}")
    assert not refused


def test_email_addresses_are_format_email(document):
    def is_email(schema: dict[str, Any]) -> bool:
        options = [schema, *schema.get("anyOf", [])]
        return any(option.get("format") == "email" for option in options)

    plain = [
        f"{name}.{field}"
        for name, field, schema in properties(document)
        if (field == "email" or field.endswith("_email")) and not is_email(schema)
    ]
    assert not plain


def test_currencies_in_requests_are_iso_4217_codes(app, document):
    schemas = document["components"]["schemas"]
    found = 0
    for name in body_models(app):
        currency = schemas[name].get("properties", {}).get("currency")
        if currency is None:
            continue
        found += 1
        assert sorted(currency.get("enum", [])) == sorted(CURRENCIES), name
    if app.title.startswith("L-KERN Orders"):
        assert found == 2  # create and update


PUBLIC_PATHS = ("/", "/health", "/health/ready", "/metrics")
#: Public below these: identity's keys and tokens, and files behind signed links.
PUBLIC_PREFIXES = ("/.well-known/", "/api/v1/auth/", "/files/")


def test_every_operation_declares_its_security(document):
    """Protected operations name the bearer scheme; public ones say they need nothing."""
    for path, method, operation in operations(document):
        public = path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
        expected: list[dict[str, list[str]]] = [] if public else [{"BearerAuthorization": []}]
        assert operation.get("security") == expected, f"{method.upper()} {path}"


def test_servers_and_licence_are_declared(document):
    """Servers relative to where the document is served; a licence with an SPDX identifier."""
    assert document["servers"] == [{"url": "/", "description": "This service."}]
    licence = document["info"]["license"]
    assert licence["name"] and licence["identifier"]


def links_of(document: dict[str, Any], path: str, method: str, status: str) -> dict[str, str]:
    answer = document["paths"][path][method]["responses"][status]
    return {
        name: f"{link['operationId']} {sorted(link['parameters'].items())}"
        for name, link in answer.get("links", {}).items()
    }


def answered_fields(document: dict[str, Any], answer: dict[str, Any]) -> set[str]:
    """The top-level fields of an answer's JSON body."""
    schema = answer["content"]["application/json"]["schema"]
    name = schema["$ref"].rsplit("/", 1)[1]
    return set(document["components"]["schemas"][name]["properties"])


def expected_link(target: dict[str, Any], parameter: str, answered: set[str]) -> str:
    """The key is read from the answer's field named like the path parameter (a box's
    ``box_no``) where there is one, from ``id`` otherwise; the answer must have it."""
    field = parameter if parameter in answered else "id"
    assert field in answered, (target["operationId"], parameter, sorted(answered))
    parameters = {f"path.{parameter}": f"$response.body#/{field}"}
    if any(p["name"] == "If-Match" for p in target.get("parameters", [])):
        parameters["header.If-Match"] = "$response.header.ETag"
    return f"{target['operationId']} {sorted(parameters.items())}"


def test_a_create_links_to_the_operations_on_what_it_created(document):
    """Every operation on ``{collection}/{id}`` and below, with the id and the version;
    a permanent delete follows the soft delete instead (next test), and restore is
    linked from nowhere (platform/openapi.py says why)."""
    creates = [
        path
        for path, method, operation in operations(document)
        if method == "post" and "201" in operation["responses"]
    ]
    assert creates
    for collection in creates:
        answered = answered_fields(
            document, document["paths"][collection]["post"]["responses"]["201"]
        )
        expected = {}
        for path, _, target in operations(document):
            if path.startswith(f"{collection}/{{") and not path.endswith(
                ("/permanent", "/restore")
            ):
                parameter = path.removeprefix(f"{collection}/{{").split("}")[0]
                expected[target["operationId"]] = expected_link(target, parameter, answered)
        assert expected, collection
        assert links_of(document, collection, "post", "201") == expected


def test_a_soft_delete_links_to_the_permanent_delete(document):
    paths = {path for path, _, _ in operations(document)}
    deletes = [
        path
        for path, method, _ in operations(document)
        if method == "delete" and f"{path}/permanent" in paths
    ]
    assert deletes
    for item in deletes:
        parameter = item.rsplit("{", 1)[1].rstrip("}")
        answered = answered_fields(document, document["paths"][item]["delete"]["responses"]["200"])
        expected = {
            target["operationId"]: expected_link(target, parameter, answered)
            for path, method, target in operations(document)
            if method == "delete" and path == f"{item}/permanent"
        }
        assert expected, item
        assert links_of(document, item, "delete", "200") == expected


#: Liveness, readiness, metrics and the service's name answer no 4xx: nothing
#: they take can be wrong, and they are neither authenticated nor rate-limited.
PROBES = {"/", "/health", "/health/ready", "/metrics"}


# One worker: the first run installs the CLI into .cache/.
@pytest.mark.xdist_group("redocly")
def test_redocly_recommended_rules_find_no_error(document, tmp_path):
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(document))
    linted = subprocess.run(
        [str(redocly()), "lint", "--extends=recommended", "--format=json", path.name],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "REDOCLY_TELEMETRY": "off", "REDOCLY_SUPPRESS_UPDATE_NOTICE": "true"},
    )
    report = json.loads(linted.stdout)
    problems = [
        f"{problem['severity']} {problem['ruleId']} {problem['location'][0]['pointer']}: "
        f"{problem['message']}"
        for problem in report["problems"]
    ]
    assert report["totals"]["errors"] == 0 and linted.returncode == 0, problems
    probe_pointers = {f"#/paths/{path.replace('/', '~1')}/get/responses" for path in PROBES}
    assert {
        (problem["ruleId"], problem["location"][0]["pointer"]) for problem in report["problems"]
    } <= {("operation-4xx-response", pointer) for pointer in probe_pointers}, problems
