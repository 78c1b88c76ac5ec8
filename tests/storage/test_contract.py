"""The storage contract: what every adapter guarantees, run against each."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx
import pytest

from lkern.platform.storage.port import ObjectMissing, ObjectStore, UploadTooLarge
from lkern.platform.storage.s3 import PART_BYTES, S3ObjectStore


async def chunks_of(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read_all(store: ObjectStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.read(key)])


async def test_an_object_reads_back_as_written(store: ObjectStore) -> None:
    data = os.urandom(300_000)
    size = await store.put("tests/a/b.bin", chunks_of(data), content_type="application/pdf")
    assert size == len(data)
    assert await store.exists("tests/a/b.bin")
    assert await read_all(store, "tests/a/b.bin") == data


async def test_a_large_object_streams_in_parts(store: ObjectStore) -> None:
    data = os.urandom(PART_BYTES * 2 + 12345)
    assert await store.put("tests/big.bin", chunks_of(data, 1 << 20), content_type="text/plain")
    assert await read_all(store, "tests/big.bin") == data


async def test_an_empty_object_is_an_object(store: ObjectStore) -> None:
    assert await store.put("tests/empty.txt", chunks_of(b""), content_type="text/plain") == 0
    assert await store.exists("tests/empty.txt")
    assert await read_all(store, "tests/empty.txt") == b""


async def test_over_the_limit_nothing_is_left(store: ObjectStore) -> None:
    data = os.urandom(PART_BYTES + 10)
    with pytest.raises(UploadTooLarge):
        await store.put("tests/too-big", chunks_of(data), content_type="x/y", max_bytes=PART_BYTES)
    assert not await store.exists("tests/too-big")


async def test_a_failing_stream_leaves_nothing(store: ObjectStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(PART_BYTES + 1)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.put("tests/broken", broken(), content_type="x/y")
    assert not await store.exists("tests/broken")


async def test_a_missing_object(store: ObjectStore) -> None:
    assert not await store.exists("tests/nothing")
    with pytest.raises(ObjectMissing):
        await read_all(store, "tests/nothing")


async def test_deleting_is_idempotent(store: ObjectStore) -> None:
    await store.put("tests/gone", chunks_of(b"x"), content_type="text/plain")
    await store.delete("tests/gone")
    await store.delete("tests/gone")
    assert not await store.exists("tests/gone")


async def test_overwriting_replaces_the_object(store: ObjectStore) -> None:
    await store.put("tests/same", chunks_of(b"first"), content_type="text/plain")
    await store.put("tests/same", chunks_of(b"second"), content_type="text/plain")
    assert await read_all(store, "tests/same") == b"second"


@pytest.mark.parametrize("key", ["../escape", "/absolute", "a//b", "a/../b", "", "a/.hidden"])
async def test_keys_cannot_leave_the_store(store: ObjectStore, key: str) -> None:
    with pytest.raises(ValueError):
        await store.put(key, chunks_of(b"x"), content_type="text/plain")


async def test_ping_answers(store: ObjectStore) -> None:
    await store.ping()


async def test_a_download_link_expires_later(store: ObjectStore) -> None:
    await store.put("tests/doc.pdf", chunks_of(b"%PDF-1.7"), content_type="application/pdf")
    link = await store.download_link(
        "tests/doc.pdf", filename="Datenblatt ä.pdf", content_type="application/pdf", ttl_seconds=60
    )
    assert "tests/doc.pdf" in link.url
    if isinstance(store, S3ObjectStore):
        # moto serves presigned links (it does not check their signature).
        async with httpx.AsyncClient() as client:
            answer = await client.get(link.url)
        assert answer.status_code == 200
        assert answer.content == b"%PDF-1.7"
        assert answer.headers["content-type"] == "application/pdf"
        assert answer.headers["content-disposition"].startswith("attachment;")
