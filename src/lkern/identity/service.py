"""Identity's use cases: users, logins and token rotation."""

from __future__ import annotations

import logging
import secrets
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError

from lkern.events.identity import UserChange, UserChanged
from lkern.identity.enums import UserSortField
from lkern.identity.keys import signing_key
from lkern.identity.models import RefreshToken, User
from lkern.identity.schemas import TokenPair, UserCreate, UserUpdate
from lkern.identity.security import (
    access_token,
    hash_password,
    needs_rehash,
    new_refresh_token,
    token_digest,
    verify_password,
)
from lkern.identity.settings import IdentitySettings
from lkern.platform.auth import Role
from lkern.platform.db import utcnow
from lkern.platform.errors import Conflict, Unauthorized
from lkern.platform.pagination import ListQuery, Slice, paginate, search_clause, sort_columns
from lkern.platform.ratelimit import Limit, RateLimiter
from lkern.platform.resources import ResourceKind
from lkern.platform.revocations import record_revocation
from lkern.platform.uow import UnitOfWork

logger = logging.getLogger(__name__)

USER = ResourceKind(User, "user")
SORT_COLUMNS = sort_columns(UserSortField, User)
BAD_CREDENTIALS = "Incorrect e-mail or password."


def normalise_login(email: str) -> str:
    """The e-mail a login names, as users are stored (lower-case)."""
    return email.strip().lower()


def _taken(existing: User) -> Conflict:
    state = "deleted user" if existing.is_deleted else "user"
    return Conflict(
        f"The e-mail address belongs to {state} {existing.id}.",
        code="USER_EMAIL_TAKEN",
        extra={"existing_id": str(existing.id), "existing_deleted": existing.is_deleted},
    )


async def create_user(uow: UnitOfWork, data: UserCreate) -> User:
    password_hash = await hash_password(data.password.get_secret_value())
    async with uow:
        existing = await uow.session.scalar(select(User).where(User.email == data.email))
        if existing is not None:
            raise _taken(existing)
        user = User(
            email=data.email,
            full_name=data.full_name,
            role=data.role,
            is_active=data.is_active,
            password_hash=password_hash,
        )
        uow.session.add(user)
        try:
            await uow.commit()
        except IntegrityError:
            raise Conflict("The e-mail address is taken.", code="USER_EMAIL_TAKEN") from None
        return user


async def get_user(uow: UnitOfWork, user_id: uuid.UUID, *, include_deleted: bool = False) -> User:
    async with uow.read_only():
        return await USER.read_detached(uow, user_id, include_deleted=include_deleted)


async def get_users_by_ids(uow: UnitOfWork, ids: list[uuid.UUID]) -> list[User]:
    """The live users among ``ids``, in the order asked; unknown ids are left out."""
    return await USER.read_by_ids(uow, ids)


async def list_users(uow: UnitOfWork, query: ListQuery, *, role: Role | None = None) -> Slice[User]:
    stmt = USER.select_visible(include_deleted=query.include_deleted)
    if role is not None:
        stmt = stmt.where(User.role == role)
    if query.search:
        stmt = stmt.where(search_clause(query.search, (User.email, User.full_name)))
    async with uow:
        return await paginate(
            uow.session, stmt, query, sort_columns=SORT_COLUMNS, tie_breaker=User.id
        )


def _is_active_admin(user: User) -> bool:
    return (
        user.role == Role.ADMIN
        and user.is_active
        and user.deleted_at is None
        and user.deletion_audit_id is None
    )


# Changes that may take away an admin take turns on PostgreSQL under this
# advisory lock (any fixed key), so two admins demoting each other at once
# cannot both succeed; SQLite has one writer at a time anyway.
_ADMIN_CHANGES = 0x6C6B65726E0A


async def _ensure_another_admin(uow: UnitOfWork, user: User) -> None:
    """Refuse to take away the last active admin: nobody could manage users after it."""
    if not _is_active_admin(user):
        return
    if uow.session.get_bind().dialect.name == "postgresql":
        await uow.session.execute(select(func.pg_advisory_xact_lock(_ADMIN_CHANGES)))
    others = await uow.session.scalar(
        select(func.count())
        .select_from(User)
        .where(
            User.id != user.id,
            User.role == Role.ADMIN,
            User.is_active.is_(True),
            User.deleted_at.is_(None),
            User.deletion_audit_id.is_(None),
        )
    )
    if not others:
        raise Conflict(
            f"User {user.id} is the last active admin; make another admin first.",
            code="LAST_ADMIN",
        )


async def _lock(uow: UnitOfWork, user_id: uuid.UUID) -> None:
    # The user's row is held before the revocation takes its instant: a login or
    # refresh issuing a token holds it too (see _issue), so a token is either issued
    # before that instant or carries the user as changed.
    await uow.session.execute(select(User.id).where(User.id == user_id).with_for_update())


async def _revoke_tokens(
    uow: UnitOfWork, settings: IdentitySettings, user: User, change: UserChange
) -> None:
    """End the user's access tokens issued until now, here and, by the event, in every
    service (§9); in the transaction of the change."""
    now = utcnow()
    # By then every token issued before now has expired, the verifiers' leeway too.
    expires = now + timedelta(
        seconds=settings.access_token_ttl_seconds + 2 * settings.clock_skew_seconds
    )
    await record_revocation(uow, str(user.id), change, now, expires)
    uow.emit(
        UserChanged(
            id=user.id,
            change=change,
            role=user.role,
            is_active=user.is_active,
            not_before=now,
            tokens_expire_by=expires,
        ),
        user.id,
    )


async def before_deleting_user(
    uow: UnitOfWork, settings: IdentitySettings, user: User, *, permanent: bool
) -> None:
    """In the transaction of a user's deletion: the last admin stays, and the user's
    sessions end, refresh tokens included (a restored user logs in again)."""
    await _lock(uow, user.id)
    await _ensure_another_admin(uow, user)
    if user.is_deleted and not permanent:
        return  # already deleted: the 409 follows
    await _revoke_all(uow, user.id)
    change = UserChange.PERMANENTLY_DELETED if permanent else UserChange.DELETED
    await _revoke_tokens(uow, settings, user, change)


async def update_user(
    uow: UnitOfWork,
    settings: IdentitySettings,
    user_id: uuid.UUID,
    data: UserUpdate,
    *,
    expected_version: int | None,
    actor: uuid.UUID | None = None,
) -> User:
    """Apply ``data``; ``actor`` is the user making the change (none from the CLI).

    A new role or a deactivation ends the user's access tokens issued before it
    (a demoted user refreshes to get a token of the new role); a deactivation and
    a new password end the refresh tokens too."""
    if data.is_active is False and user_id == actor:
        raise Conflict(
            "You cannot deactivate yourself; another admin can.", code="CANNOT_DEACTIVATE_SELF"
        )
    # Hashed before the transaction: no connection is held while argon2 runs.
    password_hash = (
        await hash_password(data.password.get_secret_value()) if data.password is not None else None
    )

    async def apply(user: User, changes: dict[str, Any]) -> None:
        changes.pop("password", None)
        new_role = "role" in changes and changes["role"] != user.role
        deactivated = changes.get("is_active") is False and user.is_active
        if new_role or deactivated:
            # Before anything changes: a query would flush the change first.
            await _lock(uow, user.id)
            if deactivated or changes["role"] != Role.ADMIN:
                await _ensure_another_admin(uow, user)
        for field, value in changes.items():
            setattr(user, field, value)
        if password_hash is not None:
            user.password_hash = password_hash
            await _revoke_all(uow, user.id)  # a new password ends every session
        if changes.get("is_active") is False:
            await _revoke_all(uow, user.id)
        if new_role or deactivated:
            change = UserChange.DEACTIVATED if deactivated else UserChange.ROLE_CHANGED
            await _revoke_tokens(uow, settings, user, change)

    return await USER.update(uow, user_id, data, expected_version=expected_version, apply=apply)


def ensure_not_deleting_self(user_id: uuid.UUID, actor: uuid.UUID) -> None:
    """Nobody deletes themselves: the last admin doing so would leave no way back."""
    if user_id == actor:
        raise Conflict("You cannot delete yourself; another admin can.", code="CANNOT_DELETE_SELF")


_LIVE_USER = select(User.id).where(
    User.id == bindparam("user_id"),
    User.is_active.is_(True),
    User.deleted_at.is_(None),
    User.deletion_audit_id.is_(None),
)


async def ensure_live(uow: UnitOfWork, subject: str) -> None:
    """Refuse a token whose user has since been deleted or deactivated (one read by key)."""
    try:
        user_id = uuid.UUID(subject)
    except ValueError:
        user_id = None
    if user_id is not None:
        async with uow.read_only():
            if await uow.fetch_one(_LIVE_USER, user_id=user_id) is not None:
                return
    raise Unauthorized(
        "The token's user is deleted or deactivated.",
        code="USER_NOT_ACTIVE",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


async def _revoke_all(uow: UnitOfWork, user_id: uuid.UUID) -> None:
    await uow.session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


async def login(
    uow: UnitOfWork, settings: IdentitySettings, email: str, password: str
) -> TokenPair:
    """Tokens for valid credentials; one generic 401 for every kind of failure.

    The password is checked with no database connection held: the hash takes
    tens of milliseconds, which a burst of logins would otherwise take out of the pool.
    """
    async with uow.read_only():
        user = await uow.session.scalar(
            USER.select_visible().where(User.email == normalise_login(email))
        )
    if not await verify_password(user.password_hash if user else None, password) or user is None:
        raise Unauthorized(BAD_CREDENTIALS, code="INVALID_CREDENTIALS")
    if not user.is_active:
        raise Unauthorized(BAD_CREDENTIALS, code="INVALID_CREDENTIALS")
    rehashed = await hash_password(password) if needs_rehash(user.password_hash) else None
    async with uow:
        if rehashed is not None:
            await uow.session.execute(
                update(User).where(User.id == user.id).values(password_hash=rehashed)
            )
        pair = await _issue(
            uow,
            settings,
            user.id,
            family_id=uuid.uuid4(),
            refused=Unauthorized(BAD_CREDENTIALS, code="INVALID_CREDENTIALS"),
        )
        await uow.commit()
        return pair


def login_limits(settings: IdentitySettings, email: str, client: str) -> list[tuple[str, Limit]]:
    """Failed logins are limited per account and client address together, so nobody can
    lock a named user out from elsewhere, and per client address, so one address
    cannot try every account."""
    window = settings.login_failure_window_seconds
    account = normalise_login(email)
    return [
        (
            f"login-failures:account:{account}:client:{client}",
            Limit(settings.login_failure_limit, window),
        ),
        (f"login-failures:client:{client}", Limit(settings.login_client_failure_limit, window)),
    ]


async def guarded_login(
    uow: UnitOfWork,
    settings: IdentitySettings,
    limiter: RateLimiter,
    email: str,
    password: str,
    client: str,
) -> TokenPair:
    """A login counted as a failure before it is checked (increment, then decide), so
    concurrent guesses cannot all slip under the limit; a success takes it back."""
    reservation = await limiter.reserve(
        login_limits(settings, email, client), what="failed logins", code="LOGIN_RATE_LIMITED"
    )
    try:
        pair = await login(uow, settings, email, password)
    except Unauthorized:
        raise  # a failure: it stays counted
    except BaseException:
        await reservation.release()  # an outage is no failed login
        raise
    await reservation.release()
    return pair


async def refresh(uow: UnitOfWork, settings: IdentitySettings, token: str) -> TokenPair:
    """Rotate: the token is spent and a new pair issued. A spent token presented
    again means it was stolen (or the thief came first): its whole family ends."""
    digest = token_digest(token)
    async with uow:
        owner = await uow.session.scalar(
            select(RefreshToken.user_id).where(RefreshToken.token_digest == digest)
        )
        if owner is not None:
            # The user's row before the token's: a change of the user holds its row
            # and then ends its refresh tokens, so the other order could deadlock.
            await uow.session.execute(
                select(User.id).where(User.id == owner).with_for_update(read=True)
            )
        stored = await uow.session.scalar(
            select(RefreshToken).where(RefreshToken.token_digest == digest).with_for_update()
        )
        if stored is None:
            raise Unauthorized("The refresh token is not valid.", code="INVALID_REFRESH_TOKEN")
        if stored.used_at is not None or stored.revoked_at is not None:
            await uow.session.execute(
                update(RefreshToken)
                .where(
                    RefreshToken.family_id == stored.family_id, RefreshToken.revoked_at.is_(None)
                )
                .values(revoked_at=utcnow())
            )
            await uow.commit()
            logger.warning("refresh token reuse: family %s revoked", stored.family_id)
            raise Unauthorized(
                "The refresh token was already used; every session of this login is ended.",
                code="REFRESH_TOKEN_REUSED",
            )
        if stored.expires_at <= utcnow():
            raise Unauthorized("The refresh token has expired.", code="INVALID_REFRESH_TOKEN")
        # A deactivated or deleted user's refresh is refused; a demoted one's gives a
        # token of the new role.
        pair = await _issue(
            uow,
            settings,
            stored.user_id,
            family_id=stored.family_id,
            refused=Unauthorized("The refresh token is not valid.", code="INVALID_REFRESH_TOKEN"),
        )
        stored.used_at = utcnow()
        await uow.commit()
        return pair


async def revoke(uow: UnitOfWork, token: str) -> None:
    """Sign-out: the refresh token's whole family ends, so no token of that login can be
    exchanged again. An unknown or already ended token changes nothing (RFC 7009 answers
    the same either way, so the route tells nobody which tokens exist)."""
    async with uow:
        family = await uow.session.scalar(
            select(RefreshToken.family_id).where(RefreshToken.token_digest == token_digest(token))
        )
        if family is None:
            return
        await uow.session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == family, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )
        await uow.commit()


_ISSUABLE = (
    select(User.role)
    .where(
        User.id == bindparam("user_id"),
        User.is_active.is_(True),
        User.deleted_at.is_(None),
        User.deletion_audit_id.is_(None),
    )
    .with_for_update(read=True)
)


async def _issue(
    uow: UnitOfWork,
    settings: IdentitySettings,
    user_id: uuid.UUID,
    *,
    family_id: uuid.UUID,
    refused: Unauthorized,
) -> TokenPair:
    """Tokens for the user as it is now, or ``refused`` if it is no longer live.

    The user's row is held (shared) until the tokens are stored, and the tokens'
    instant taken after it: a change of the user either waits for them, and its
    revocation then comes later than their ``iat``, or they wait for it and carry
    its result."""
    role = await uow.session.scalar(_ISSUABLE, {"user_id": user_id})
    if role is None:
        raise refused
    now = utcnow()
    refresh_token = new_refresh_token()
    uow.session.add(
        RefreshToken(
            family_id=family_id,
            user_id=user_id,
            token_digest=token_digest(refresh_token),
            expires_at=now + timedelta(seconds=settings.refresh_token_ttl_seconds),
        )
    )
    token = access_token(
        signing_key(settings),
        subject=str(user_id),
        role=role,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        now=now,
        ttl=settings.access_token_ttl_seconds,
    )
    return TokenPair(
        access_token=token,
        expires_in=settings.access_token_ttl_seconds,
        refresh_token=refresh_token,
    )


async def ensure_admin(
    uow: UnitOfWork, email: str, password: str | None
) -> tuple[User, str | None] | None:
    """Create the first admin when there are no users; returns it and a generated password."""
    async with uow:
        if await uow.session.scalar(select(func.count()).select_from(User)):
            return None
    generated = None if password else secrets.token_urlsafe(18)
    user = await create_user(
        uow,
        UserCreate.model_validate(
            {
                "email": email,
                "full_name": "Administrator",
                "password": password or generated,
                "role": Role.ADMIN,
            }
        ),
    )
    return user, generated
