"""What reaches the logs: never e-mail addresses, phone numbers, passwords or tokens."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest

from lkern.platform.logging import build_handler, current_service
from lkern.platform.settings import LogFormat

EMAIL = "Grace.Hopper@Navy.example"
PHONE = "+421 905 765 432"
SECRETS = [
    EMAIL,
    EMAIL.lower(),
    "grace.hopper",
    PHONE,
    "+421905765432",
    "905765432",
    "hunter2",
    "eyJhbGciOi",
]


@pytest.fixture(params=list(LogFormat))
def log_output(request, contacts_service) -> Iterator[io.StringIO]:
    """Everything logged at DEBUG (SQL statements and parameters included) while a test runs."""
    stream = io.StringIO()
    handler = build_handler(stream, request.param)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    from lkern.platform.logging import service_level, set_service_level

    before = service_level("contacts")
    set_service_level("contacts", "debug")
    engine_logger = logging.getLogger("sqlalchemy.engine")
    engine_logger.setLevel(logging.INFO)  # statements with their parameters
    try:
        yield stream
    finally:
        engine_logger.setLevel(logging.NOTSET)
        set_service_level("contacts", before)
        root.removeHandler(handler)
        root.setLevel(previous)


def assert_clean(text: str) -> None:
    assert text, "nothing was logged"
    lowered = text.lower()
    for secret in SECRETS:
        at = lowered.find(secret.lower())
        assert at < 0, f"{secret!r} leaked into the logs: ...{text[max(0, at - 300) : at + 100]}..."


async def test_create_and_failures_leak_nothing(contacts: httpx.AsyncClient, log_output):
    created = await contacts.post(
        "/api/v1/contacts", json={"name": "Grace", "email": EMAIL, "phone": PHONE}
    )
    assert created.status_code == 201
    duplicate = await contacts.post(
        "/api/v1/contacts", json={"name": "Grace", "email": EMAIL, "phone": PHONE}
    )
    assert duplicate.status_code == 409
    invalid = await contacts.post(
        "/api/v1/contacts",
        json={"name": "Grace", "email": "grace.hopper@", "password": "hunter2"},
        headers={"Authorization": "Bearer eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2ln"},
    )
    assert invalid.status_code == 401  # a forged token: refused, and not logged
    text = log_output.getvalue()
    assert "POST /api/v1/contacts -> 201" in text
    assert "INSERT INTO contacts" in text  # the SQL was logged, its parameters masked
    assert_clean(text)


def test_exception_text_is_redacted(log_output):
    token = current_service.set("contacts")
    try:
        try:
            raise ValueError(f"cannot mail {EMAIL} or call {PHONE}; password=hunter2")
        except ValueError:
            logging.getLogger("lkern.contacts.test").exception("failed for %s", EMAIL)
    finally:
        current_service.reset(token)
    text = log_output.getvalue()
    assert "ValueError" in text, text[-3000:]
    assert_clean(text)


def test_json_lines_carry_context(contacts_service):
    stream = io.StringIO()
    handler = build_handler(stream, LogFormat.JSON)
    logger = logging.getLogger("lkern.contacts.json_test")
    logger.addHandler(handler)
    logger.propagate = False
    token = current_service.set("contacts")
    try:
        logger.warning("hello %s", "world")
    finally:
        current_service.reset(token)
        logger.removeHandler(handler)
    entry = json.loads(stream.getvalue())
    assert entry["message"] == "hello world"
    assert entry["service"] == "contacts" and entry["level"] == "WARNING"
    assert {"timestamp", "logger", "trace_id"} <= set(entry)
