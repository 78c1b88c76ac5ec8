"""Identity's ``lkern`` commands: ``lkern users create-admin``."""

from __future__ import annotations

import asyncio

import click
from pydantic import ValidationError

from lkern.identity.schemas import UserCreate
from lkern.identity.service import create_user
from lkern.platform.auth import Role
from lkern.platform.bootstrap import run_offline
from lkern.platform.errors import Conflict
from lkern.platform.logging import configure_logging
from lkern.platform.migrations import upgrade
from lkern.platform.runtime import ServiceRuntime
from lkern.platform.service import ServiceDefinition


def commands(definition: ServiceDefinition) -> list[click.Command]:
    @click.group()
    def users() -> None:
        """Identity's users."""

    @users.command("create-admin")
    @click.option("--email", required=True, help="The new admin's e-mail address.")
    @click.option(
        "--password",
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        help="Asked for when not given (10 to 128 characters).",
    )
    @click.option("--name", "full_name", default="Administrator", show_default=True)
    def create_admin(email: str, password: str, full_name: str) -> None:
        """Create an admin user in identity's database."""
        settings = definition.load_settings()
        configure_logging(settings.log_format, settings.log_level)
        try:
            data = UserCreate.model_validate(
                {"email": email, "full_name": full_name, "password": password, "role": Role.ADMIN}
            )
        except ValidationError as exc:
            raise click.BadParameter("; ".join(e["msg"] for e in exc.errors())) from None

        async def create(runtime: ServiceRuntime) -> str:
            await asyncio.to_thread(upgrade, runtime.definition, runtime.settings)
            try:
                return str((await create_user(runtime.unit_of_work(), data)).id)
            except Conflict as exc:
                raise click.ClickException(exc.detail) from None

        user_id = run_offline(definition, create)
        click.echo(f"admin {data.email} created ({user_id})")

    return [users]
