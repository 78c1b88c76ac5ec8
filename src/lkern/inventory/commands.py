"""Inventory's ``lkern`` commands: ``lkern inventory import FILE.csv [--dry-run]``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from lkern.inventory.imports import import_csv
from lkern.inventory.schemas import ImportResult
from lkern.platform.bootstrap import run_offline
from lkern.platform.errors import DomainError
from lkern.platform.logging import configure_logging
from lkern.platform.migrations import upgrade
from lkern.platform.runtime import ServiceRuntime
from lkern.platform.service import ServiceDefinition


def commands(definition: ServiceDefinition) -> list[click.Command]:
    @click.group()
    def inventory() -> None:
        """Inventory's parts and stock."""

    @inventory.command("import")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--dry-run", is_flag=True, help="Check every row; write nothing.")
    def import_parts(file: Path, dry_run: bool) -> None:
        """Create parts (and stock: box_no, loc_no, quantity columns) from a CSV file.

        Every row is checked first; nothing is written unless all are valid."""
        settings = definition.load_settings()
        configure_logging(settings.log_format, settings.log_level)
        try:
            text = file.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise click.ClickException(f"{file} is not UTF-8 text") from None
        rows = max(text.count("\n") - 1, 0)

        async def run(runtime: ServiceRuntime) -> ImportResult:
            await asyncio.to_thread(upgrade, runtime.definition, runtime.settings)
            with click.progressbar(length=rows, label="writing parts", file=sys.stderr) as bar:
                try:
                    return await import_csv(
                        runtime.unit_of_work,
                        text,
                        dry_run=dry_run,
                        user_id=None,
                        progress=bar.update,
                    )
                except DomainError as exc:
                    raise click.ClickException(exc.detail) from None

        result = run_offline(definition, run)
        for error in result.errors:
            where = f" {error.field}" if error.field else ""
            click.echo(f"row {error.row}{where}: {error.message}", err=True)
        if result.errors:
            raise click.ClickException(
                f"{len(result.errors)} problems in {result.rows} rows; nothing was written"
            )
        if dry_run:
            click.echo(f"{result.rows} rows are valid; nothing written (dry run)")
        else:
            click.echo(f"{len(result.created)} parts created")

    return [inventory]
