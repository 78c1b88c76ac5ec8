"""Schemathesis hooks of the fuzz tests (test_fuzz.py loads them with SCHEMATHESIS_HOOKS).

- An order needs a customer that contacts knows: a generated ``contact_id``
  names nobody, so every create would be refused and nothing after it reached.
  A well-formed id is swapped for a contact the test made; a malformed one
  stays, so a request meant to be invalid still is.
- A soft-deleted item is still there for ``?include_deleted=true`` (§3);
  Schemathesis takes every DELETE for a removal, so that answer is no
  "deleted resource still available".
- CPython 3.11 before 3.11.8 can fail ``ast.parse`` running in two threads at
  once ("AST constructor recursion depth mismatch", python/cpython#106905);
  Hypothesis parses source to describe lambdas, and ``--workers 2`` generates
  in two threads, so the st process parses one file at a time.
"""

from __future__ import annotations

import ast
import functools
import os
import sys
import threading
import uuid
from typing import Any

import schemathesis

CUSTOMER_VARIABLE = "LKERN_FUZZ_CUSTOMER_ID"
ASSIGNEE_VARIABLE = "LKERN_FUZZ_ASSIGNEE_ID"

# Typed as plain callables upstream; the filter chain is attached at run time.
hook: Any = schemathesis.hook


def _is_uuid(value: object) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return isinstance(value, str)


@hook("map_body").apply_to(method="POST", path="/api/v1/orders")
def a_known_customer(context: Any, body: Any) -> Any:
    customer = os.environ.get(CUSTOMER_VARIABLE)
    if customer and isinstance(body, dict) and _is_uuid(body.get("contact_id")):
        body["contact_id"] = customer
    return body


@hook("map_body").apply_to(method="POST", path="/api/v1/issues")
def known_people(context: Any, body: Any) -> Any:
    """A well-formed assignee or contact becomes a real one, or no create would succeed
    and nothing after it be reached; a malformed one stays, to be refused."""
    if isinstance(body, dict):
        for field, variable in (
            ("contact_id", CUSTOMER_VARIABLE),
            ("assignee_id", ASSIGNEE_VARIABLE),
        ):
            known = os.environ.get(variable)
            if known and _is_uuid(body.get(field)):
                body[field] = known
    return body


@hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """False drops the failure."""
    asked_for_deleted = str((case.query or {}).get("include_deleted", "")).lower() == "true"
    return not (getattr(failure, "code", None) == "ST301" and asked_for_deleted)


def _one_parse_at_a_time(parse: Any) -> Any:
    lock = threading.Lock()

    @functools.wraps(parse)
    def serialised(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return parse(*args, **kwargs)

    return serialised


if sys.version_info < (3, 11, 8):
    ast.parse = _one_parse_at_a_time(ast.parse)
