"""The platform's pieces every resource's writes and lists share, without a database."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar

import pytest
from fastapi import Response
from pydantic import BaseModel, TypeAdapter, ValidationError

from lkern.contacts.models import Contact
from lkern.platform.http import with_etag
from lkern.platform.pagination import Slice, sort_columns
from lkern.platform.schemas import PartialUpdate, Trimmed, partial_changes, replacement


class ThingCreate(BaseModel):
    name: str
    colour: str | None = None
    size: int = 3


class ThingUpdate(PartialUpdate):
    nullable: ClassVar[frozenset[str]] = frozenset({"colour"})

    name: str | None = None
    colour: str | None = None
    size: int | None = None


class TestTrimmed:
    name = TypeAdapter(Annotated[str, Trimmed(5, 1)])

    def test_surrounding_whitespace_is_dropped(self):
        assert self.name.validate_python(" ab\t") == "ab"

    def test_the_published_maximum_holds_for_what_is_sent(self):
        # The fuzzer's case: pydantic's strip_whitespace measured after stripping,
        # so seven characters passed a maxLength of five.
        assert self.name.json_schema() == {"type": "string", "minLength": 1, "maxLength": 5}
        with pytest.raises(ValidationError) as raised:
            self.name.validate_python("\t\fabcd")
        assert raised.value.errors()[0]["type"] == "string_too_long"

    def test_spaces_alone_are_too_short(self):
        for blank in ("", "   ", "\n"):
            with pytest.raises(ValidationError) as raised:
                self.name.validate_python(blank)
            assert raised.value.errors()[0]["type"] == "string_too_short"

    def test_without_a_minimum_blank_is_empty(self):
        assert TypeAdapter(Annotated[str, Trimmed(5)]).validate_python("  ") == ""


class TestPartialUpdate:
    def test_only_nullable_fields_may_be_null(self):
        assert ThingUpdate.model_validate({"colour": None}).colour is None
        for field in ("name", "size"):
            with pytest.raises(ValidationError, match=f"{field} cannot be null"):
                ThingUpdate.model_validate({field: None})

    def test_unknown_fields_are_refused(self):
        with pytest.raises(ValidationError):
            ThingUpdate.model_validate({"weight": 1})

    def test_a_patch_changes_what_it_names(self):
        assert partial_changes(ThingUpdate(colour=None, size=5)) == {"colour": None, "size": 5}
        assert partial_changes(ThingUpdate()) == {}

    def test_a_replacement_resets_what_it_leaves_out(self):
        assert replacement(ThingCreate(name="box")) == {"name": "box", "colour": None, "size": 3}


class Sort(StrEnum):
    NAME = "name"
    CREATED_AT = "created_at"


class BadSort(StrEnum):
    NOPE = "nope"


def test_sort_columns_follow_the_enum():
    assert sort_columns(Sort, Contact) == {
        "name": Contact.name,
        "created_at": Contact.created_at,
    }
    with pytest.raises(AttributeError):
        sort_columns(BadSort, Contact)


def test_a_slice_becomes_a_page():
    found = Slice(items=[1, 2], total=10_000, total_exact=False, skip=4, limit=2, has_more=True)
    page = found.map(str).page(lambda text: f"#{text}")
    assert page.model_dump() == {
        "items": ["#1", "#2"],
        "total": 10_000,
        "total_exact": False,
        "skip": 4,
        "limit": 2,
        "has_more": True,
    }


class Shown(BaseModel):
    version: int


def test_an_answer_carries_its_version_as_etag():
    response = Response()
    shown = with_etag(response, lambda version: Shown(version=version), 7)
    assert shown.version == 7 and response.headers["ETag"] == '"7"'
