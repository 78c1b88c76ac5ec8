"""Streaming uploads: judged from their bytes, cut off at the limit, names made safe."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from lkern.platform.errors import DomainError
from lkern.platform.storage.local import LocalObjectStore
from lkern.platform.storage.signing import LinkSigner
from lkern.platform.storage.uploads import UploadRules, clean_filename, receive_file

PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(20_000)
RULES = UploadRules(max_bytes=64 * 1024, allowed_types={"image/png", "text/plain"})


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, LocalObjectStore]]:
    store = LocalObjectStore(tmp_path, signer=LinkSigner(b"s"), url_prefix="/files")
    await store.start()

    async def upload(request: Request) -> JSONResponse:
        try:
            incoming = await receive_file(request, RULES)
            size = await store.put(
                "up/loaded", incoming.chunks, content_type=incoming.content_type, max_bytes=None
            )
        except DomainError as error:
            return JSONResponse({"code": error.code}, status_code=error.status)
        return JSONResponse(
            {"size": size, "type": incoming.content_type, "filename": incoming.filename}
        )

    app = Starlette(routes=[Route("/upload", upload, methods=["POST"])])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        yield http, store


async def test_a_png_is_stored_whole(client: tuple[httpx.AsyncClient, LocalObjectStore]) -> None:
    http, store = client
    answer = await http.post(
        "/upload",
        data={"note": "before the file"},
        files={"file": ("../../etc/pic.png", PNG, "application/octet-stream")},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"size": len(PNG), "type": "image/png", "filename": "pic.png"}
    assert b"".join([chunk async for chunk in store.read("up/loaded")]) == PNG


@pytest.mark.parametrize(
    "content",
    [b"MZ\x90\x00" + os.urandom(100), b"PK\x03\x04" + os.urandom(100), b"<html><script>x()"],
)
async def test_a_disguised_file_is_refused_and_nothing_stored(
    client: tuple[httpx.AsyncClient, LocalObjectStore], content: bytes
) -> None:
    http, store = client
    answer = await http.post("/upload", files={"file": ("cat.png", content, "image/png")})
    assert answer.status_code == 415
    assert not await store.exists("up/loaded")


async def test_too_large_is_cut_off_while_reading(
    client: tuple[httpx.AsyncClient, LocalObjectStore],
) -> None:
    http, store = client
    answer = await http.post(
        "/upload", files={"file": ("big.txt", b"a" * (RULES.max_bytes + 1), "text/plain")}
    )
    assert answer.status_code == 413
    assert not await store.exists("up/loaded")


async def test_a_body_without_a_file_is_a_422(
    client: tuple[httpx.AsyncClient, LocalObjectStore],
) -> None:
    http, _ = client
    assert (await http.post("/upload", data={"file": "not a file"})).status_code == 422
    assert (await http.post("/upload", json={"file": "x"})).status_code == 422


async def test_a_malformed_body_is_a_400(
    client: tuple[httpx.AsyncClient, LocalObjectStore],
) -> None:
    http, _ = client
    answer = await http.post(
        "/upload",
        content=b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nhi',
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert answer.status_code == 400


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("report.pdf", "report.pdf"),
        ("C:\\Users\\me\\secret.txt", "secret.txt"),
        ("../../../etc/passwd", "passwd"),
        ("bad\x00name\r\n.txt", "badname.txt"),
        ("...", "file"),
        (None, "file"),
        ("x" * 300 + ".pdf", "x" * 196 + ".pdf"),
    ],
)
def test_filenames_are_made_safe(given: str | None, stored: str) -> None:
    assert clean_filename(given) == stored
