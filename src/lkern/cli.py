"""The ``lkern`` command: run, serve and migrate the services."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import click
from sqlalchemy import select

from lkern.platform.app import create_app
from lkern.platform.bootstrap import build_runtime
from lkern.platform.db import PlatformTables
from lkern.platform.errors import ConfigurationError
from lkern.platform.events.asyncapi import write_documents
from lkern.platform.events.dead_letters import DeadLetter, DeadLetterStatus, replay_dead_letters
from lkern.platform.logging import configure_logging
from lkern.platform.migrations import downgrade, platform_revision, revision, upgrade
from lkern.platform.runner import Listener, run_servers, serve_all
from lkern.platform.runtime import ServiceRuntime
from lkern.platform.service import ServiceDefinition
from lkern.platform.settings import Settings, load_settings
from lkern.services import SERVICES

logger = logging.getLogger("lkern.cli")


def _setup_logging() -> Settings:
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """L-KERN: a self-hostable business backend."""


def _listener(name: str) -> Listener:
    """A service's app and address; refuses a configuration unfit for production."""
    definition = SERVICES[name]
    settings = definition.load_settings()
    try:
        app = create_app(definition, settings)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    return Listener(name, app, settings.host, settings.port or definition.rest_port)


@main.command()
def run() -> None:
    """Run the whole system in one process on the embedded defaults (SQLite, local files)."""
    settings = _setup_logging()
    listeners = [_listener(name) for name in SERVICES]
    logger.info("data directory: %s", settings.data_dir.resolve())
    run_servers(serve_all(listeners, grace_seconds=settings.shutdown_grace_seconds))


@main.command()
@click.argument("service", type=click.Choice(sorted(SERVICES)))
def serve(service: str) -> None:
    """Run one service in this process, as in production."""
    _setup_logging()
    settings = SERVICES[service].load_settings()
    run_servers(serve_all([_listener(service)], grace_seconds=settings.shutdown_grace_seconds))


@main.command()
@click.argument("service", type=click.Choice([*sorted(SERVICES), "all"]))
@click.argument("direction", type=click.Choice(["upgrade", "downgrade"]), default="upgrade")
@click.argument("rev", required=False)
def migrate(service: str, direction: str, rev: str | None) -> None:
    """Upgrade (default: to head) or downgrade (default: to base) a service's database."""
    _setup_logging()
    names = list(SERVICES) if service == "all" else [service]
    if direction == "downgrade":
        names.reverse()
    for name in names:
        settings = SERVICES[name].load_settings()
        if direction == "upgrade":
            upgrade(SERVICES[name], settings, rev or "heads")
        else:
            downgrade(SERVICES[name], settings, rev or "base")
        click.echo(
            f"{name}: {direction} to {rev or ('head' if direction == 'upgrade' else 'base')} done"
        )


@main.command("make-migration")
@click.argument("service", type=click.Choice(sorted(SERVICES)))
@click.argument("message")
@click.option(
    "--platform",
    "group",
    type=click.Choice([group.value for group in PlatformTables]),
    help="Instead, a revision of these platform tables (compared in SERVICE's database), "
    "which every service using them gets.",
)
def make_migration(service: str, message: str, group: str | None) -> None:
    """Write a new revision for SERVICE from the difference between its models and database."""
    _setup_logging()
    definition = SERVICES[service]
    settings = definition.load_settings()
    if group is None:
        revision(definition, settings, message)
        return
    try:
        platform_revision(PlatformTables(group), definition, settings, message)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--platform") from None


T = TypeVar("T")


def _consumers(names: tuple[str, ...]) -> list[ServiceDefinition]:
    """The named services (all that consume events when none is named)."""
    consuming = {name: d for name, d in SERVICES.items() if d.handlers}
    unknown = [name for name in names if name not in consuming]
    if unknown:
        choices = ", ".join(sorted(consuming)) or "none"
        raise click.BadParameter(f"{', '.join(unknown)} consumes no events (consumers: {choices})")
    return [consuming[name] for name in names] if names else list(consuming.values())


def _with_runtime(
    definition: ServiceDefinition, work: Callable[[ServiceRuntime], Awaitable[T]]
) -> T:
    """Run ``work`` against the service's database, without serving anything."""

    async def run() -> T:
        runtime = build_runtime(definition, definition.load_settings())
        try:
            return await work(runtime)
        finally:
            await runtime.engine.dispose()

    return asyncio.run(run())


@main.group()
def dlq() -> None:
    """Dead-lettered events: list them, replay them once their handler is fixed."""


@dlq.command("list")
@click.argument("services", nargs=-1)
@click.option(
    "--status",
    type=click.Choice([*(status.value for status in DeadLetterStatus), "all"]),
    default=DeadLetterStatus.PENDING.value,
    show_default=True,
)
def dlq_list(services: tuple[str, ...], status: str) -> None:
    """List dead letters of SERVICES (default: every service that consumes events)."""
    _setup_logging()
    consumers = _consumers(services)
    if not consumers:
        click.echo("no service consumes events")
    for definition in consumers:

        async def letters(runtime: ServiceRuntime) -> list[DeadLetter]:
            stmt = select(DeadLetter).order_by(DeadLetter.failed_at)
            if status != "all":
                stmt = stmt.where(DeadLetter.status == status)
            async with runtime.unit_of_work() as uow:
                return list((await uow.session.scalars(stmt)).all())

        rows = _with_runtime(definition, letters)
        click.echo(f"{definition.name}: {len(rows)} dead letter(s)")
        for row in rows:
            click.echo(
                f"  {row.id}  {row.status:<8} {row.topic}  attempts={row.attempts}  "
                f"failed_at={row.failed_at:%Y-%m-%d %H:%M:%S}  error={row.error[:120]}"
            )


@dlq.command("replay")
@click.argument("service")
@click.argument("ids", nargs=-1, type=click.UUID)
@click.option("--all", "replay_all", is_flag=True, help="Replay every pending dead letter.")
def dlq_replay(service: str, ids: tuple[uuid.UUID, ...], replay_all: bool) -> None:
    """Apply SERVICE's dead letters IDS again (or --all); each is applied at most once."""
    _setup_logging()
    if not ids and not replay_all:
        raise click.UsageError("name dead letter ids, or --all")
    [definition] = _consumers((service,))
    handlers = definition.handlers
    assert handlers is not None

    async def replay(runtime: ServiceRuntime) -> list[tuple[uuid.UUID, str]]:
        return await replay_dead_letters(
            runtime.unit_of_work, handlers, runtime.name, list(ids) if ids else None
        )

    results = _with_runtime(definition, replay)
    for letter_id, result in results:
        click.echo(f"{letter_id}: {result}")
    click.echo(f"{len(results)} dead letter(s) replayed")
    if any(result.startswith("failed") for _, result in results):
        raise SystemExit(1)


@main.group()
def events() -> None:
    """The event contract."""


@events.command("schema")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("docs/events"),
    show_default=True,
    help="Directory for the JSON Schemas and asyncapi.json.",
)
def events_schema(out: Path) -> None:
    """Write the JSON Schema of every event and the AsyncAPI document."""
    for path in write_documents(out, SERVICES):
        click.echo(str(path))


@main.group()
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
    from pydantic import ValidationError

    from lkern.identity.schemas import UserCreate
    from lkern.identity.service import create_user
    from lkern.platform.auth import Role
    from lkern.platform.errors import Conflict

    _setup_logging()
    try:
        data = UserCreate.model_validate(
            {"email": email, "full_name": full_name, "password": password, "role": Role.ADMIN}
        )
    except ValidationError as exc:
        raise click.BadParameter("; ".join(e["msg"] for e in exc.errors())) from None

    async def create(runtime: ServiceRuntime) -> str:
        from lkern.platform.migrations import upgrade

        await asyncio.to_thread(upgrade, runtime.definition, runtime.settings)
        try:
            return str((await create_user(runtime.unit_of_work(), data)).id)
        except Conflict as exc:
            raise click.ClickException(exc.detail) from None

    user_id = _with_runtime(SERVICES["identity"], create)
    click.echo(f"admin {data.email} created ({user_id})")
