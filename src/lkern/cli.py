"""The ``lkern`` command: run, serve and migrate the services."""

from __future__ import annotations

import logging
import socket
import uuid
from collections.abc import Callable
from pathlib import Path

import click
from sqlalchemy import select

from lkern.console.app import create_console_app
from lkern.console.settings import WILDCARDS, ConsoleSettings
from lkern.generator.scaffold import CHECKOUT, NewService, Refused, generate
from lkern.platform.app import create_app
from lkern.platform.bootstrap import run_offline
from lkern.platform.cleanup.worker import UNFINISHED
from lkern.platform.db import PlatformTables
from lkern.platform.deletion import DeletionOutcome
from lkern.platform.enums import DeletionStatus
from lkern.platform.errors import ConfigurationError
from lkern.platform.events.asyncapi import write_documents
from lkern.platform.events.dead_letters import DeadLetter, DeadLetterStatus, replay_dead_letters
from lkern.platform.logging import configure_logging
from lkern.platform.migrations import downgrade, platform_revision, revision, upgrade
from lkern.platform.models import DeletionAudit
from lkern.platform.runner import Listener, run_servers, serve_all
from lkern.platform.runtime import ServiceRuntime
from lkern.platform.service import ServiceDefinition
from lkern.platform.settings import Settings, load_settings
from lkern.platform.shutdown import Shutdown
from lkern.platform.supervisor import Supervisor, WorkerLink, supervise
from lkern.services import SERVICES

logger = logging.getLogger("lkern.cli")


def _setup_logging() -> Settings:
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    return settings


class ServiceName(click.ParamType):
    """The name of a registered service (or one of ``extra``), checked as the command runs:
    the choice is the registration at that moment, not at import."""

    name = "service"

    def __init__(self, *extra: str) -> None:
        self.extra = extra

    def choices(self) -> list[str]:
        return [*sorted(SERVICES), *self.extra]

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str:
        return "[" + "|".join(self.choices()) + "]"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> str:
        if value in self.choices():
            return str(value)
        self.fail(f"{value!r} is not one of {', '.join(self.choices())}.", param, ctx)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """L-KERN: a self-hostable business backend."""


def _listener(name: str, sock: socket.socket | None = None) -> Listener:
    """A service's app and address; refuses a configuration unfit for production."""
    definition = SERVICES[name]
    settings = definition.load_settings()
    try:
        app = create_app(definition, settings)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    runtime: ServiceRuntime = app.state.runtime
    return Listener(
        name, app, settings.host, settings.port or definition.rest_port, runtime.shutdown, sock
    )


def _console_listener(
    settings: ConsoleSettings, services: dict[str, str], identity_url: str, grace_seconds: float
) -> Listener:
    app = create_console_app(settings, services, identity_url)
    # Its own clock: it has no runtime, only requests in flight to finish.
    return Listener(
        "console",
        app,
        settings.host,
        settings.port,
        Shutdown(grace_seconds),
        note="the operator console",
    )


def _reachable(listener: Listener) -> str:
    """Where the console reaches a service of this process (a wildcard bind is not an address)."""
    host = "127.0.0.1" if listener.host in WILDCARDS else listener.host
    return f"http://{host}:{listener.port}"


@main.command()
def run() -> None:
    """Run the whole system in one process on the embedded defaults (SQLite, local files),
    with the operator console beside it."""
    settings = _setup_logging()
    listeners = [_listener(name) for name in SERVICES]
    services = {listener.name: _reachable(listener) for listener in listeners}
    identity = services.get("identity", settings.identity_url)
    grace = settings.shutdown_grace_seconds
    listeners.append(_console_listener(ConsoleSettings(), services, identity, grace))
    logger.info("data directory: %s", settings.data_dir.resolve())
    run_servers(serve_all(listeners))


def _named_url(value: str) -> tuple[str, str]:
    name, sep, url = value.partition("=")
    if not sep or not name or not url.startswith(("http://", "https://")):
        raise click.BadParameter(
            f"{value!r} is not NAME=http(s)://HOST:PORT", param_hint="--service"
        )
    return name, url


@main.command()
@click.option(
    "--service",
    "named",
    multiple=True,
    required=True,
    metavar="NAME=URL",
    help="A service to show and its REST base URL (repeat for each).",
)
@click.option(
    "--identity",
    "identity_url",
    metavar="URL",
    help="Identity's REST base URL for sign-in (default: the identity --service, "
    "else LKERN_IDENTITY_URL).",
)
@click.option("--host", help="Address to bind (default LKERN_CONSOLE_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port (default LKERN_CONSOLE_PORT or 8099).")
def console(
    named: tuple[str, ...], identity_url: str | None, host: str | None, port: int | None
) -> None:
    """Serve the operator console for running services, as in production."""
    settings = _setup_logging()
    services = dict(_named_url(value) for value in named)
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    console_settings = ConsoleSettings(**overrides)  # type: ignore[arg-type]
    identity = identity_url or services.get("identity") or settings.identity_url
    grace = settings.shutdown_grace_seconds
    run_servers(serve_all([_console_listener(console_settings, services, identity, grace)]))


@main.command()
@click.argument("service", type=ServiceName())
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    envvar="LKERN_WORKERS",
    help="Processes serving the service's HTTP and gRPC ports together, each with its own "
    "pools, relay and consumer (README: sizing pools against max_connections).",
)
@click.option("--worker-link", hidden=True, help="Set by the supervisor for its workers.")
def serve(service: str, workers: int, worker_link: str | None) -> None:
    """Run one service, as in production: in this process, or in WORKERS processes
    under this one."""
    _setup_logging()
    definition = SERVICES[service]
    settings = definition.load_settings()
    grace = settings.shutdown_grace_seconds
    if worker_link is not None:
        link = WorkerLink.parse(worker_link)
        run_servers(serve_all([_listener(service, link.http)], link=link))
        return
    if workers == 1:
        run_servers(serve_all([_listener(service)]))
        return
    if not settings.redis_url:
        logger.warning(
            "%s: %d workers count rate limits each on its own; set LKERN_REDIS_URL to share them",
            service,
            workers,
        )
    has_grpc = definition.grpc_services is not None and definition.grpc_port is not None
    supervisor = Supervisor(
        service=service,
        count=workers,
        host=settings.host,
        port=settings.port or definition.rest_port,
        grpc_port=(settings.grpc_port or definition.grpc_port) if has_grpc else None,
        grace_seconds=grace,
    )
    try:
        code = supervise(supervisor)
    except OSError as exc:
        raise click.ClickException(f"cannot listen: {exc}") from None
    raise SystemExit(code)


@main.command()
@click.argument("service", type=ServiceName("all"))
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
@click.argument("service", type=ServiceName())
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


def _services_that(
    names: tuple[str, ...], able: Callable[[ServiceDefinition], object], what: str
) -> list[ServiceDefinition]:
    """The named services (all that are ``able`` when none is named); a named one that
    is not is refused, with the names of those that are."""
    fit = {name: d for name, d in SERVICES.items() if able(d)}
    unknown = [name for name in names if name not in fit]
    if unknown:
        choices = ", ".join(sorted(fit)) or "none"
        raise click.BadParameter(f"{', '.join(unknown)} {what} (those that do: {choices})")
    return [fit[name] for name in names] if names else list(fit.values())


def _consumers(names: tuple[str, ...]) -> list[ServiceDefinition]:
    return _services_that(names, lambda d: d.event_handlers, "consumes no events")


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

        rows = run_offline(definition, letters)
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
    handlers = definition.event_handlers
    assert handlers is not None

    async def replay(runtime: ServiceRuntime) -> list[tuple[uuid.UUID, str]]:
        return await replay_dead_letters(
            runtime.unit_of_work, handlers, runtime.name, list(ids) if ids else None
        )

    results = run_offline(definition, replay)
    for letter_id, result in results:
        click.echo(f"{letter_id}: {result}")
    click.echo(f"{len(results)} dead letter(s) replayed")
    if any(result.startswith("failed") for _, result in results):
        raise SystemExit(1)


def _with_files(names: tuple[str, ...]) -> list[ServiceDefinition]:
    return _services_that(names, lambda d: d.file_slots, "keeps no files")


@main.group()
def cleanup() -> None:
    """Permanent deletions that storage interrupted: list them, finish them now."""


@cleanup.command("list")
@click.argument("services", nargs=-1)
def cleanup_list(services: tuple[str, ...]) -> None:
    """List the unfinished deletions of SERVICES (default: every service with files)."""
    _setup_logging()
    for definition in _with_files(services):

        async def waiting(runtime: ServiceRuntime) -> list[DeletionAudit]:
            stmt = (
                select(DeletionAudit)
                .where(DeletionAudit.status.in_(UNFINISHED))
                .order_by(DeletionAudit.started_at)
            )
            async with runtime.unit_of_work() as uow:
                return list((await uow.session.scalars(stmt)).all())

        rows = run_offline(definition, waiting)
        click.echo(f"{definition.name}: {len(rows)} unfinished deletion(s)")
        for row in rows:
            click.echo(
                f"  {row.id}  {row.status:<8} {row.item_type} {row.item_code or row.item_id}  "
                f"files {row.files_deleted}/{row.files_found} deleted, {row.files_failed} failed  "
                f"retries={row.retry_count}  error={(row.error_message or '-')[:120]}"
            )


@cleanup.command("retry")
@click.argument("services", nargs=-1)
def cleanup_retry(services: tuple[str, ...]) -> None:
    """Finish the unfinished deletions of SERVICES now (default: every service with files),
    a line for each; exits 1 while some still wait for storage."""
    _setup_logging()
    waiting = 0
    for definition in _with_files(services):

        def report(outcome: DeletionOutcome, service: str = definition.name) -> None:
            click.echo(f"{service}: audit {outcome.audit_id} {outcome.status}")

        async def retry(runtime: ServiceRuntime) -> list[DeletionOutcome]:
            assert runtime.cleanup is not None
            return await runtime.cleanup.retry_all(report)

        outcomes = run_offline(definition, retry)
        left = sum(outcome.status is not DeletionStatus.COMPLETED for outcome in outcomes)
        waiting += left
        click.echo(f"{definition.name}: {len(outcomes)} retried, {left} still waiting")
    if waiting:
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


@main.command()
@click.argument("services", nargs=-1, type=ServiceName())
def check(services: tuple[str, ...]) -> None:
    """Check services (every one when none is named) against the conventions of SPEC §14.

    One line per violation, ``path:line: RULE-ID message``; exits 1 when there is any.
    """
    # The rules import what they check (apps, Alembic); the other commands need none of it.
    from lkern.conformance import check as check_services

    names = services or tuple(SERVICES)
    violations = check_services([SERVICES[name] for name in names], SERVICES)
    for violation in violations:
        click.echo(violation.render())
    if violations:
        raise click.ClickException(
            f"{len(violations)} violation(s) in {len({v.path for v in violations})} file(s)"
        )
    click.echo(f"{len(names)} service(s) checked ({', '.join(names)}): no violations")


@main.command("new-service")
@click.argument("name")
@click.option("--code", required=True, help="The service's code, e.g. lkms150.")
@click.option("--port", required=True, type=int, help="Its REST port.")
@click.option("--grpc-port", type=int, help="Its gRPC port (with --grpc).")
@click.option("--prefix", help="Give its records codes PREFIX-YYMM-NNNN (2-4 capitals).")
@click.option("--files", is_flag=True, help="Its records keep attachments (object storage).")
@click.option("--grpc", is_flag=True, help="Offer its records over gRPC.")
@click.option("--description", help="One line on what it keeps (OpenAPI, the service list).")
def new_service(
    name: str,
    code: str,
    port: int,
    grpc_port: int | None,
    prefix: str | None,
    files: bool,
    grpc: bool,
    description: str | None,
) -> None:
    """Write a new service NAME with one resource into this source checkout, registered."""
    _setup_logging()
    spec = NewService(name, code, port, grpc_port, prefix, files, grpc, description)
    try:
        written = generate(spec, SERVICES, CHECKOUT)
    except Refused as exc:
        raise click.ClickException(f"{exc}. Nothing was written.") from None
    for path in written:
        click.echo(str(path))


def _add_service_commands() -> None:
    """The commands services bring (identity: ``users``)."""
    for definition in SERVICES.values():
        if definition.commands is not None:
            for command in definition.commands(definition):
                main.add_command(command)


_add_service_commands()
