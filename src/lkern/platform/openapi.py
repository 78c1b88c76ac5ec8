"""The OpenAPI document of a service, as precise as the service itself.

FastAPI writes an optional parameter (``X | None = None``) as ``anyOf: [X,
null]``; a query string or a header cannot carry JSON null, so an optional
parameter is one that may be absent (``required: false``) and its schema is
``X`` alone. Links lead from a create to the operations on what it created,
which is what Schemathesis' stateful phase and client generators follow.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI

#: Relative to where the document is served: each service answers on its own host and port.
SERVERS: list[dict[str, str]] = [{"url": "/", "description": "This service."}]
LICENSE: dict[str, str] = {"name": "Proprietary", "identifier": "LicenseRef-LKERN-Proprietary"}

_METHODS = ("get", "put", "post", "patch", "delete")
Document = dict[str, Any]


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the refined document, built once."""
    generate = app.openapi

    def openapi() -> Document:
        if app.openapi_schema is None:
            app.openapi_schema = refine(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def refine(document: Document) -> Document:
    for _, _, operation in _operations(document):
        for parameter in operation.get("parameters", []):
            parameter["schema"] = without_null(parameter["schema"])
    _link_resources(document)
    return document


def _operations(document: Document) -> Iterator[tuple[str, str, Document]]:
    for path, item in document.get("paths", {}).items():
        for method in _METHODS:
            if method in item:
                yield path, method, item[method]


def without_null(schema: Document) -> Document:
    """``schema`` without the ``null`` of an ``anyOf``."""
    options = [option for option in schema.get("anyOf", []) if option != {"type": "null"}]
    if "anyOf" not in schema or len(options) == len(schema["anyOf"]):
        return schema
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**options[0], **rest} if len(options) == 1 else {**rest, "anyOf": options}


def _link_resources(document: Document) -> None:
    """Links along a resource's life, each passing the id and, where the target takes
    If-Match, the version just answered.

    ``POST {collection}`` (201) links to the operations on ``{collection}/{id}`` and
    below it; the soft ``DELETE {collection}/{id}`` links to the permanent ``DELETE …``
    below it, the one place a permanent delete follows (Schemathesis takes a DELETE to
    remove what is below its path, so ``…/permanent`` straight after a create would make
    every later 404 look like a lost resource). ``…/restore`` is linked from nowhere:
    Schemathesis counts no POST below an item as bringing it back, so a restored item
    would look like a deleted one still answering.
    """
    operations = [
        (path, method, operation)
        for path, method, operation in _operations(document)
        if not path.endswith("/restore")
    ]
    for path, method, operation in operations:
        if method == "post" and "201" in operation.get("responses", {}):
            answer, collection = operation["responses"]["201"], path
            targets = [
                (target_path, target)
                for target_path, target_method, target in operations
                if _id_parameter(collection, target_path) is not None
                and not (target_method == "delete" and not target_path.endswith("}"))
            ]
        elif method == "delete" and path.endswith("}") and "200" in operation["responses"]:
            answer, collection = operation["responses"]["200"], path.rsplit("/", 1)[0]
            targets = [
                (target_path, target)
                for target_path, target_method, target in operations
                if target_method == "delete" and target_path == f"{path}/permanent"
            ]
        else:
            continue
        links = {
            target["operationId"]: _link(target, parameter, _id_field(document, answer, parameter))
            for target_path, target in targets
            for parameter in [_id_parameter(collection, target_path)]
        }
        if links:
            answer["links"] = links


def _id_field(document: Document, answer: Document, parameter: str | None) -> str:
    """The answer's field carrying the item's key: the one named like the path
    parameter (a box's ``box_no``) if the answer has it, otherwise ``id``."""
    schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
    reference = schema.get("$ref", "")
    if reference.startswith("#/components/schemas/"):
        schema = document["components"]["schemas"].get(reference.rsplit("/", 1)[1], {})
    return parameter if parameter and parameter in schema.get("properties", {}) else "id"


def _link(target: Document, parameter: str | None, field: str) -> Document:
    parameters = {f"path.{parameter}": f"$response.body#/{field}"}
    if any(p["name"] == "If-Match" for p in target.get("parameters", [])):
        parameters["header.If-Match"] = "$response.header.ETag"
    return {
        "operationId": target["operationId"],
        "parameters": parameters,
        "description": f"The `{parameter}` and version just answered.",
    }


def _id_parameter(collection: str, path: str) -> str | None:
    """``contact_id`` for ``/api/v1/contacts/{contact_id}…`` under ``/api/v1/contacts``."""
    rest = path.removeprefix(f"{collection}/{{")
    if rest == path or "}" not in rest:
        return None
    return rest.split("}", 1)[0]
