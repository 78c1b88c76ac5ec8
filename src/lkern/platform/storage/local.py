"""Objects as files under one folder: the embedded default (``file:///path``).

File work runs in threads, never on the event loop. An object is written to
a temporary file beside its place, synced and renamed, so a crash or a
refused upload never leaves half an object under a real key.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, ParamSpec, TypeVar

from lkern.platform.storage.port import (
    DownloadLink,
    ObjectMissing,
    ObjectStore,
    StorageUnavailable,
    UploadTooLarge,
    check_key,
)
from lkern.platform.storage.signing import LinkSigner, SignedDownload

CHUNK_BYTES = 256 * 1024
#: Path of the signed download route each service with local files serves.
LOCAL_FILES_PREFIX = "/files"

P = ParamSpec("P")
T = TypeVar("T")


class LocalObjectStore(ObjectStore):
    kind = "local"

    def __init__(self, root: Path, *, signer: LinkSigner, url_prefix: str) -> None:
        self.root = root
        self.signer = signer
        #: Path of the owning service's signed download route.
        self.url_prefix = url_prefix.rstrip("/")

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def start(self) -> None:
        await self._io(self.root.mkdir, parents=True, exist_ok=True)

    async def close(self) -> None:
        """Nothing is held open between calls."""

    async def ping(self) -> None:
        def probe() -> None:
            if not self.root.is_dir() or not os.access(self.root, os.W_OK):
                raise OSError(f"{self.root} is not a writable folder")

        await self._io(probe)

    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str,
        max_bytes: int | None = None,
    ) -> int:
        target = self._path(key)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex}.partial")

        def open_partial() -> BinaryIO:
            target.parent.mkdir(parents=True, exist_ok=True)
            return partial.open("xb")

        handle = await self._io(open_partial)
        size = 0
        try:
            async for chunk in chunks:
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise UploadTooLarge(max_bytes)
                await self._io(handle.write, chunk)
            await self._io(_sync_and_close, handle)
            await self._io(os.replace, partial, target)
        except BaseException:
            handle.close()
            with contextlib.suppress(OSError):
                partial.unlink()
            raise
        return size

    async def read(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            handle = await self._io(path.open, "rb")
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        try:
            while chunk := await self._io(handle.read, CHUNK_BYTES):
                yield chunk
        finally:
            handle.close()

    async def exists(self, key: str) -> bool:
        return await self._io(self._path(key).is_file)

    async def delete(self, key: str) -> None:
        await self._io(self._path(key).unlink, missing_ok=True)

    async def download_link(
        self, key: str, *, filename: str, content_type: str, ttl_seconds: int
    ) -> DownloadLink:
        expires = int(time.time()) + ttl_seconds
        query = self.signer.query(SignedDownload(check_key(key), filename, content_type, expires))
        return DownloadLink(
            f"{self.url_prefix}/{key}?{query}", datetime.fromtimestamp(expires, UTC)
        )

    @staticmethod
    async def _io(function: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking file work in a thread; a failing disk is an unavailable store."""
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StorageUnavailable(f"Local storage failed: {exc.strerror or exc}.") from exc


def _sync_and_close(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
