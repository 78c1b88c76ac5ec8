"""Issues at scale: generated rows copied straight into issues' table, for W6 and W7.

As for contacts (``bench/seed.py``), seeding goes around the API. The rows are what
the API would have stored: codes ``PREFIX-YYMM-NNNN`` numbered per type and month,
with the code counters set to match so issues created through the API afterwards
get the next free numbers; statuses with the timestamps the status machine sets.
Titles and descriptions are built from fixed lists of product areas and symptoms,
each issue about one area, so a search for an area's word matches about
1/len(AREAS) of the issues at every size.
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
from uuid_utils.compat import uuid7

from lkern.issues.enums import IssueType
from lkern.issues.rules import CODE_PREFIXES
from lkern.platform.codes import format_code, period_of

#: Product areas: what an issue is about; each one's word is a W6 search term.
AREAS = [
    ("invoice", "Invoice export"),
    ("dashboard", "Dashboard"),
    ("login", "Login page"),
    ("password", "Password reset"),
    ("calendar", "Calendar sync"),
    ("printer", "Printer driver"),
    ("webhook", "Webhook delivery"),
    ("payroll", "Payroll run"),
    ("shipment", "Shipment tracking"),
    ("warehouse", "Warehouse picking list"),
    ("barcode", "Barcode scanner"),
    ("newsletter", "Newsletter editor"),
    ("timesheet", "Timesheet approval"),
    ("checkout", "Checkout form"),
    ("refund", "Refund workflow"),
    ("currency", "Currency conversion"),
    ("spreadsheet", "Spreadsheet import"),
    ("thumbnail", "Thumbnail generation"),
    ("permissions", "Role permissions"),
    ("audit", "Audit log"),
    ("mobile", "Mobile app"),
    ("offline", "Offline mode"),
    ("notification", "Push notification"),
    ("signature", "E-signature"),
    ("voucher", "Voucher codes"),
    ("inventory", "Inventory count"),
    ("quotation", "Quotation template"),
    ("reminder", "Payment reminder"),
    ("backup", "Nightly backup"),
    ("translation", "Translation editor"),
    ("keyboard", "Keyboard shortcuts"),
    ("upload", "Attachment upload"),
    ("reporting", "Monthly reporting"),
    ("subscription", "Subscription renewal"),
    ("geocoding", "Address geocoding"),
    ("tax", "Tax calculation"),
    ("onboarding", "Onboarding wizard"),
    ("scheduler", "Job scheduler"),
    ("chat", "Support chat widget"),
    ("archive", "Document archive"),
]
SYMPTOMS = [
    "fails on Safari",
    "is slow with many rows",
    "shows wrong totals",
    "times out after the update",
    "crashes when the list is empty",
    "ignores the user's time zone",
    "loses changes on reload",
    "sends duplicate e-mails",
    "does not respect the language setting",
    "rounds amounts incorrectly",
    "needs a filter by date",
    "should remember the last choice",
    "could export to CSV",
    "breaks the layout on small screens",
    "returns a blank page",
]
CONTEXT = [
    "Reported by a customer on the phone.",
    "Happens on Windows and macOS alike.",
    "Only some accounts are affected; the oldest ones, it seems.",
    "Steps: open the page, change one field, save, reload.",
    "Worked last month; the release notes mention nothing related.",
    "A workaround exists but takes a few minutes each time.",
    "Seen three times this week, always in the morning.",
    "The logs show nothing unusual around that time.",
    "Several users asked for this in the last survey.",
    "Blocks the end-of-month close for the finance team.",
]
TYPES = [("bug", 0.5), ("feature", 0.2), ("improvement", 0.15), ("task", 0.15)]
PRIORITIES = [("low", 0.2), ("medium", 0.5), ("high", 0.25), ("critical", 0.05)]
STATUSES = [("open", 0.3), ("in_progress", 0.15), ("resolved", 0.15), ("closed", 0.35)]
STATUSES += [("rejected", 0.05)]
#: Seeded issues were created over these last months, before the current one, so
#: their codes never meet the ones the API gives out now.
MONTHS_BACK = 24
COPY_COLUMNS = (
    "id",
    "code",
    "title",
    "description",
    "type",
    "status",
    "priority",
    "reporter_id",
    "assignee_id",
    "contact_id",
    "attachments",
    "resolved_at",
    "closed_at",
    "version",
    "created_at",
    "updated_at",
)


def _pick(rng: random.Random, shares: list[tuple[str, float]]) -> str:
    return rng.choices([value for value, _ in shares], [share for _, share in shares])[0]


def _rows(
    count: int, counters: Counter[tuple[str, str]], rng: random.Random
) -> list[tuple[object, ...]]:
    now = datetime.now(UTC)
    first_of_month = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    people = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(50)]
    rows: list[tuple[object, ...]] = []
    for _ in range(count):
        created = first_of_month - timedelta(seconds=rng.uniform(1, MONTHS_BACK * 30 * 86400))
        kind = _pick(rng, TYPES)
        prefix = CODE_PREFIXES[IssueType(kind)]
        period = period_of(created)
        counters[(prefix, period)] += 1
        _, area = rng.choice(AREAS)
        status = _pick(rng, STATUSES)
        settled = created + timedelta(hours=rng.uniform(1, 24 * 40))
        resolved_at = settled if status in {"resolved", "closed"} else None
        closed_at = settled + timedelta(days=2) if status == "closed" else None
        description = " ".join(
            [f"{area} {rng.choice(SYMPTOMS)}.", *rng.sample(CONTEXT, rng.randint(1, 3))]
        )
        rows.append(
            (
                uuid7(),
                format_code(prefix, period, counters[(prefix, period)]),
                f"{area} {rng.choice(SYMPTOMS)}",
                description if rng.random() < 0.9 else None,
                kind,
                status,
                _pick(rng, PRIORITIES),
                rng.choice(people),
                rng.choice(people) if rng.random() < 0.7 else None,
                uuid.UUID(int=rng.getrandbits(128), version=4) if rng.random() < 0.5 else None,
                "[]",
                resolved_at,
                closed_at,
                1,
                created,
                closed_at or resolved_at or created,
            )
        )
    return rows


async def seed_issues_to(url: str, size: int, *, chunk: int = 20_000) -> int:
    """Add generated issues until the table holds ``size``; returns how many were added."""
    connection = await asyncpg.connect(url)
    try:
        have = int(await connection.fetchval("SELECT count(*) FROM issues"))
        rng = random.Random(have)
        counters: Counter[tuple[str, str]] = Counter()
        for row in await connection.fetch("SELECT prefix, period, value FROM code_counters"):
            counters[(row["prefix"], row["period"])] = row["value"]
        for start in range(have, size, chunk):
            rows = _rows(min(size, start + chunk) - start, counters, rng)
            await connection.copy_records_to_table("issues", records=rows, columns=COPY_COLUMNS)
        await connection.executemany(
            "INSERT INTO code_counters (prefix, period, value) VALUES ($1, $2, $3) "
            "ON CONFLICT (prefix, period) DO UPDATE SET value = excluded.value",
            [(prefix, period, value) for (prefix, period), value in counters.items()],
        )
        if size > have:
            await connection.execute("VACUUM ANALYZE issues")
        return max(0, size - have)
    finally:
        await connection.close()


def issue_search_terms(path: Path) -> None:
    """W6's search terms: the areas' words, each matching about 1/len(AREAS) of the issues."""
    path.write_text("".join(f"{word}\n" for word, _ in AREAS))
