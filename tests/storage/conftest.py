"""Storage tests run on both adapters: local files, and a real S3-protocol server (moto)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from lkern.platform.storage.local import LocalObjectStore
from lkern.platform.storage.port import ObjectStore
from lkern.platform.storage.s3 import S3Location, S3ObjectStore
from lkern.platform.storage.signing import LinkSigner
from tests.conftest import IN_CI
from tests.support.s3 import CREDENTIALS, MotoServer, S3Unavailable

ADAPTERS = ["local", "s3"]


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """One moto server for the session, started here and stopped afterwards."""
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        server.start()
    except S3Unavailable as exc:
        if IN_CI:
            pytest.fail(f"the S3 server is mandatory in CI: {exc}")
        pytest.skip(f"S3 server unavailable: {exc}")
    saved = {name: os.environ.get(name) for name in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        yield server
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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
