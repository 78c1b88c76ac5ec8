"""Logging for every service: context on each line, redaction, per-service levels.

Under ``lkern run`` several services share one process and so one logging
tree. Each service's level must still be its own, so the effective threshold
is applied by a filter that looks up the level of the service the record was
emitted for (from a context variable), while the loggers themselves are kept
at the most verbose level any service asked for.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final, TextIO

from lkern.platform.settings import LogFormat
from lkern.platform.telemetry import current_trace_id

VALID_LEVELS: Final = ("debug", "info", "warning", "error", "critical")

#: ``extra={UNREDACTED: True}`` marks the rare line meant to show a secret once
#: (the generated bootstrap password); nothing else may use it.
UNREDACTED = "lkern_unredacted"

current_service: ContextVar[str | None] = ContextVar("lkern_service", default=None)

_levels: dict[str, int] = {}
_levels_lock = threading.Lock()
_default_level = logging.INFO

_MASK = "***"
_SECRET_KEY = r"password|passwd|secret|token|api[_-]?key|authorization"
# A secret's whole value: quoted (to its closing quote, escapes included), or bare
# up to the next separator, the next ``key=`` / ``key:`` pair or the line's end;
# a bearer scheme stays readable in front of the mask.
_SECRET_PAIR = re.compile(
    rf"(?i)(?P<key>\b[\w-]*(?:{_SECRET_KEY})[\w-]*\b[\"']?\s*[:=]\s*)"
    r"(?:(?P<quote>[\"'])(?:\\.|(?!(?P=quote))[^\\\n])*(?P=quote)"
    r"|(?P<scheme>bearer\s+)?[^\s\"',;&}](?:[^,;&}\n]*?(?=\s+[\w-]+[\"']?\s*[:=]|\s*[,;&}\n]|\s*$))?)"
)
_BEARER = re.compile(r"(?i)\bbearer\s+(?!\*\*\*)[A-Za-z0-9._~+/=-]+")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# \w is Unicode: addresses with non-ASCII names and domains are addresses too.
_EMAIL = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)+")
# The password of ``scheme://user:password@host``, whatever it holds but blanks and @.
_URL_PASSWORD = re.compile(r"(\b[A-Za-z][\w+.-]*://[^\s:/?#@]*:)[^\s@]+(?=@)")
# Bound parameters in database errors: SQLAlchemy's ``[parameters: …]`` line,
# asyncpg's "query argument $N: <value> (reason)", PostgreSQL's "Key (col)=(value)".
_SQL_PARAMETERS = re.compile(
    r"(\[parameters: )[^\n]*\]"
    r"|(query argument \$\d+: ).*?(?= \([^()\n]*\)$| \([^()\n]*\)\n|\n|$)"
    r"|(Key \([^)\n]*\)=\().*?(?=\) )",
    re.MULTILINE,
)
# A phone number: + and 7 to 15 digits, or 9 to 15 digits without it (so that
# dates and times are left alone), with the usual separators between them; a
# dotted IPv4 address is not one (log lines name the client's address).
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_PHONE = re.compile(
    rf"(?<![\w.:/-])(?!{_OCTET}(?:\.{_OCTET}){{3}}(?![\w.:/-]))"
    r"(?:\+\d(?:[\s().-]{0,2}\d){6,14}|\d(?:[\s().-]{0,2}\d){8,14})(?![\w.:/-])"
)


# _SECRET_PAIR tries every word of a line as the start of a key, which is slow
# to run on every request's log line; most lines hold no such word, nor a URL,
# an @ or a database error, which these find in one quick pass (docs/benchmarks.md).
_SECRET_WORD = re.compile(rf"(?i){_SECRET_KEY}|bearer")


def _mask_secret(match: re.Match[str]) -> str:
    quote = match["quote"] or ""
    return f"{match['key']}{match['scheme'] or ''}{quote}{_MASK}{quote}"


def _mask_parameter(match: re.Match[str]) -> str:
    lead = next(group for group in match.groups() if group is not None)
    return f"{lead}{_MASK}]" if lead.startswith("[") else f"{lead}{_MASK}"


def redact(text: str) -> str:
    """Mask secrets, e-mail addresses, URL passwords, bound SQL parameters and
    phone numbers in free text."""
    if "[parameters: " in text or "query argument $" in text or "Key (" in text:
        text = _SQL_PARAMETERS.sub(_mask_parameter, text)
    if "://" in text:
        text = _URL_PASSWORD.sub(rf"\g<1>{_MASK}", text)
    if _SECRET_WORD.search(text):
        text = _SECRET_PAIR.sub(_mask_secret, text)
        text = _BEARER.sub(f"Bearer {_MASK}", text)
    if "eyJ" in text:
        text = _JWT.sub(_MASK, text)
    if "@" in text:
        text = _EMAIL.sub("<email>", text)
    return _PHONE.sub("<phone>", text)


class ContextFilter(logging.Filter):
    """Stamps service and trace id on each record and applies the service's level."""

    def filter(self, record: logging.LogRecord) -> bool:
        service = getattr(record, "service", None) or current_service.get()
        record.service = service or "-"
        record.trace_id = current_trace_id() or "-"
        threshold = _levels.get(service, _default_level) if service else _default_level
        return record.levelno >= threshold


class RedactingFormatter(logging.Formatter):
    """Redacts the message, the exception and the stack; the line's own fields stay."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s [%(service)s] %(name)s trace=%(trace_id)s %(message)s"
        )

    def format(self, record: logging.LogRecord) -> str:
        # logging caches the traceback text on the record; another handler may
        # have cached it unredacted, so ours is always formatted afresh.
        cached, record.exc_text = record.exc_text, None
        try:
            return super().format(record)
        finally:
            record.exc_text = cached

    def formatMessage(self, record: logging.LogRecord) -> str:
        if getattr(record, UNREDACTED, False):
            return super().formatMessage(record)
        record.message = redact(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return redact(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return redact(super().formatStack(stack_info))


class JsonFormatter(logging.Formatter):
    """One JSON object per line, redacted field by field."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "service": getattr(record, "service", "-"),
            "logger": record.name,
            "trace_id": getattr(record, "trace_id", "-"),
            "message": record.getMessage()
            if getattr(record, UNREDACTED, False)
            else redact(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def level_number(name: str) -> int:
    if name.lower() not in VALID_LEVELS:
        raise ValueError(f"unknown log level {name!r}")
    return logging.getLevelNamesMapping()[name.upper()]


def configure_logging(fmt: LogFormat = LogFormat.TEXT, default_level: str = "info") -> None:
    """Install the one handler on the root logger; safe to call more than once."""
    global _default_level
    _default_level = level_number(default_level)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_lkern", False):
            root.removeHandler(handler)
    handler = build_handler(sys.stderr, fmt)
    handler._lkern = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    _apply_levels()
    # The access log repeats what the metrics and our own request log tell.
    logging.getLogger("uvicorn.access").disabled = True


def build_handler(stream: TextIO, fmt: LogFormat = LogFormat.TEXT) -> logging.Handler:
    """A handler with L-KERN's context, per-service levels and redaction."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if fmt is LogFormat.JSON else RedactingFormatter())
    return handler


def set_service_level(service: str, level: str) -> None:
    with _levels_lock:
        _levels[service] = level_number(level)
        _apply_levels()


def service_level(service: str) -> str:
    return logging.getLevelName(_levels.get(service, _default_level)).lower()


def _apply_levels() -> None:
    lowest = min([_default_level, *_levels.values()])
    logging.getLogger().setLevel(lowest)
