"""§2's list contract, read from the service's OpenAPI document: what clients see."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from lkern.conformance.subject import Subject, Violation, source_location
from lkern.platform.pagination import DEFAULT_LIMIT, DEFAULT_MAX_LIMIT

ENVELOPE = "LIST-ENVELOPE"
PAGING = "LIST-PAGING"
QUERY = "LIST-QUERY"
SLASH = "LIST-SLASH"

#: ``/api/v1/<things>``: a resource's collection.
COLLECTION = re.compile(r"/api/v\d+/[^/{}]+")

ENVELOPE_FIELDS = {
    "items": "array",
    "total": "integer",
    "total_exact": "boolean",
    "skip": "integer",
    "limit": "integer",
    "has_more": "boolean",
}
#: What a soft-deletable resource's collection takes besides paging.
FULL_QUERY = ("search", "sort_by", "sort_order", "include_deleted")


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _answer(operation: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    content = operation.get("responses", {}).get("200", {}).get("content", {})
    return _resolve(content.get("application/json", {}).get("schema", {}), document)


def _type(schema: dict[str, Any], document: dict[str, Any]) -> str | None:
    schema = _resolve(schema, document)
    kind = schema.get("type")
    return kind if isinstance(kind, str) else None


def is_page(schema: dict[str, Any], document: dict[str, Any]) -> bool:
    items = schema.get("properties", {}).get("items")
    return (
        schema.get("type") == "object" and items is not None and _type(items, document) == "array"
    )


def envelope_problems(schema: dict[str, Any], document: dict[str, Any]) -> list[str]:
    if schema.get("type") != "object":
        kind = schema.get("type")
        return [f"it answers {'an ' + kind if kind == 'array' else kind or 'no JSON object'}"]
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    problems = []
    for name, kind in ENVELOPE_FIELDS.items():
        if name not in properties:
            problems.append(f"no {name}")
        elif _type(properties[name], document) != kind:
            problems.append(f"{name} is not {'an' if kind[0] in 'ai' else 'a'} {kind}")
        elif name not in required:
            problems.append(f"{name} is optional")
    return problems


def paging_problems(parameters: dict[str, dict[str, Any]], document: dict[str, Any]) -> list[str]:
    problems = []
    skip = _resolve(parameters.get("skip", {}).get("schema", {}), document)
    if not skip:
        problems.append("no skip")
    elif skip.get("type") != "integer" or skip.get("minimum") != 0 or skip.get("default") != 0:
        problems.append("skip is not an integer ≥ 0 defaulting to 0")
    limit = _resolve(parameters.get("limit", {}).get("schema", {}), document)
    if not limit:
        problems.append("no limit")
    else:
        most = limit.get("maximum")
        if limit.get("type") != "integer" or limit.get("minimum") != 1:
            problems.append("limit is not an integer ≥ 1")
        if not isinstance(most, int) or most > DEFAULT_MAX_LIMIT:
            problems.append(f"limit has no maximum of at most {DEFAULT_MAX_LIMIT}")
        elif limit.get("default") != min(DEFAULT_LIMIT, most):
            problems.append(f"limit does not default to {min(DEFAULT_LIMIT, most)}")
    return problems


def query_problems(
    parameters: dict[str, dict[str, Any]], document: dict[str, Any], *, complete: bool
) -> list[str]:
    """The search, sort and deleted-items parameters: well formed where present, all
    present when ``complete``."""
    problems = []
    schemas = {
        name: _resolve(parameters[name]["schema"], document)
        for name in FULL_QUERY
        if name in parameters
    }
    if complete:
        problems += [f"no {name}" for name in FULL_QUERY if name not in schemas]
    options = [_resolve(o, document) for o in schemas.get("search", {}).get("anyOf", [])]
    search = next((o for o in options if o.get("type") == "string"), schemas.get("search"))
    if search is not None and search.get("minLength") != 2:
        problems.append("search does not need at least 2 characters")
    sort_by = schemas.get("sort_by")
    if sort_by is not None and not sort_by.get("enum"):
        problems.append("sort_by is not an enum of the sortable fields")
    sort_order = schemas.get("sort_order")
    if sort_order is not None and set(sort_order.get("enum", [])) != {"asc", "desc"}:
        problems.append("sort_order is not asc|desc")
    deleted = schemas.get("include_deleted")
    if deleted is not None and (deleted.get("type") != "boolean" or deleted.get("default")):
        problems.append("include_deleted is not a boolean defaulting to false")
    return problems


def check_lists(subject: Subject) -> Iterator[Violation]:
    document = subject.openapi
    paths = document["paths"]
    for route in subject.own_routes:
        where = source_location(route.endpoint)
        if route.path_format.endswith("/") and route.path_format != "/":
            yield Violation(*where, SLASH, f"{route.path} ends in '/': collection routes do not")
        if "GET" not in (route.methods or ()):
            continue
        operation = paths.get(route.path_format, {}).get("get")
        if operation is None:
            continue
        answer = _answer(operation, document)
        # /api/v1/<things> is a collection when it answers many, or has items below it.
        collection = COLLECTION.fullmatch(route.path_format) is not None and (
            answer.get("type") == "array"
            or is_page(answer, document)
            or any(other.startswith(f"{route.path_format}/{{") for other in paths)
        )
        if not (collection or is_page(answer, document)):
            continue
        shown = f"GET {route.path}"
        problems = envelope_problems(answer, document)
        if problems:
            yield Violation(
                *where,
                ENVELOPE,
                f"{shown} does not answer §2's page {{items, total, total_exact, skip, limit, "
                f"has_more}}: {'; '.join(problems)}",
            )
        parameters = {
            p["name"]: p for p in operation.get("parameters", []) if p.get("in") == "query"
        }
        problems = paging_problems(parameters, document)
        if problems:
            yield Violation(
                *where, PAGING, f"{shown} does not page as §2 says: {'; '.join(problems)}"
            )
        # A resource that can be soft-deleted (and restored) is a full §2 resource.
        soft_deleted = any(
            other.startswith(f"{route.path_format}/{{") and other.endswith("/restore")
            for other in paths
        )
        problems = query_problems(parameters, document, complete=collection and soft_deleted)
        if problems:
            yield Violation(
                *where, QUERY, f"{shown} does not search and sort as §2 says: {'; '.join(problems)}"
            )
