"""The platform's pieces every resource's writes and lists share, without a database."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

import pytest
from fastapi import Response
from pydantic import BaseModel, ValidationError

from lkern.contacts.models import Contact
from lkern.platform.http import with_etag
from lkern.platform.pagination import Slice, sort_columns
from lkern.platform.schemas import PartialUpdate, partial_changes, replacement


class ThingCreate(BaseModel):
    name: str
    colour: str | None = None
    size: int = 3


class ThingUpdate(PartialUpdate):
    nullable: ClassVar[frozenset[str]] = frozenset({"colour"})

    name: str | None = None
    colour: str | None = None
    size: int | None = None


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
