"""Storage rules that need no store: link signatures, type sniffing, URLs."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from lkern.platform.storage.headers import content_disposition
from lkern.platform.storage.s3 import S3Location
from lkern.platform.storage.signing import ExpiredLink, InvalidSignature, LinkSigner, SignedDownload
from lkern.platform.storage.sniffing import sniff

SIGNER = LinkSigner(b"k" * 32)
DOWNLOAD = SignedDownload("issues/1/2.pdf", "report.pdf", "application/pdf", 2_000_000_000)


def _verify(
    changes: dict[str, str] | None = None,
    *,
    signer: LinkSigner = SIGNER,
    now: float = 1_999_999_000,
) -> None:
    """Verify DOWNLOAD's link as SIGNER made it, with ``changes`` made to its query."""
    query = {name: values[0] for name, values in parse_qs(SIGNER.query(DOWNLOAD)).items()}
    query.update(changes or {})
    signer.verify(
        DOWNLOAD.key,
        expires=int(query["expires"]),
        filename=query["filename"],
        content_type=query["content_type"],
        signature=query["signature"],
        now=now,
    )


def test_a_genuine_link_verifies() -> None:
    _verify()


def test_a_link_is_refused_from_its_expiry_on() -> None:
    with pytest.raises(ExpiredLink):
        _verify(now=DOWNLOAD.expires)
    with pytest.raises(ExpiredLink):
        _verify(now=DOWNLOAD.expires + 1)


@pytest.mark.parametrize(
    "change",
    [
        {"expires": str(DOWNLOAD.expires + 3600)},
        {"filename": "report.html"},
        {"content_type": "text/html"},
        {"signature": "AAAA"},
        {"signature": "÷"},  # not ASCII: refused, not a TypeError
    ],
)
def test_an_altered_link_is_refused(change: dict[str, str]) -> None:
    with pytest.raises(InvalidSignature):
        _verify(change)


def test_another_key_is_refused() -> None:
    with pytest.raises(InvalidSignature):
        _verify(signer=LinkSigner(b"other" * 8))


@pytest.mark.parametrize(
    ("head", "media_type"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "image/png"),
        (b"%PDF-1.7\n", "application/pdf"),
        (b"plain words\nand lines\t\r\n", "text/plain"),
        ("Grüße, 東京".encode(), "text/plain"),
        ("ends mid-character é".encode()[:-1], "text/plain"),
        (b"MZ\x90\x00", "application/x-msdownload"),
        (b"\x7fELF\x02\x01", "application/x-executable"),
        (b"PK\x03\x04", "application/zip"),
        (b"\x1f\x8b\x08", "application/gzip"),
        (b"  <!DOCTYPE html><html>", "text/html"),
        (b"\xef\xbb\xbf<html><body>", "text/html"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'>", "text/html"),
        (b"hello <script>alert(1)</script>", "text/html"),
        (b"#!/bin/sh\nrm -rf /", "text/x-shellscript"),
        (b"\x00\x01\x02binary", None),
        (b"", None),
    ],
)
def test_sniffing_names_what_the_bytes_are(head: bytes, media_type: str | None) -> None:
    assert sniff(head) == media_type


def test_an_s3_url_names_bucket_endpoint_and_region() -> None:
    location = S3Location.parse("s3://files?endpoint=http://127.0.0.1:9000&region=eu-central-1")
    assert location == S3Location("files", "http://127.0.0.1:9000", "eu-central-1")
    assert S3Location.parse("s3://plain") == S3Location("plain", None, None)
    with pytest.raises(ValueError):
        S3Location.parse("file:///tmp")


def test_content_disposition_keeps_the_name_and_an_ascii_fallback() -> None:
    value = content_disposition('Bericht "Q1" ä.pdf')
    assert value.startswith("attachment; filename=\"Bericht 'Q1' _.pdf\"")
    assert "filename*=UTF-8''Bericht%20%22Q1%22%20%C3%A4.pdf" in value
