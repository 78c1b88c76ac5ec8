"""Use cases of a resource's files, the same for issue attachments and part documents.

The §8 orders, kept here once: a new file is recorded (flush), uploaded,
then committed, so a failed upload rolls the row back and no row ever points
at a missing object; a removed file is committed first and its object
deleted afterwards, best effort, since an orphan object is harmless and a
row pointing nowhere is not.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, Generic

from lkern.events import EventData
from lkern.platform.errors import NotFound
from lkern.platform.http import check_version
from lkern.platform.resources import R, ResourceKind
from lkern.platform.storage.files import StoredFile, stored_files
from lkern.platform.storage.port import DownloadLink, ObjectStore, StorageUnavailable
from lkern.platform.storage.uploads import IncomingFile, UploadRules
from lkern.platform.uow import UnitOfWork

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FileSlot(Generic[R]):
    """Where a resource keeps its files, and the events their changes emit."""

    kind: ResourceKind[R]
    #: The owner's JSON column (``attachments``, ``documents``).
    attribute: str
    #: The service whose key prefix the objects get.
    service: str
    #: What a file is called in messages and codes ("attachment", "document").
    noun: str
    added: type[EventData]
    removed: type[EventData]

    def files(self, item: R) -> list[StoredFile]:
        return stored_files(getattr(item, self.attribute))

    def keys(self, item: R) -> list[str]:
        return [file.object_key for file in self.files(item)]

    def find(self, item: R, file_id: uuid.UUID) -> StoredFile:
        for file in self.files(item):
            if file.file_id == file_id:
                return file
        raise NotFound(
            f"{self.noun.capitalize()} {file_id} not found.",
            code=f"{self.noun.upper()}_NOT_FOUND",
        )

    def _event(self, event: type[EventData], item: R, file: StoredFile) -> EventData:
        return event.model_validate(
            {
                "id": self.kind.key_of(item),
                "version": item.version,
                "attachment": file.model_dump(exclude={"object_key", "uploaded_at"}),
            }
        )


async def add_file(
    uow: UnitOfWork,
    slot: FileSlot[R],
    store: ObjectStore,
    item_id: Any,
    incoming: IncomingFile,
    rules: UploadRules,
    *,
    expected_version: int | None,
) -> tuple[R, StoredFile]:
    """Record, upload and commit one file; nothing stays behind when the upload fails."""
    async with uow:
        item = await slot.kind.load_attached(uow, item_id, lock=True)
        check_version(item.version, expected_version)
        file = StoredFile.new(
            service=slot.service,
            owner_id=item.id,
            filename=incoming.filename,
            content_type=incoming.content_type,
            extension=incoming.extension,
        )
        size = await store.put(
            file.object_key,
            incoming.chunks,
            content_type=file.content_type,
            max_bytes=rules.max_bytes,
        )
        file = file.model_copy(update={"size": size})
        setattr(item, slot.attribute, [*getattr(item, slot.attribute), file.as_json()])
        await uow.session.flush()
        uow.emit(slot._event(slot.added, item, file), item.id)
        try:
            await uow.commit()
        except BaseException:
            # The row is not there, so neither may the object be.
            await _forget(store, file.object_key)
            raise
        return item, file


async def remove_file(
    uow: UnitOfWork,
    slot: FileSlot[R],
    store: ObjectStore,
    item_id: Any,
    file_id: uuid.UUID,
    *,
    expected_version: int | None,
) -> R:
    """Take the file off the item (committed), then delete its object best effort."""
    async with uow:
        item = await slot.kind.load_attached(uow, item_id, lock=True)
        check_version(item.version, expected_version)
        file = slot.find(item, file_id)
        setattr(
            item,
            slot.attribute,
            [raw for raw in getattr(item, slot.attribute) if raw["file_id"] != str(file_id)],
        )
        await uow.session.flush()
        uow.emit(slot._event(slot.removed, item, file), item.id)
        await uow.commit()
    await _forget(store, file.object_key)
    return item


async def file_link(
    uow: UnitOfWork,
    slot: FileSlot[R],
    store: ObjectStore,
    item_id: Any,
    file_id: uuid.UUID,
    *,
    ttl_seconds: int,
) -> tuple[StoredFile, DownloadLink]:
    async with uow.read_only():
        item = await slot.kind.read_detached(uow, item_id)
    file = slot.find(item, file_id)
    link = await store.download_link(
        file.object_key,
        filename=file.filename,
        content_type=file.content_type,
        ttl_seconds=ttl_seconds,
    )
    return file, link


async def _forget(store: ObjectStore, key: str) -> None:
    try:
        await store.delete(key)
    except StorageUnavailable:
        logger.warning("object %s is left behind; it belongs to nothing and may be removed", key)
