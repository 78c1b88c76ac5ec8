"""S3 going away: every call is a quick ``StorageUnavailable``, and nothing is lost."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from lkern.platform.storage.port import StorageUnavailable
from lkern.platform.storage.s3 import S3Location, S3ObjectStore
from tests.storage.conftest import new_bucket
from tests.storage.test_contract import chunks_of, read_all
from tests.support.proxy import TcpProxy
from tests.support.s3 import MotoServer


@pytest.fixture
async def proxied(s3_server: MotoServer) -> AsyncIterator[tuple[S3ObjectStore, TcpProxy]]:
    proxy = TcpProxy(s3_server.port)
    await proxy.open()
    store = S3ObjectStore(
        S3Location.parse(s3_server.url(new_bucket(), proxy.endpoint)),
        connect_timeout=0.5,
        read_timeout=1.0,
    )
    await store.start()
    try:
        yield store, proxy
    finally:
        await store.close()
        await proxy.close()


async def test_the_bucket_is_created_at_start(s3_server: MotoServer) -> None:
    store = S3ObjectStore(S3Location.parse(s3_server.url(new_bucket())))
    await store.start()
    await store.start()  # already there: fine
    await store.ping()
    await store.close()


async def test_every_call_fails_fast_while_s3_is_away(
    proxied: tuple[S3ObjectStore, TcpProxy],
) -> None:
    store, proxy = proxied
    await store.put("kept/object", chunks_of(b"precious"), content_type="text/plain")
    await proxy.close()
    calls = {
        "ping": store.ping(),
        "put": store.put("kept/other", chunks_of(b"x"), content_type="text/plain"),
        "exists": store.exists("kept/object"),
        "delete": store.delete("kept/object"),
        "link": store.download_link(
            "kept/object", filename="a.txt", content_type="text/plain", ttl_seconds=5
        ),
    }
    for name, call in calls.items():
        started = time.perf_counter()
        if name == "link":
            # Presigning is local arithmetic: it needs no answer from S3.
            await call
            continue
        with pytest.raises(StorageUnavailable):
            await call
        assert time.perf_counter() - started < 5, f"{name} hung"
    await proxy.open()
    assert await read_all(store, "kept/object") == b"precious"
    assert not await store.exists("kept/other")


async def test_a_missing_bucket_is_unavailable_not_a_crash(s3_server: MotoServer) -> None:
    store = S3ObjectStore(S3Location.parse(s3_server.url(new_bucket())))
    with pytest.raises(StorageUnavailable):
        await store.ping()
    await store.close()
