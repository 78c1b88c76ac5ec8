"""What a service may ask of object storage, whichever adapter is behind it.

The port knows keys, bytes and links, never rows: keeping the §8 ordering
(flush, upload, commit; audit, delete, drop) is the caller's job, and an
adapter only has to say truthfully whether an object was written or removed.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from lkern.platform.errors import ServiceUnavailable

# Keys are generated (``<service>/<item id>/<file id>.<ext>``), never taken
# from a client; the pattern still refuses anything that could leave the
# store's root, so a bug upstream cannot write outside it.
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class StorageUnavailable(ServiceUnavailable):
    """The store did not answer, or answered that it cannot serve right now."""

    default_code = "STORAGE_UNAVAILABLE"

    def __init__(self, detail: str = "Object storage is unavailable; try again shortly.") -> None:
        super().__init__(detail)


class ObjectMissing(LookupError):
    """No object under that key."""


class UploadTooLarge(ValueError):
    """The stream went past the size the caller allowed."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key) or ".." in key.split("/"):
        raise ValueError(f"not a storage key: {key!r}")
    return key


@dataclass(frozen=True, slots=True)
class DownloadLink:
    """Where a client fetches an object, until when. A relative ``url`` is
    resolved against the owning service's own address."""

    url: str
    expires_at: datetime


class ObjectStore(ABC):
    """Objects under generated keys. Every method raises ``StorageUnavailable``
    when the store cannot be reached, so the HTTP layer answers 503."""

    #: Named in readiness checks and logs ("local", "s3").
    kind: str

    @abstractmethod
    async def start(self) -> None:
        """Make the store usable (create the bucket or folder when missing)."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""

    @abstractmethod
    async def ping(self) -> None:
        """Return when the store answers; raise ``StorageUnavailable`` otherwise."""

    @abstractmethod
    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str,
        max_bytes: int | None = None,
    ) -> int:
        """Write the stream under ``key`` and return its size.

        Nothing is left under ``key`` when the stream fails or passes
        ``max_bytes`` (``UploadTooLarge``): an object exists only whole."""

    @abstractmethod
    def read(self, key: str) -> AsyncIterator[bytes]:
        """The object's bytes in chunks; ``ObjectMissing`` when there is none."""

    @abstractmethod
    async def exists(self, key: str) -> bool: ...

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the object; removing a missing one is not an error."""

    @abstractmethod
    async def download_link(
        self, key: str, *, filename: str, content_type: str, ttl_seconds: int
    ) -> DownloadLink:
        """A time-limited link that serves the object as an attachment."""
