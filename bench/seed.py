"""Contacts at scale: generated rows copied straight into contacts' table.

Seeding goes around the API on purpose: a million POSTs would take longer
than the whole benchmark. The rows are what the API would have stored
(lower-case e-mail, E.164 phone, UUIDv7 ids) and names, companies and
activity are drawn from fixed lists, so every size has the same shape and
a search term matches the same share of contacts at every size.
"""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from uuid_utils.compat import uuid7

FIRST_NAMES = [
    "Ada",
    "Alan",
    "Alice",
    "Anna",
    "Boris",
    "Clara",
    "Daniel",
    "Eva",
    "Felix",
    "Grace",
    "Hana",
    "Ivan",
    "Jana",
    "Karl",
    "Lena",
    "Marek",
    "Maria",
    "Martin",
    "Nora",
    "Oskar",
    "Petra",
    "Rita",
    "Simon",
    "Tomas",
    "Ursula",
    "Viktor",
    "Zuzana",
    "Emil",
    "Ines",
    "Juraj",
]
SURNAMES = [
    "Novak",
    "Horvath",
    "Kovac",
    "Varga",
    "Toth",
    "Nagy",
    "Balaz",
    "Molnar",
    "Szabo",
    "Lukac",
    "Kral",
    "Hudak",
    "Benko",
    "Sokol",
    "Fischer",
    "Weber",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Schulz",
    "Keller",
    "Brandt",
    "Lovelace",
    "Turing",
    "Hopper",
    "Curie",
    "Tesla",
    "Noether",
    "Dirac",
    "Planck",
    "Euler",
    "Gauss",
    "Riemann",
    "Hilbert",
    "Cantor",
    "Leibniz",
    "Kepler",
    "Galilei",
    "Pascal",
    "Fermat",
    "Laplace",
    "Fourier",
    "Cauchy",
    "Galois",
    "Abel",
    "Jacobi",
    "Poisson",
    "Bernoulli",
    "Huygens",
    "Faraday",
]
COMPANIES = [
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
    "Soylent",
    "Hooli",
    "Vandelay",
    "Wonka",
    "Gringotts",
    "Aperture",
    "Monarch",
    "Oscorp",
]
#: Seeded phones are +49 152 followed by eight digits; W2's writes use other prefixes.
SEED_PHONE_PREFIX = "+49152"
ACTIVE_SHARE = 0.9
COPY_COLUMNS = (
    "id",
    "name",
    "email",
    "phone",
    "company",
    "notes",
    "is_active",
    "version",
    "created_at",
    "updated_at",
)


def _rows(start: int, stop: int, rng: random.Random) -> list[tuple[object, ...]]:
    now = datetime.now(UTC)
    rows: list[tuple[object, ...]] = []
    for n in range(start, stop):
        first, last = rng.choice(FIRST_NAMES), rng.choice(SURNAMES)
        company = rng.choice(COMPANIES) if rng.random() < 0.7 else None
        rows.append(
            (
                uuid7(),
                f"{first} {last}",
                f"{first}.{last}.{n}@example.com".lower(),
                f"{SEED_PHONE_PREFIX}{n:08d}" if rng.random() < 0.8 else None,
                company and f"{company} Ltd",
                None,
                rng.random() < ACTIVE_SHARE,
                1,
                now,
                now,
            )
        )
    return rows


async def count_contacts(url: str) -> int:
    connection = await asyncpg.connect(url)
    try:
        return int(await connection.fetchval("SELECT count(*) FROM contacts"))
    finally:
        await connection.close()


async def seed_to(url: str, size: int, *, chunk: int = 50_000) -> int:
    """Add generated contacts until the table holds ``size``; returns how many were added."""
    connection = await asyncpg.connect(url)
    try:
        have = int(await connection.fetchval("SELECT count(*) FROM contacts"))
        rng = random.Random(have)
        for start in range(have, size, chunk):
            stop = min(size, start + chunk)
            await connection.copy_records_to_table(
                "contacts", records=_rows(start, stop, rng), columns=COPY_COLUMNS
            )
        if size > have:
            await connection.execute("VACUUM ANALYZE contacts")
        return max(0, size - have)
    finally:
        await connection.close()


async def sample_ids(url: str, path: Path, count: int = 20_000, *, table: str = "contacts") -> None:
    """Random ids of live rows, one per line: contacts for W1's requests, issues
    for W7's uploads."""
    sql = f"SELECT id FROM {table} WHERE deleted_at IS NULL ORDER BY random() LIMIT $1"
    await sample_rows(url, path, sql, count)


async def sample_rows(url: str, path: Path, sql: str, count: int) -> None:
    """The rows ``sql`` selects (``LIMIT $1``), their columns joined by spaces, a row a line."""
    connection = await asyncpg.connect(url)
    try:
        rows = await connection.fetch(sql, count)
    finally:
        await connection.close()
    text = "".join(" ".join(str(value) for value in row.values()) + "\n" for row in rows)
    await asyncio.to_thread(path.write_text, text)


def search_terms(path: Path) -> None:
    """W3's search terms: surnames, each matching about 1/len(SURNAMES) of the contacts."""
    path.write_text("".join(f"{term}\n" for term in SURNAMES))


async def sample_selective_terms(url: str, path: Path, count: int = 2_000) -> None:
    """W3s's terms: the part of one live contact's e-mail address after the first name
    (``novak.1234@``), each matching that contact alone."""
    sql = (
        "SELECT substring(email from '[^.]+[.][0-9]+@') FROM contacts "
        "WHERE deleted_at IS NULL AND is_active ORDER BY random() LIMIT $1"
    )
    await sample_rows(url, path, sql, count)
