"""Storage tests run on both adapters: local files, and a real S3-protocol server (moto)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lkern.platform.storage.local import LocalObjectStore
from lkern.platform.storage.port import ObjectStore
from lkern.platform.storage.s3 import S3Location, S3ObjectStore
from lkern.platform.storage.signing import LinkSigner
from tests.support.s3 import MotoServer

ADAPTERS = ["local", "s3"]


def new_bucket() -> str:
    return f"lkern-test-{uuid.uuid4().hex[:12]}"


@pytest.fixture(params=ADAPTERS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ObjectStore]:
    adapter: ObjectStore
    if request.param == "local":
        adapter = LocalObjectStore(
            tmp_path / "objects", signer=LinkSigner(b"test-secret"), url_prefix="/files"
        )
    else:
        server: MotoServer = request.getfixturevalue("s3_server")
        adapter = S3ObjectStore(S3Location.parse(server.url(new_bucket())))
    await adapter.start()
    try:
        yield adapter
    finally:
        await adapter.close()
