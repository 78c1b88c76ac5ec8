"""What a file is, told from its first bytes rather than from what the client says.

Only the types an allow-list can name are recognised; anything else is
``None``, and a file that looks like a program, an archive or a page a
browser would run is named as such so the refusal can say so.
"""

from __future__ import annotations

#: Enough for every signature below and for judging whether text is text.
SNIFF_BYTES = 4096

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"%PDF-", "application/pdf"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"MZ", "application/x-msdownload"),
    (b"\x7fELF", "application/x-executable"),
    (b"\xcf\xfa\xed\xfe", "application/x-mach-binary"),
    (b"\xca\xfe\xba\xbe", "application/x-mach-binary"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
    (b"7z\xbc\xaf\x27\x1c", "application/x-7z-compressed"),
    (b"Rar!\x1a\x07", "application/vnd.rar"),
    (b"BZh", "application/x-bzip2"),
    (b"\xfd7zXZ\x00", "application/x-xz"),
    (b"\x00asm", "application/wasm"),
)

# Markup a browser renders or runs, looked for at the start of text (after
# whitespace and a byte-order mark), case-insensitively.
_MARKUP = (b"<!doctype", b"<html", b"<head", b"<body", b"<script", b"<svg", b"<?xml", b"<iframe")

_TEXT_CONTROLS = {0x09, 0x0A, 0x0C, 0x0D}


def sniff(head: bytes) -> str | None:
    """The media type of a file starting with ``head``, or None when unknown."""
    for signature, media_type in _SIGNATURES:
        if head.startswith(signature):
            return media_type
    if not head:
        return None
    text = head.removeprefix(b"\xef\xbb\xbf")
    if text.startswith(b"#!"):
        return "text/x-shellscript"
    if text.lstrip().lower().startswith(_MARKUP) or b"<script" in text.lower():
        return "text/html"
    return "text/plain" if _is_text(text) else None


def _is_text(data: bytes) -> bool:
    if any(byte < 0x20 and byte not in _TEXT_CONTROLS for byte in data):
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        # The sniffed head may end inside a multi-byte character.
        return exc.start >= len(data) - 3 and exc.reason == "unexpected end of data"
    return True
