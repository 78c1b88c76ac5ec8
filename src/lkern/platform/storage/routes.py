"""Routes of a resource's files, declared once: upload, download link, remove.

Also the signed download route of the local-files store, which needs no
token: the signature in its query is the permission.
"""

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse

from lkern.platform.bodies import max_body_bytes
from lkern.platform.errors import Forbidden, NotFound
from lkern.platform.http import ExpectedVersion, set_etag
from lkern.platform.problems import problem_responses
from lkern.platform.resources import R
from lkern.platform.routers import public_router
from lkern.platform.runtime import Runtime, ServiceRuntime
from lkern.platform.storage.attachments import FileSlot, add_file, file_link, remove_file
from lkern.platform.storage.files import DownloadLinkRead, FileRead
from lkern.platform.storage.headers import content_disposition
from lkern.platform.storage.local import LOCAL_FILES_PREFIX, LocalObjectStore
from lkern.platform.storage.port import ObjectMissing, ObjectStore, StorageUnavailable
from lkern.platform.storage.signing import ExpiredLink, InvalidSignature
from lkern.platform.storage.uploads import receive_file

Present = Callable[[ServiceRuntime, Any], Awaitable[Any]]

#: What a multipart body carries beside the file: its boundaries and part headers.
MULTIPART_SLACK = 64 * 1024

MULTIPART_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary", "description": "The file."}
                    },
                }
            }
        },
    }
}


def store_of(runtime: ServiceRuntime) -> ObjectStore:
    if runtime.storage is None:
        raise StorageUnavailable("This service keeps no files.")
    return runtime.storage


def add_file_routes(
    router: APIRouter,
    slot: FileSlot[R],
    *,
    read_model: type[Any],
    present: Present,
    segment: str = "attachments",
    id_type: type[Any] = uuid.UUID,
    id_converter: str = ":uuid",
) -> None:
    """``POST /{id}/<segment>``, ``GET`` and ``DELETE /{id}/<segment>/{file_id}``."""
    name = slot.kind.name
    noun = slot.noun
    ItemId = Annotated[id_type, Path(alias=f"{name}_id", description=f"The {name}'s id.")]  # type: ignore[valid-type]
    FileId = Annotated[uuid.UUID, Path(description=f"The {noun}'s id.")]
    item_path = f"/{{{name}_id{id_converter}}}/{segment}"

    @router.post(
        item_path,
        summary=f"Upload a {noun} (multipart, field `file`)",
        status_code=status.HTTP_201_CREATED,
        response_model=FileRead,
        responses=problem_responses(400, 404, 409, 412, 413, 415, 422, 503),
        openapi_extra=MULTIPART_BODY,
    )
    @max_body_bytes(lambda settings: settings.upload_max_bytes + MULTIPART_SLACK, streamed=True)
    async def upload(
        item_id: ItemId,
        request: Request,
        runtime: Runtime,
        expected_version: ExpectedVersion,
        response: Response,
    ) -> FileRead:
        store = store_of(runtime)
        incoming = await receive_file(request, runtime.upload_rules)
        item, file = await add_file(
            runtime.unit_of_work(),
            slot,
            store,
            item_id,
            incoming,
            runtime.upload_rules,
            expected_version=expected_version,
        )
        set_etag(response, item.version)
        key = slot.kind.key_of(item)
        response.headers["Location"] = f"{router.prefix}/{key}/{segment}/{file.file_id}"
        return FileRead.model_validate(file, from_attributes=True)

    @router.get(
        f"{item_path}/{{file_id:uuid}}",
        summary=f"Download a {noun}: a redirect to a time-limited link",
        status_code=status.HTTP_307_TEMPORARY_REDIRECT,
        response_class=RedirectResponse,
        responses={
            307: {
                "description": "To the file, behind a time-limited link.",
                "headers": {"Location": {"description": "The link.", "schema": {"type": "string"}}},
            },
            200: {"model": DownloadLinkRead, "description": "With `redirect=false`: the link."},
            **problem_responses(400, 404, 422, 503),
        },
    )
    async def download(
        item_id: ItemId,
        file_id: FileId,
        request: Request,
        runtime: Runtime,
        redirect: Annotated[
            bool, Query(description="false: answer the link as JSON instead of redirecting.")
        ] = True,
    ) -> Response:
        _, link = await file_link(
            runtime.unit_of_work(),
            slot,
            store_of(runtime),
            item_id,
            file_id,
            ttl_seconds=runtime.settings.download_url_ttl_seconds,
        )
        url = link.url if "://" in link.url else str(request.base_url).rstrip("/") + link.url
        if not redirect:
            body = DownloadLinkRead(url=url, expires_at=link.expires_at)
            return JSONResponse(body.model_dump(mode="json"))
        return RedirectResponse(url, status_code=status.HTTP_307_TEMPORARY_REDIRECT)

    @router.delete(
        f"{item_path}/{{file_id:uuid}}",
        summary=f"Remove a {noun}",
        response_model=read_model,
        responses=problem_responses(400, 404, 409, 412, 422, 503),
    )
    async def remove(
        item_id: ItemId,
        file_id: FileId,
        runtime: Runtime,
        expected_version: ExpectedVersion,
        response: Response,
    ) -> Any:
        item = await remove_file(
            runtime.unit_of_work(),
            slot,
            store_of(runtime),
            item_id,
            file_id,
            expected_version=expected_version,
        )
        set_etag(response, item.version)
        return await present(runtime, item)


local_files_router = public_router(prefix=LOCAL_FILES_PREFIX, tags=["files"])


@local_files_router.get(
    "/{key:path}",
    summary="A file behind a signed, time-limited link (local storage)",
    response_class=StreamingResponse,
    responses={
        200: {"description": "The file, as an attachment.", "content": {"*/*": {}}},
        **problem_responses(403, 404, 422, 503),
    },
)
async def signed_download(
    key: str,
    runtime: Runtime,
    expires: Annotated[int, Query(description="Unix time the link expires.")],
    filename: Annotated[str, Query(max_length=255)],
    content_type: Annotated[str, Query(max_length=255)],
    signature: Annotated[str, Query(max_length=128, pattern=r"^[A-Za-z0-9_-]+$")],
) -> StreamingResponse:
    store = runtime.storage
    if not isinstance(store, LocalObjectStore):
        raise NotFound("No such file.", code="FILE_NOT_FOUND")
    try:
        store.signer.verify(
            key, expires=expires, filename=filename, content_type=content_type, signature=signature
        )
    except ExpiredLink:
        raise Forbidden("The download link has expired.", code="LINK_EXPIRED") from None
    except InvalidSignature:
        raise Forbidden("The download link is not valid.", code="LINK_INVALID") from None
    chunks = store.read(key)
    try:
        first = await anext(chunks, b"")
    except (ObjectMissing, ValueError):  # ValueError: not a key the store could hold
        raise NotFound("No such file.", code="FILE_NOT_FOUND") from None

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

    return StreamingResponse(
        body(),
        media_type=content_type,
        headers={
            "Content-Disposition": content_disposition(filename),
            "X-Content-Type-Options": "nosniff",
        },
    )
