"""Routes every soft-deletable resource has, declared once: delete, restore, purge."""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from lkern.platform.auth import CurrentPrincipal, Role, require
from lkern.platform.deletion import PermanentDeletionRead, permanently_delete
from lkern.platform.http import ExpectedVersion, set_etag
from lkern.platform.problems import problem_responses
from lkern.platform.resources import Guard, R, ResourceKind
from lkern.platform.runtime import Runtime, ServiceRuntime
from lkern.platform.storage.attachments import FileSlot
from lkern.platform.uow import UnitOfWork

Present = Callable[[ServiceRuntime, Any], Awaitable[Any]]
#: Runs in a deletion's transaction before the item changes (``permanent``: which one).
BeforeDelete = Callable[[ServiceRuntime, UnitOfWork, Any, bool], Awaitable[None]]


def add_lifecycle_routes(
    router: APIRouter,
    kind: ResourceKind[R],
    *,
    read_model: type[Any],
    present: Present,
    dependencies: Sequence[Any] = (),
    files: FileSlot[R] | None = None,
    id_type: type[Any] = uuid.UUID,
    id_converter: str = ":uuid",
    refuse_permanent: Callable[[R], None] | None = None,
    before_delete: BeforeDelete | None = None,
) -> None:
    """``DELETE /{id}``, ``POST /{id}/restore`` and ``DELETE /{id}/permanent`` for ``kind``.

    Ids are matched as UUIDs by the router itself (or as ``id_type`` with
    ``id_converter``, for a resource addressed by a code), so a sibling route
    such as ``/users/me`` never falls into ``/users/{user_id}``.
    ``refuse_permanent`` may refuse a permanent deletion of an item (see
    ``permanently_delete``); ``before_delete`` runs in either deletion's transaction
    (identity: the last admin stays, the user's tokens end)."""
    name = kind.name

    def guard(runtime: ServiceRuntime, *, permanent: bool) -> Guard[R] | None:
        if before_delete is None:
            return None
        return lambda uow, item: before_delete(runtime, uow, item, permanent)

    ItemId = Annotated[id_type, Path(alias=f"{name}_id", description=f"The {name}'s id.")]  # type: ignore[valid-type]
    item_path = f"/{{{name}_id{id_converter}}}"

    @router.delete(
        item_path,
        summary=f"Soft-delete a {name}",
        dependencies=list(dependencies),
        response_model=read_model,
        responses=problem_responses(400, 404, 409, 412, 422, 503),
    )
    async def soft_delete(
        item_id: ItemId, runtime: Runtime, expected_version: ExpectedVersion, response: Response
    ) -> Any:
        item = await kind.soft_delete(
            runtime.unit_of_work(),
            item_id,
            expected_version=expected_version,
            guard=guard(runtime, permanent=False),
        )
        set_etag(response, item.version)
        return await present(runtime, item)

    @router.post(
        f"{item_path}/restore",
        summary=f"Restore a soft-deleted {name}",
        dependencies=list(dependencies),
        response_model=read_model,
        responses=problem_responses(400, 404, 409, 412, 422, 503),
    )
    async def restore(
        item_id: ItemId, runtime: Runtime, expected_version: ExpectedVersion, response: Response
    ) -> Any:
        item = await kind.restore(
            runtime.unit_of_work(), item_id, expected_version=expected_version
        )
        set_etag(response, item.version)
        return await present(runtime, item)

    @router.delete(
        f"{item_path}/permanent",
        summary=f"Delete a {name} for good, leaving a deletion audit (admin)",
        dependencies=[*dependencies, Depends(require(Role.ADMIN))],
        response_model=PermanentDeletionRead,
        responses=problem_responses(400, 404, 409, 422, 503),
    )
    async def delete_permanently(
        item_id: ItemId, runtime: Runtime, principal: CurrentPrincipal
    ) -> PermanentDeletionRead:
        owned = runtime.owned_files(files) if files is not None else None
        outcome = await permanently_delete(
            runtime.unit_of_work(),
            kind,
            item_id,
            deleted_by=principal.subject,
            files=owned,
            refuse=refuse_permanent,
            guard=guard(runtime, permanent=True),
        )
        return PermanentDeletionRead(audit_id=outcome.audit_id, status=outcome.status)
