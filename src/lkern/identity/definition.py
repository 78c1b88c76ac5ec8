"""Identity as the platform sees it."""

import logging
from pathlib import Path

from lkern.events.identity import UserChanged
from lkern.identity import security
from lkern.identity.commands import commands
from lkern.identity.grpc import grpc_services
from lkern.identity.keys import own_keys
from lkern.identity.models import IdentityBase
from lkern.identity.service import ensure_admin
from lkern.identity.settings import IdentitySettings
from lkern.identity.views import auth_router, keys_router, users_router
from lkern.platform.errors import Conflict
from lkern.platform.logging import UNREDACTED
from lkern.platform.service import ServiceDefinition, UnitOfWorkFactory
from lkern.platform.settings import Settings

logger = logging.getLogger(__name__)

DEFAULT_ADMIN_EMAIL = "admin@lkern.example"


async def bootstrap_admin(unit_of_work: UnitOfWorkFactory, settings: Settings) -> None:
    """The first start creates an admin; a generated password is logged this once."""
    settings = IdentitySettings.of(settings)
    password = settings.admin_password.get_secret_value() if settings.admin_password else None
    email = settings.admin_email or DEFAULT_ADMIN_EMAIL
    try:
        created = await ensure_admin(unit_of_work(), email, password)
    except Conflict:
        return  # another replica created it first
    if created is None:
        return
    user, generated = created
    if generated is None:
        logger.warning("created the bootstrap admin %s", user.email)
    else:
        logger.warning(
            "created the bootstrap admin %s with password %s (shown once; change it)",
            user.email,
            generated,
            extra={UNREDACTED: True},
        )


async def start_identity(unit_of_work: UnitOfWorkFactory, settings: Settings) -> None:
    """The unknown e-mail's password hash, made before any login; the bootstrap admin."""
    await security.warm_up()
    await bootstrap_admin(unit_of_work, settings)


IDENTITY = ServiceDefinition(
    name="identity",
    code="lkms100",
    title="Identity",
    description="Users, logins and tokens; the keys that sign them.",
    version="0.1.0",
    rest_port=8100,
    grpc_port=5100,
    grpc_services=grpc_services,
    metadata=IdentityBase.metadata,
    routers=[users_router],
    public_routers=[auth_router, keys_router],
    migrations_dir=Path(__file__).parent / "migrations",
    token_keys=own_keys,
    on_start=start_identity,
    settings_class=IdentitySettings,
    commands=commands,
    produces=[UserChanged],
)
