"""Streaming multipart uploads (§8): the file goes to storage as it arrives.

FastAPI's ``UploadFile`` would spool the whole body before the route runs
and could only refuse an oversized file after receiving it. Here the body is
parsed while it is read: the type is judged from the first bytes before
anything is stored, and the size limit cuts the stream off the moment it is
passed.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from lkern.platform.errors import BadRequest, DomainError, Unprocessable
from lkern.platform.storage.sniffing import SNIFF_BYTES, sniff

FILE_FIELD = "file"
MAX_FILENAME_CHARS = 200
EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "application/pdf": "pdf",
    "text/plain": "txt",
}


class UploadTooLargeError(DomainError):
    status = 413
    title = "Content too large"
    default_code = "UPLOAD_TOO_LARGE"


class UnsupportedUploadType(DomainError):
    status = 415
    title = "Unsupported media type"
    default_code = "UPLOAD_TYPE_NOT_ALLOWED"


@dataclass(frozen=True, slots=True)
class UploadRules:
    max_bytes: int
    allowed_types: Collection[str]

    def too_large(self) -> UploadTooLargeError:
        return UploadTooLargeError(f"The file is larger than {self.max_bytes} bytes.")


@dataclass(slots=True)
class IncomingFile:
    """The ``file`` part of a multipart body, its bytes still arriving."""

    filename: str
    content_type: str
    declared_type: str | None
    #: The bytes, to be consumed once (by the object store).
    chunks: AsyncIterator[bytes]

    @property
    def extension(self) -> str:
        return EXTENSIONS.get(self.content_type, "bin")


def clean_filename(name: str | None) -> str:
    """A name safe to store and to show: no path, no control characters, bounded."""
    base = re.split(r"[/\\]", name or "")[-1]
    base = unicodedata.normalize("NFC", base)
    base = "".join(char for char in base if unicodedata.category(char)[0] != "C")
    base = base.strip().strip(".") or "file"
    if len(base) > MAX_FILENAME_CHARS:
        stem, dot, extension = base.rpartition(".")
        keep = MAX_FILENAME_CHARS - len(extension) - 1
        base = (
            f"{stem[:keep]}.{extension}"
            if dot and 0 < len(extension) < 16
            else base[:MAX_FILENAME_CHARS]
        )
    return base


@dataclass
class _Part:
    headers: dict[str, bytes] = field(default_factory=dict)
    name: str | None = None
    filename: str | None = None
    content_type: str | None = None


class _Reader:
    """Drives python-multipart's push parser from the request stream, pulling."""

    def __init__(self, request: Request, rules: UploadRules) -> None:
        content_type, options = parse_options_header(request.headers.get("content-type", ""))
        if content_type != b"multipart/form-data" or b"boundary" not in options:
            raise Unprocessable(
                "Send the file as multipart/form-data with a `file` field.",
                field="body.file",
                code="UPLOAD_MISSING",
            )
        self.rules = rules
        self.stream = request.stream()
        self.events: list[tuple[str, bytes]] = []
        self._header_field = b""
        self._header_value = b""
        self.parser = MultipartParser(
            options[b"boundary"],
            {
                "on_part_begin": lambda: self.events.append(("begin", b"")),
                "on_header_field": self._on_header_field,
                "on_header_value": self._on_header_value,
                "on_header_end": self._on_header_end,
                "on_headers_finished": lambda: self.events.append(("headers", b"")),
                "on_part_data": lambda data, start, end: self.events.append(
                    ("data", bytes(data[start:end]))
                ),
                "on_part_end": lambda: self.events.append(("end", b"")),
            },
        )
        self.finished = False

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        self.events.append(("header", self._header_field.lower() + b"\0" + self._header_value))
        self._header_field = self._header_value = b""

    async def next_events(self) -> list[tuple[str, bytes]]:
        """The parser's events for the next piece of the body (empty at its end)."""
        while not self.events and not self.finished:
            try:
                chunk = await anext(self.stream, b"")
            except ClientDisconnect:
                raise BadRequest("The upload was interrupted.", code="UPLOAD_INTERRUPTED") from None
            if not chunk:
                self.finished = True
                self.parser.finalize()
                break
            try:
                self.parser.write(chunk)
            except Exception:  # python-multipart raises its own errors, and ValueError
                raise BadRequest(
                    "The multipart body is malformed.", code="UPLOAD_MALFORMED"
                ) from None
        events, self.events = self.events, []
        return events


async def receive_file(request: Request, rules: UploadRules) -> IncomingFile:
    """Read up to the first bytes of the ``file`` part and judge them.

    Refuses, before anything is stored, a body without a file (422) and a
    file whose bytes are not of an allowed type, whatever it claims (415).
    """
    reader = _Reader(request, rules)
    part = _Part()
    head = bytearray()
    in_file = False
    while True:
        events = await reader.next_events()
        if not events and reader.finished:
            break
        for index, (kind, value) in enumerate(events):
            if kind == "begin":
                part = _Part()
            elif kind == "header":
                name, _, raw = value.partition(b"\0")
                part.headers[name.decode("latin-1")] = raw
            elif kind == "headers":
                _describe(part)
                in_file = part.name == FILE_FIELD and part.filename is not None
            elif kind == "data" and in_file:
                head += value
            elif kind == "end" and in_file:
                return _judged(part, bytes(head), reader, events[index + 1 :], rules, done=True)
            if in_file and len(head) >= SNIFF_BYTES:
                return _judged(part, bytes(head), reader, events[index + 1 :], rules, done=False)
    if in_file:
        raise BadRequest("The multipart body ended inside the file.", code="UPLOAD_MALFORMED")
    raise Unprocessable(
        "The multipart body has no `file` field with a file in it.",
        field="body.file",
        code="UPLOAD_MISSING",
    )


def _describe(part: _Part) -> None:
    disposition, options = parse_options_header(part.headers.get("content-disposition", b""))
    if disposition == b"form-data":
        if b"name" in options:
            part.name = options[b"name"].decode("utf-8", "replace")
        if b"filename" in options:
            part.filename = options[b"filename"].decode("utf-8", "replace")
    declared = part.headers.get("content-type")
    part.content_type = declared.decode("latin-1").strip().lower() if declared else None


def _judged(
    part: _Part,
    head: bytes,
    reader: _Reader,
    pending: list[tuple[str, bytes]],
    rules: UploadRules,
    *,
    done: bool,
) -> IncomingFile:
    detected = sniff(head[:SNIFF_BYTES])
    if detected is None or detected not in rules.allowed_types:
        allowed = ", ".join(sorted(rules.allowed_types))
        found = f"looks like {detected}" if detected else "is of no type we recognise"
        raise UnsupportedUploadType(
            f"The file {found}; allowed types are {allowed}.",
            extra={"detected_type": detected, "allowed_types": sorted(rules.allowed_types)},
        )
    if len(head) > rules.max_bytes:
        raise rules.too_large()
    return IncomingFile(
        filename=clean_filename(part.filename),
        content_type=detected,
        declared_type=part.content_type,
        chunks=_rest(head, reader, pending, rules, done=done),
    )


async def _rest(
    head: bytes,
    reader: _Reader,
    pending: list[tuple[str, bytes]],
    rules: UploadRules,
    *,
    done: bool,
) -> AsyncIterator[bytes]:
    size = len(head)
    if head:
        yield head
    if done:
        return
    while True:
        for kind, value in pending:
            if kind == "end":
                return
            if kind == "data":
                size += len(value)
                if size > rules.max_bytes:
                    raise rules.too_large()
                yield value
        if reader.finished:
            raise BadRequest("The multipart body ended inside the file.", code="UPLOAD_MALFORMED")
        pending = await reader.next_events()
