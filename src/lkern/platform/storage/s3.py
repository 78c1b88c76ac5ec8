"""Objects in an S3-compatible bucket (AWS S3, MinIO, Ceph): ``s3://BUCKET?endpoint=…``.

aiobotocore keeps every call on the event loop without blocking it; the
credentials come from the standard AWS variables, as every S3 tool reads
them. Uploads stream: a small object is one PUT, a larger one a multipart
upload holding one part in memory at a time, aborted when the stream fails
so no partial object is ever visible.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from lkern.platform.storage.headers import content_disposition
from lkern.platform.storage.port import (
    DownloadLink,
    ObjectMissing,
    ObjectStore,
    StorageUnavailable,
    UploadTooLarge,
    check_key,
)

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

logger = logging.getLogger(__name__)

#: S3's smallest part size but for the last: the memory one upload holds.
PART_BYTES = 5 * 1024 * 1024
READ_CHUNK_BYTES = 256 * 1024
_MISSING = {"NoSuchKey", "404", "NotFound"}


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    endpoint: str | None
    region: str | None

    @classmethod
    def parse(cls, url: str) -> S3Location:
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(f"not an s3://BUCKET URL: {url!r}")
        query = {name: values[-1] for name, values in parse_qs(parts.query).items()}
        return cls(parts.netloc, query.get("endpoint"), query.get("region"))


class S3ObjectStore(ObjectStore):
    kind = "s3"

    def __init__(
        self,
        location: S3Location,
        *,
        connect_timeout: float = 2.0,
        read_timeout: float = 10.0,
    ) -> None:
        self.location = location
        self._config = AioConfig(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # One quick retry; a longer outage is the caller's 503, not a hang.
            retries={"max_attempts": 2, "mode": "standard"},
            # MinIO and most self-hosted servers want the bucket in the path.
            s3={"addressing_style": "path"} if location.endpoint else None,
        )
        self._stack: AsyncExitStack | None = None
        self._client: S3Client | None = None

    @property
    def bucket(self) -> str:
        return self.location.bucket

    async def _s3(self) -> S3Client:
        if self._client is None:
            stack = AsyncExitStack()
            client = await stack.enter_async_context(
                get_session().create_client(
                    "s3",
                    endpoint_url=self.location.endpoint,
                    region_name=self.location.region,
                    config=self._config,
                )
            )
            self._stack, self._client = stack, client
        return self._client

    async def start(self) -> None:
        """Create the bucket when it is missing and the credentials allow it."""
        s3 = await self._s3()
        async with _translated("checking the bucket"):
            try:
                await s3.head_bucket(Bucket=self.bucket)
                return
            except ClientError as exc:
                if _code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                    raise
            options: dict[str, Any] = {}
            if self.location.region and self.location.region != "us-east-1":
                options["CreateBucketConfiguration"] = {"LocationConstraint": self.location.region}
            try:
                await s3.create_bucket(Bucket=self.bucket, **options)
                logger.info("created bucket %s", self.bucket)
            except ClientError as exc:
                if _code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise

    async def close(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = self._client = None

    async def ping(self) -> None:
        s3 = await self._s3()
        async with _translated("checking the bucket"):
            await s3.head_bucket(Bucket=self.bucket)

    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str,
        max_bytes: int | None = None,
    ) -> int:
        check_key(key)
        s3 = await self._s3()
        buffer = bytearray()
        size = 0
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        try:
            async for chunk in chunks:
                size += len(chunk)
                if max_bytes is not None and size > max_bytes:
                    raise UploadTooLarge(max_bytes)
                buffer += chunk
                while len(buffer) >= PART_BYTES:
                    if upload_id is None:
                        async with _translated("starting an upload"):
                            started = await s3.create_multipart_upload(
                                Bucket=self.bucket, Key=key, ContentType=content_type
                            )
                        upload_id = started["UploadId"]
                    part = bytes(buffer[:PART_BYTES])
                    del buffer[:PART_BYTES]
                    parts.append(await self._upload_part(s3, key, upload_id, len(parts) + 1, part))
            if upload_id is None:
                async with _translated("uploading"):
                    await s3.put_object(
                        Bucket=self.bucket, Key=key, Body=bytes(buffer), ContentType=content_type
                    )
                return size
            if buffer or not parts:
                parts.append(
                    await self._upload_part(s3, key, upload_id, len(parts) + 1, bytes(buffer))
                )
            async with _translated("completing an upload"):
                await s3.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
                )
            upload_id = None
            return size
        finally:
            if upload_id is not None:
                await self._abort(s3, key, upload_id)

    async def _upload_part(
        self, s3: S3Client, key: str, upload_id: str, number: int, body: bytes
    ) -> dict[str, Any]:
        async with _translated("uploading"):
            answer = await s3.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
            )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    async def _abort(self, s3: S3Client, key: str, upload_id: str) -> None:
        # Best effort: a bucket lifecycle rule clears what an outage leaves.
        with contextlib.suppress(BotoCoreError, ClientError):
            await s3.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)

    async def read(self, key: str) -> AsyncIterator[bytes]:
        s3 = await self._s3()
        async with _translated("downloading"):
            try:
                answer = await s3.get_object(Bucket=self.bucket, Key=check_key(key))
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    raise ObjectMissing(key) from None
                raise
        async with answer["Body"] as body:
            while True:
                async with _translated("downloading"):
                    chunk = await body.read(READ_CHUNK_BYTES)
                if not chunk:
                    return
                yield chunk

    async def exists(self, key: str) -> bool:
        s3 = await self._s3()
        async with _translated("looking up an object"):
            try:
                await s3.head_object(Bucket=self.bucket, Key=check_key(key))
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    return False
                raise
        return True

    async def delete(self, key: str) -> None:
        s3 = await self._s3()
        async with _translated("deleting"):
            await s3.delete_object(Bucket=self.bucket, Key=check_key(key))

    async def download_link(
        self, key: str, *, filename: str, content_type: str, ttl_seconds: int
    ) -> DownloadLink:
        s3 = await self._s3()
        async with _translated("signing a download"):
            url = await s3.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": check_key(key),
                    "ResponseContentType": content_type,
                    "ResponseContentDisposition": content_disposition(filename),
                },
                ExpiresIn=ttl_seconds,
            )
        return DownloadLink(url, datetime.now(UTC) + timedelta(seconds=ttl_seconds))


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@contextlib.asynccontextmanager
async def _translated(doing: str) -> AsyncIterator[None]:
    """Whatever S3 or the network says, a caller sees ``StorageUnavailable``."""
    try:
        yield
    except (BotoCoreError, ClientError, OSError) as exc:
        logger.warning("object storage failed while %s: %s", doing, exc)
        raise StorageUnavailable() from exc
