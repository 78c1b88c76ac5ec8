"""The ``lkern`` command: run, serve and migrate the services."""

from __future__ import annotations

import asyncio
import logging

import click

from lkern.platform.app import create_app
from lkern.platform.logging import configure_logging
from lkern.platform.migrations import downgrade, revision, upgrade
from lkern.platform.runner import Listener, serve_all
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


@main.command()
def run() -> None:
    """Run the whole system in one process on the embedded defaults (SQLite, local files)."""
    settings = _setup_logging()
    listeners = []
    for name, definition in SERVICES.items():
        service_settings = load_settings(name)
        listeners.append(
            Listener(
                name,
                create_app(definition, service_settings),
                service_settings.host,
                service_settings.port or definition.rest_port,
            )
        )
    logger.info("data directory: %s", settings.data_dir.resolve())
    asyncio.run(serve_all(listeners, grace_seconds=settings.shutdown_grace_seconds))


@main.command()
@click.argument("service", type=click.Choice(sorted(SERVICES)))
def serve(service: str) -> None:
    """Run one service in this process, as in production."""
    _setup_logging()
    definition = SERVICES[service]
    settings = load_settings(service)
    listener = Listener(
        service,
        create_app(definition, settings),
        settings.host,
        settings.port or definition.rest_port,
    )
    asyncio.run(serve_all([listener], grace_seconds=settings.shutdown_grace_seconds))


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
        settings = load_settings(name)
        if direction == "upgrade":
            upgrade(SERVICES[name], settings, rev or "head")
        else:
            downgrade(SERVICES[name], settings, rev or "base")
        click.echo(
            f"{name}: {direction} to {rev or ('head' if direction == 'upgrade' else 'base')} done"
        )


@main.command("make-migration")
@click.argument("service", type=click.Choice(sorted(SERVICES)))
@click.argument("message")
def make_migration(service: str, message: str) -> None:
    """Write a new revision for SERVICE from the difference between its models and database."""
    _setup_logging()
    revision(SERVICES[service], load_settings(service), message)
