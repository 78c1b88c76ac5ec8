"""Parts at scale, with boxes and stock: generated rows copied straight into inventory's tables.

As for contacts and issues, seeding goes around the API (``COPY``). The rows are
what the API would have stored: 4-letter ids drawn without repeats from the
26⁴ of them, the lower-cased ``search_text`` the service builds
(``search_text_of``), and for 60 % of the parts one location holding them, in
boxes of 100 locations filled in order, each box's ``used`` and ``quantity``
set to match. Every part has one of ``MANUFACTURERS``, so a search for a
manufacturer's name matches about 1/len(MANUFACTURERS) of the parts at every
size; the stock workload changes a sample of the stocked locations.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from uuid_utils.compat import uuid7

from bench.seed import sample_rows
from lkern.inventory.models import SEARCH_SOURCES, search_text_of

#: W8's search terms: each part is made by one of them.
MANUFACTURERS = [
    "yageo",
    "murata",
    "vishay",
    "kemet",
    "bourns",
    "panasonic",
    "samsung",
    "nichicon",
    "wurth",
    "littelfuse",
    "nexperia",
    "onsemi",
    "infineon",
    "microchip",
    "espressif",
    "molex",
    "amphenol",
    "harwin",
    "kingbright",
    "osram",
    "toshiba",
    "renesas",
    "maxim",
    "stmicro",
    "nordic",
    "silabs",
    "taiyo",
    "walsin",
    "uniroyal",
    "eaton",
    "omron",
    "hirose",
    "coilcraft",
    "sunlord",
    "lumberg",
    "keystone",
    "cui devices",
    "mean well",
    "gigadevice",
    "winbond",
]
#: (category, what the description calls it, package choices, values).
KINDS = [
    ("resistors", "resistor", ["0402", "0603", "0805"], ["10R", "100R", "1k", "4k7", "10k"]),
    ("capacitors", "ceramic capacitor", ["0402", "0603", "0805"], ["100n", "1u", "10u", "22p"]),
    ("inductors", "power inductor", ["1210", "2016", "4030"], ["1u0", "4u7", "10u", "22u"]),
    ("semiconductors", "N-MOSFET", ["SOT-23", "SOT-223", "DPAK"], ["20V 3A", "30V 5A", "60V 1A"]),
    ("ics", "LDO regulator", ["SOT-23-5", "SOT-223"], ["3.3V 500mA", "5V 1A", "1.8V 300mA"]),
    ("connectors", "pin header", ["THT", "SMD"], ["1x4", "2x5", "1x10", "2x20"]),
    ("leds", "LED", ["0603", "0805", "5mm"], ["red", "green", "blue", "white"]),
]
TAGS = ["smd", "tht", "automotive", "low-noise", "high-temp", "stock-item"]
STOCKED_SHARE = 0.6
BOX_CAPACITY = 100
PART_COLUMNS = (
    *SEARCH_SOURCES,
    "package",
    "seller",
    "seller_link",
    "total_quantity",
    "search_text",
    "id",
    "created_at",
    "updated_at",
    "version",
)
#: Every box's occupancy and pieces from its locations, after each round of seeding.
BOX_FIGURES_SQL = (
    "UPDATE boxes SET used = held.used, quantity = held.quantity FROM "
    "(SELECT box_no, count(*) AS used, sum(quantity) AS quantity FROM locations "
    "GROUP BY box_no) AS held WHERE boxes.box_no = held.box_no"
)


def _code(number: int) -> str:
    letters = []
    for _ in range(4):
        number, digit = divmod(number, 26)
        letters.append(string.ascii_uppercase[digit])
    return "".join(letters)


def part_codes() -> list[str]:
    """Every id in one fixed random order: each size takes the next ones, never a taken one."""
    numbers = list(range(26**4))
    random.Random(0).shuffle(numbers)
    return [_code(number) for number in numbers]


def _part(code: str, rng: random.Random, now: datetime) -> dict[str, Any]:
    category, noun, packages, values = rng.choice(KINDS)
    package, value = rng.choice(packages), rng.choice(values)
    maker = rng.choice(MANUFACTURERS)
    values_of = {
        "code": code,
        "description": f"{noun} {value} {package}",
        "manufacturer": maker.title(),
        "manufacturer_code": f"{maker[:2].upper()}{rng.randrange(10**6):06d}-{package}",
        "category": category,
        "tags": rng.sample(TAGS, rng.randint(0, 2)),
        "package": package,
        "attributes": {"value": value},
        "documents": [],
    }
    return {
        **values_of,
        "id": uuid7(),
        "seller": None,
        "seller_link": None,
        "search_text": search_text_of(values_of),
        "created_at": now,
        "updated_at": now,
        "version": 1,
    }


async def seed_parts_to(url: str, size: int, *, chunk: int = 20_000) -> int:
    """Add generated parts (and the stock of 60 % of them) until there are ``size``;
    returns how many were added."""
    connection = await asyncpg.connect(url)
    try:
        have = int(await connection.fetchval("SELECT count(*) FROM parts"))
        if size <= have:
            return 0
        located = int(await connection.fetchval("SELECT count(*) FROM locations"))
        codes = await asyncio.to_thread(part_codes)
        rng = random.Random(have)
        now = datetime.now(UTC)
        for start in range(have, size, chunk):
            parts, locations = [], []
            for code in codes[start : min(size, start + chunk)]:
                part = _part(code, rng, now)
                if rng.random() < STOCKED_SHARE:
                    box_no, loc_no = divmod(located, BOX_CAPACITY)
                    quantity = rng.randint(1_000, 5_000)
                    locations.append((box_no + 1, loc_no + 1, code, quantity))
                    part["total_quantity"] = quantity
                    located += 1
                else:
                    part["total_quantity"] = 0
                for name in ("tags", "attributes", "documents"):
                    part[name] = json.dumps(part[name])
                parts.append(tuple(part[name] for name in PART_COLUMNS))
            await connection.copy_records_to_table("parts", records=parts, columns=PART_COLUMNS)
            boxes = -(-located // BOX_CAPACITY)
            await connection.execute(
                "INSERT INTO boxes (box_no, description, capacity, used, quantity, version, "
                "created_at, updated_at) SELECT n, 'Bench box ' || n, $2, 0, 0, 1, $3, $3 "
                "FROM generate_series(1, $1) AS n ON CONFLICT (box_no) DO NOTHING",
                boxes,
                BOX_CAPACITY,
                now,
            )
            await connection.copy_records_to_table(
                "locations",
                records=locations,
                columns=("box_no", "loc_no", "part_id", "quantity"),
            )
        await connection.execute(BOX_FIGURES_SQL)
        await connection.execute(
            "INSERT INTO tallies (name, value) VALUES ('parts', $1) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            size,
        )
        await connection.execute("VACUUM ANALYZE parts")
        await connection.execute("VACUUM ANALYZE locations")
        await connection.execute("VACUUM ANALYZE boxes")
        return size - have
    finally:
        await connection.close()


async def sample_locations(url: str, path: Path, count: int = 5_000) -> None:
    """Stocked locations for the stock workload, ``CODE BOX LOC`` a line."""
    sql = "SELECT part_id, box_no, loc_no FROM locations ORDER BY random() LIMIT $1"
    await sample_rows(url, path, sql, count)


def part_search_terms(path: Path) -> None:
    """W8's search terms: the manufacturers, each matching about 1/len of the parts."""
    path.write_text("".join(f"{maker}\n" for maker in MANUFACTURERS))
