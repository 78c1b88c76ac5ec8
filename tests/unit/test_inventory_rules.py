"""Inventory's pure rules: part ids, buildability, taking stock, placement, CSV rows."""

from __future__ import annotations

import pytest

from lkern.inventory import rules
from lkern.inventory.enums import PlacementRule
from lkern.inventory.imports import parse_csv
from lkern.inventory.models import search_text_of
from lkern.platform.errors import Unprocessable


def test_part_ids_are_four_capital_letters():
    ids = {rules.new_part_id() for _ in range(500)}
    assert all(rules.is_part_id(part_id) for part_id in ids)
    assert len(ids) > 490
    assert rules.ID_SPACE == 26**4
    assert (
        not rules.is_part_id("abcd")
        and not rules.is_part_id("ABC")
        and not rules.is_part_id("ABÇD")
    )


def test_buildability_is_exact_over_summed_stock():
    result = rules.buildability({"AAAA": 3, "BBBB": 2}, {"AAAA": 10, "BBBB": 4}, builds=3)
    assert result.max_buildable == 2 and not result.can_build
    assert [(n.part_id, n.required, n.available, n.shortfall) for n in result.parts] == [
        ("AAAA", 9, 10, 0),
        ("BBBB", 6, 4, 2),
    ]
    assert rules.buildability({"AAAA": 1}, {}, builds=1).max_buildable == 0
    assert not rules.buildability({}, {}, builds=1).can_build  # nothing to build


def test_stock_is_taken_from_the_smallest_locations_first():
    held = [(1, 1, 7), (2, 5, 3), (1, 2, 3)]
    assert rules.take_smallest_first(held, 8) == [(1, 2, 3), (2, 5, 3), (1, 1, 2)]
    assert rules.take_smallest_first(held, 3) == [(1, 2, 3)]


def layout(box_no: int, capacity: int, **occupied: tuple[str, str | None]) -> rules.BoxLayout:
    return rules.BoxLayout(box_no, capacity, {int(k[1:]): v for k, v in occupied.items()})


def test_placement_next_to_own_then_category_then_room():
    boxes = [
        layout(1, 4, l2=("PART", "caps")),
        layout(2, 3, l1=("CAP1", "caps")),
        layout(3, 6),
        layout(4, 1, l1=("XXXX", "ics")),  # full
    ]
    found = rules.suggest_placement("PART", "caps", boxes, limit=20)
    assert [(s.box_no, s.loc_no, s.rule) for s in found[:3]] == [
        (1, 1, PlacementRule.NEXT_TO_PART),
        (1, 3, PlacementRule.NEXT_TO_PART),
        (1, 4, PlacementRule.NEXT_TO_PART),
    ]
    assert [(s.box_no, s.rule) for s in found[3:5]] == [(2, PlacementRule.SAME_CATEGORY)] * 2
    assert {s.box_no for s in found[5:]} == {3}
    assert all(s.box_no != 4 for s in found)
    assert found[0].reason == "next to location 1/2, which already holds PART"
    assert found[3].reason == "box 2 holds 1 other part of category caps"
    assert found[5].reason == "box 3 has 6 of 6 locations free"
    assert len(rules.suggest_placement("PART", "caps", boxes, limit=2)) == 2


def test_more_room_wins_among_boxes_without_a_link():
    found = rules.suggest_placement("NEWP", None, [layout(1, 2), layout(2, 5)], limit=1)
    assert (found[0].box_no, found[0].rule) == (2, PlacementRule.MOST_ROOM)


def test_search_text_holds_every_searched_field_lower_cased():
    text = search_text_of(
        {
            "code": "BZQM",
            "description": "Timer",
            "manufacturer": "TI",
            "manufacturer_code": "NE555",
            "category": "ICs",
            "tags": ["DIP"],
            "attributes": {"Vcc": "5V"},
            "documents": [{"filename": "DS.pdf"}],
        }
    )
    assert text.split("\n") == ["bzqm", "timer", "ti", "ne555", "ics", "dip", "5v", "ds.pdf"]


def test_csv_rows_are_checked_one_by_one():
    parsed = parse_csv(
        "description,tags,attributes,box_no,loc_no,quantity\n"
        "ok,a;b,k=v;x=y,1,2,3\n"
        ",,,,,\n"
        "bad attr,,novalue,,,\n"
        "bad qty,,,1,1,0\n"
        "too,many,fields,1,1,1,1\n"
    )
    assert [row.number for row in parsed.rows] == [2]
    row = parsed.rows[0]
    assert row.part.tags == ["a", "b"] and row.part.attributes == {"k": "v", "x": "y"}
    assert row.stock is not None and (row.stock.box_no, row.stock.loc_no, row.stock.quantity) == (
        1,
        2,
        3,
    )
    assert [(e.row, e.field) for e in parsed.errors] == [
        (3, "description"),
        (4, "attributes"),
        (5, "quantity"),
        (6, None),
    ]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "CSV_EMPTY"),
        ("colour\nred\n", "CSV_UNKNOWN_COLUMNS"),
        ("tags\nx\n", "CSV_MISSING_COLUMNS"),
    ],
)
def test_csv_headers_are_checked(text: str, code: str):
    with pytest.raises(Unprocessable) as raised:
        parse_csv(text)
    assert raised.value.code == code
