"""Inventory's domain rules: part ids, placement ranking, buildability, CSV rows. No I/O."""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from lkern.inventory.enums import PlacementRule

ID_ALPHABET = string.ascii_uppercase
ID_LENGTH = 4
#: How many ids exist: 26⁴ = 456,976.
ID_SPACE = len(ID_ALPHABET) ** ID_LENGTH
#: Random tries before a create gives up with PART_IDS_EXHAUSTED. With a
#: fraction f of the space taken, all of them collide with probability f**32:
#: one create in a million fails at f = 0.65, one in 30 at f = 0.9.
ID_ATTEMPTS = 32


def new_part_id() -> str:
    """A random 4-letter id (``BZQM``); the caller retries when it is taken."""
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


def is_part_id(text: str) -> bool:
    return len(text) == ID_LENGTH and all(letter in ID_ALPHABET for letter in text)


# --- buildability ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PartNeed:
    part_id: str
    required: int
    available: int

    @property
    def shortfall(self) -> int:
        return max(0, self.required - self.available)


@dataclass(frozen=True, slots=True)
class Buildability:
    builds: int
    max_buildable: int
    parts: list[PartNeed]

    @property
    def can_build(self) -> bool:
        """Whether the stock covers ``builds``; a project that needs nothing has nothing
        to build."""
        return bool(self.parts) and all(need.shortfall == 0 for need in self.parts)


def buildability(
    requirements: Mapping[str, int], available: Mapping[str, int], builds: int
) -> Buildability:
    """How many builds the stock allows (every location summed), and what ``builds`` lack.

    Exact integer arithmetic: ``max_buildable`` is the least, over the
    requirements, of the stock divided by the quantity per build."""
    parts = [
        PartNeed(part_id, per_build * builds, available.get(part_id, 0))
        for part_id, per_build in requirements.items()
    ]
    max_buildable = min(
        (available.get(part_id, 0) // per_build for part_id, per_build in requirements.items()),
        default=0,
    )
    return Buildability(builds, max_buildable, parts)


def take_smallest_first(
    locations: Sequence[tuple[int, int, int]], needed: int
) -> list[tuple[int, int, int]]:
    """From ``(box_no, loc_no, quantity)`` locations, how much to take from which to make
    ``needed``: the smallest quantities first (emptying locations), ties by place.
    The caller has checked the sum suffices."""
    taken: list[tuple[int, int, int]] = []
    for box_no, loc_no, quantity in sorted(locations, key=lambda loc: (loc[2], loc[0], loc[1])):
        if needed <= 0:
            break
        amount = min(quantity, needed)
        taken.append((box_no, loc_no, amount))
        needed -= amount
    return taken


# --- placement ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BoxLayout:
    """One box as placement sees it: its size and which locations hold what."""

    box_no: int
    capacity: int
    #: loc_no → (part id, category) of what it holds.
    occupied: Mapping[int, tuple[str, str | None]] = field(default_factory=dict)

    @property
    def free(self) -> int:
        return self.capacity - len(self.occupied)


@dataclass(frozen=True, slots=True)
class Suggestion:
    box_no: int
    loc_no: int
    rule: PlacementRule
    reason: str


def suggest_placement(
    part_id: str, category: str | None, boxes: Iterable[BoxLayout], limit: int
) -> list[Suggestion]:
    """Free locations for ``part_id``, best first.

    1. next to one of the part's own locations (nearest first);
    2. in a box holding parts of the same category (most such parts first);
    3. in the boxes with the most free room.
    Full boxes have no free location and are never suggested; each location
    is suggested once, under the strongest rule that applies."""
    ranked: list[tuple[tuple[int, int, int, int], Suggestion]] = []
    for box in boxes:
        if box.free <= 0:
            continue
        own = [loc for loc, (held, _) in box.occupied.items() if held == part_id]
        same = sum(1 for held, cat in box.occupied.values() if cat and cat == category)
        for loc_no in range(1, box.capacity + 1):
            if loc_no in box.occupied:
                continue
            if own:
                nearest = min(own, key=lambda loc: abs(loc - loc_no))
                distance = abs(nearest - loc_no)
                reason = (
                    f"next to location {box.box_no}/{nearest}, which already holds {part_id}"
                    if distance == 1
                    else f"in box {box.box_no}, {distance} places from location "
                    f"{box.box_no}/{nearest}, which holds {part_id}"
                )
                key = (0, distance, box.box_no, loc_no)
                ranked.append(
                    (key, Suggestion(box.box_no, loc_no, PlacementRule.NEXT_TO_PART, reason))
                )
            elif same:
                plural = "part" if same == 1 else "parts"
                reason = f"box {box.box_no} holds {same} other {plural} of category {category}"
                key = (1, -same, box.box_no, loc_no)
                ranked.append(
                    (key, Suggestion(box.box_no, loc_no, PlacementRule.SAME_CATEGORY, reason))
                )
            else:
                reason = f"box {box.box_no} has {box.free} of {box.capacity} locations free"
                key = (2, -box.free, box.box_no, loc_no)
                ranked.append(
                    (key, Suggestion(box.box_no, loc_no, PlacementRule.MOST_ROOM, reason))
                )
    ranked.sort(key=lambda pair: pair[0])
    return [suggestion for _, suggestion in ranked[:limit]]
