"""Pure platform pieces: codes, trace context, settings, redaction, search patterns."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from lkern.platform.codes import CODE_PATTERN, format_code, period_of
from lkern.platform.logging import redact
from lkern.platform.pagination import like_pattern
from lkern.platform.settings import load_settings
from lkern.platform.telemetry import current_traceparent, parse_traceparent


def test_code_format_grows_past_four_digits():
    assert format_code("BUG", "2512", 1) == "BUG-2512-0001"
    assert format_code("BUG", "2512", 12345) == "BUG-2512-12345"
    assert CODE_PATTERN.match("BUG-2512-12345")


def test_period_is_utc_year_and_month():
    assert period_of(datetime(2025, 12, 31, 23, 59, tzinfo=UTC)) == "2512"


def test_traceparent_round_trip_keeps_trace_id():
    header = current_traceparent()  # outside any span: a new trace
    _, trace_id, span_id, flags = header.split("-")
    parsed = parse_traceparent(header)
    assert parsed is not None and parsed.is_remote  # the caller's span, our spans' parent
    assert (f"{parsed.trace_id:032x}", f"{parsed.span_id:016x}") == (trace_id, span_id)
    assert parsed.trace_flags.sampled and flags == "01"


@pytest.mark.parametrize(
    "header",
    [None, "", "garbage", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", "00-abc-def-01"],
)
def test_invalid_traceparent_is_ignored(header):
    assert parse_traceparent(header) is None


def test_service_settings_override_global(monkeypatch):
    monkeypatch.setenv("LKERN_DATABASE_URL", "sqlite+aiosqlite:///global.db")
    monkeypatch.setenv("LKERN_CONTACTS_DATABASE_URL", "postgresql+asyncpg://h/contacts")
    monkeypatch.setenv("LKERN_LOG_LEVEL", "debug")
    contacts = load_settings("contacts")
    assert contacts.database_url == "postgresql+asyncpg://h/contacts"
    assert contacts.log_level == "debug"
    assert load_settings("orders").database_url == "sqlite+aiosqlite:///global.db"


def test_default_database_is_sqlite_under_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("LKERN_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("LKERN_DATABASE_URL", raising=False)
    url = load_settings("contacts").resolved_database_url("contacts")
    assert url == f"sqlite+aiosqlite:///{tmp_path}/contacts/contacts.db"


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("user ada@example.com logged in", "ada@example.com"),
        ("call +421 905 123 456", "905 123 456"),
        ("password=hunter2&x=1", "hunter2"),
        ('{"refresh_token": "abc.def"}', "abc.def"),
        ("Authorization: Bearer abc123", "abc123"),
    ],
)
def test_redaction(text, hidden):
    assert hidden not in redact(text)


@pytest.mark.parametrize(
    "text", ["2026-11-22 03:46:31", "took 12.5 ms", "id 0196a5e2-1234-7abc-8def-0123456789ab"]
)
def test_redaction_leaves_ordinary_text(text):
    assert redact(text) == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Whole secret values, however many words: JSON, Python reprs, key=value.
        (
            '{"password": "correct horse battery staple", "email_verified": true}',
            '{"password": "***", "email_verified": true}',
        ),
        ('{"password": "say \\"hi\\" twice"}', '{"password": "***"}'),
        ("{'new_password': 'correct horse battery staple'}", "{'new_password': '***'}"),
        ("password=correct horse battery staple", "password=***"),
        ("password=correct horse battery staple user=ada", "password=*** user=ada"),
        ("password='correct horse' remember=yes", "password='***' remember=yes"),
        ("client_secret=s3 cr3t&grant_type=refresh", "client_secret=***&grant_type=refresh"),
        ("Authorization: Bearer abc.def.ghi", "Authorization: Bearer ***"),
        # E-mail addresses beyond ASCII.
        ("sent to josé.müller@bücher.example today", "sent to <email> today"),
        ("invite 用户@例子.广告", "invite <email>"),
        ("cc Ødegård@Ålesund.NO,", "cc <email>,"),
        # Credentials in URLs, whatever the scheme, with or without a dotted host.
        (
            "connecting to postgresql+asyncpg://lkern:s3cr3t@db:5432/lkern",
            "connecting to postgresql+asyncpg://lkern:***@db:5432/lkern",
        ),
        ("broker redis://:hunter2@redis.internal/0 up", "broker redis://:***@redis.internal/0 up"),
        ("s3 https://AKIA:wJalr/K7MDENG+bPxRfi@s3.example/b", "s3 https://AKIA:***@s3.example/b"),
        # Bound parameters in a logged database error.
        (
            "(sqlite3.IntegrityError) UNIQUE constraint failed: users.email\n"
            "[SQL: INSERT INTO users (name, secret_answer) VALUES (?, ?)]\n"
            "[parameters: ('Grace Hopper', 'my first ship')]\n"
            "(Background on this error at: https://sqlalche.me/e/21/gkpj)",
            "(sqlite3.IntegrityError) UNIQUE constraint failed: users.email\n"
            "[SQL: INSERT INTO users (name, secret_answer) VALUES (?, ?)]\n"
            "[parameters: ***]\n"
            "(Background on this error at: https://sqlalche.me/e/21/gkpj)",
        ),
        (
            "invalid input for query argument $5: 'Grace Hopper' (expected int, got str)",
            "invalid input for query argument $5: *** (expected int, got str)",
        ),
        (
            "DETAIL:  Key (name)=(Grace Hopper) already exists.",
            "DETAIL:  Key (name)=(***) already exists.",
        ),
    ],
)
def test_redaction_masks_whole_values(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "GET /api/v1/orders?sort_by=total -> 200 in 1.2 ms",
        "gRPC /lkern.proto.contacts.v1.ContactsService/ValidateContact from orders -> OK",
        "listening on http://127.0.0.1:8001",
        "[SQL: SELECT orders.id FROM orders]",
    ],
)
def test_redaction_leaves_ordinary_lines_alone(text):
    assert redact(text) == text


def test_like_pattern_escapes_wildcards():
    assert like_pattern("50%_off\\") == "%50\\%\\_off\\\\%"


def test_retry_delays_double_and_only_grow_despite_jitter():
    from lkern.platform.events.consumer import RetryPolicy

    policy = RetryPolicy(retries=3, base_seconds=0.5, max_seconds=30)
    for _ in range(200):
        delays = [policy.delay(retry) for retry in (1, 2, 3)]
        assert delays == sorted(delays)
        assert 0.5 <= delays[0] <= 0.625 and 1.0 <= delays[1] <= 1.25 and 2.0 <= delays[2] <= 2.5
    assert policy.delay(20) <= 30 * 1.25


def test_traceback_cached_by_another_handler_is_still_redacted():
    import io
    import logging
    import sys

    from lkern.platform.logging import build_handler

    try:
        raise ValueError("mail ada@example.com")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    logging.Formatter().format(record)  # another handler got there first and cached it
    assert "ada@example.com" in (record.exc_text or "")
    stream = io.StringIO()
    build_handler(stream).handle(record)
    assert "ada@example.com" not in stream.getvalue()
    assert "ValueError" in stream.getvalue()


def test_a_read_statement_cannot_expand_its_parameters():
    """``IN (:ids)`` renders per call; the read lane compiles each statement once."""
    from sqlalchemy import bindparam, select
    from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect

    from lkern.contacts.models import Contact
    from lkern.platform.reads import _compile

    dialect = asyncpg_dialect.dialect()
    with pytest.raises(ValueError, match="expanding"):
        _compile(select(Contact).where(Contact.id.in_([uuid.uuid4()])), dialect)
    compiled = _compile(select(Contact).where(Contact.id == bindparam("item_id")).limit(5), dialect)
    assert compiled.names == ("item_id", "param_1")
    assert compiled.arguments({"item_id": "x"}) == ["x", 5]
    assert compiled.keys[:2] == ("name", "email")


async def test_the_bounded_count_writes_its_cap_into_the_sql():
    """A bound LIMIT makes PostgreSQL's generic plan of the count a seq scan."""
    from sqlalchemy import select
    from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect

    from lkern.contacts.models import Contact
    from lkern.platform import pagination

    class Recording:
        statement: Any = None

        async def execute(self, statement: Any) -> Any:
            self.statement = statement
            return type("Result", (), {"scalar_one": lambda self: 7})()

    session = Recording()
    assert await pagination.count_bounded(session, select(Contact)) == (7, True)  # type: ignore[arg-type]
    compiled = session.statement.compile(dialect=asyncpg_dialect.dialect())
    assert f"LIMIT {pagination.TOTAL_CAP + 1}" in str(compiled)
    assert not compiled.params
