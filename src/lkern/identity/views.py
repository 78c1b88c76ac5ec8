"""Identity's REST routes: logins, tokens, keys and users."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from lkern.identity import service
from lkern.identity.enums import UserSortField
from lkern.identity.keys import signing_key
from lkern.identity.models import User
from lkern.identity.schemas import RefreshRequest, TokenPair, UserCreate, UserRead, UserUpdate
from lkern.identity.service import USER
from lkern.identity.settings import IdentitySettings
from lkern.platform.auth import (
    Admin,
    CurrentPrincipal,
    Role,
    client_address,
    current_principal,
    public_jwk,
    require,
)
from lkern.platform.http import ExpectedVersion, with_etag
from lkern.platform.pagination import ListQuery, Page, list_query
from lkern.platform.problems import problem_responses
from lkern.platform.routers import protected_router, public_router
from lkern.platform.routes import add_lifecycle_routes
from lkern.platform.runtime import Runtime, ServiceRuntime, Uow, settings_of
from lkern.platform.uow import UnitOfWork

auth_router = public_router(prefix="/api/v1/auth", tags=["authentication"])
keys_router = public_router(tags=["authentication"])


async def live_user(request: Request) -> None:
    """Identity does not wait for a deleted or deactivated user's token to expire.

    It takes only the request (the principal is the one the router's check keeps),
    so routes on the express lane can have it too."""
    principal = await current_principal(request)
    runtime: ServiceRuntime = request.app.state.runtime
    await service.ensure_live(runtime.unit_of_work(), principal.subject)


async def not_deleting_self(request: Request, principal: CurrentPrincipal) -> None:
    if request.method == "DELETE":  # the lifecycle routes that delete, soft or for good
        service.ensure_not_deleting_self(
            request.path_params["user_id"], uuid.UUID(principal.subject)
        )


users_router = protected_router(
    prefix="/api/v1/users", tags=["users"], dependencies=[Depends(live_user)]
)

Config = Annotated[IdentitySettings, Depends(settings_of(IdentitySettings))]
UserListQuery = Annotated[
    ListQuery, Depends(list_query(UserSortField, UserSortField.EMAIL, searchable="e-mail and name"))
]


def _read(user: User, response: Response) -> UserRead:
    return with_etag(response, UserRead.model_validate, user)


@auth_router.post(
    "/token",
    summary="Log in with e-mail and password (OAuth2 password form)",
    response_model=TokenPair,
    responses=problem_responses(400, 401, 422, 503),
)
async def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    uow: Uow,
    runtime: Runtime,
    settings: Config,
    request: Request,
) -> TokenPair:
    return await service.guarded_login(
        uow,
        settings,
        runtime.limiter,
        form.username,
        form.password,
        client_address(request),
    )


@auth_router.post(
    "/refresh",
    summary="Exchange a refresh token for a new pair (the old one is spent)",
    response_model=TokenPair,
    responses=problem_responses(400, 401, 422, 503),
)
async def refresh(body: RefreshRequest, uow: Uow, settings: Config) -> TokenPair:
    return await service.refresh(uow, settings, body.refresh_token)


@auth_router.post(
    "/revoke",
    summary="Sign out: end the refresh token's login (every token rotated from it)",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(400, 422, 503),
)
async def revoke(body: RefreshRequest, uow: Uow) -> Response:
    await service.revoke(uow, body.refresh_token)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@keys_router.get(
    "/.well-known/jwks.json", express=True, summary="Public keys that verify access tokens"
)
async def jwks(settings: Config) -> dict[str, list[dict[str, str]]]:
    key = signing_key(settings)
    return {"keys": [public_jwk(key.public, key.kid)]}


@users_router.get(
    "/me",
    express=True,
    summary="The calling user",
    response_model=UserRead,
    responses=problem_responses(401, 404, 503),
)
async def me(principal: CurrentPrincipal, uow: Uow, response: Response) -> UserRead:
    return _read(await service.get_user(uow, uuid.UUID(principal.subject)), response)


@users_router.get(
    "",
    summary="List users",
    response_model=Page[UserRead],
    responses=problem_responses(400, 401, 403, 422, 503),
)
async def list_users(
    _: Admin,
    uow: Uow,
    query: UserListQuery,
    role: Annotated[Role | None, Query(description="Only users with this role.")] = None,
) -> Page[UserRead]:
    found = await service.list_users(uow, query, role=role)
    return found.page(UserRead.model_validate)


@users_router.post(
    "",
    summary="Create a user",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    responses=problem_responses(400, 401, 403, 409, 422, 503),
)
async def create_user(_: Admin, data: UserCreate, uow: Uow, response: Response) -> UserRead:
    user = await service.create_user(uow, data)
    response.headers["Location"] = f"{users_router.prefix}/{user.id}"
    return _read(user, response)


@users_router.get(
    "/{user_id:uuid}",
    express=True,
    summary="Get a user",
    response_model=UserRead,
    responses=problem_responses(400, 401, 403, 404, 422, 503),
)
async def get_user(
    _: Admin,
    user_id: uuid.UUID,
    uow: Uow,
    response: Response,
    include_deleted: Annotated[bool, Query(description="Also find a soft-deleted user.")] = False,
) -> UserRead:
    return _read(await service.get_user(uow, user_id, include_deleted=include_deleted), response)


@users_router.patch(
    "/{user_id:uuid}",
    summary="Change a user's name, role, activity or password",
    response_model=UserRead,
    responses=problem_responses(400, 401, 403, 404, 409, 412, 422, 503),
)
async def update_user(
    admin: Admin,
    user_id: uuid.UUID,
    data: UserUpdate,
    uow: Uow,
    settings: Config,
    expected_version: ExpectedVersion,
    response: Response,
) -> UserRead:
    return _read(
        await service.update_user(
            uow,
            settings,
            user_id,
            data,
            expected_version=expected_version,
            actor=uuid.UUID(admin.subject),
        ),
        response,
    )


async def _present(_: ServiceRuntime, user: User) -> UserRead:
    return UserRead.model_validate(user)


async def _before_delete(
    runtime: ServiceRuntime, uow: UnitOfWork, user: User, permanent: bool
) -> None:
    await service.before_deleting_user(
        uow, IdentitySettings.of(runtime.settings), user, permanent=permanent
    )


add_lifecycle_routes(
    users_router,
    USER,
    read_model=UserRead,
    present=_present,
    dependencies=[Depends(require(Role.ADMIN)), Depends(not_deleting_self)],
    before_delete=_before_delete,
)
