"""Inventory's API schemas: distinct create, update and read shapes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, ClassVar, Self

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from lkern.inventory.enums import PlacementRule
from lkern.platform.schemas import PartialUpdate, Trimmed
from lkern.platform.storage.files import FileRead

PART_ID_PATTERN = "^[A-Z]{4}$"
PartId = Annotated[str, StringConstraints(pattern=PART_ID_PATTERN)]
Description = Annotated[str, Trimmed(500, 1)]
Name = Annotated[str, Trimmed(255, 1)]
ShortText = Annotated[str, Trimmed(255)]
Category = Annotated[str, Trimmed(100, 1)]
Tag = Annotated[str, Trimmed(100, 1)]
AttributeKey = Annotated[str, Trimmed(100, 1)]
AttributeValue = Annotated[str, StringConstraints(max_length=500)]
Reason = Annotated[str, Trimmed(500)]
Quantity = Annotated[int, Field(gt=0, le=1_000_000_000, description="A whole number above 0.")]
BoxNo = Annotated[int, Field(ge=1, le=2_000_000_000, description="The box's number.")]
LocNo = Annotated[int, Field(ge=1, le=1000, description="The location in the box, from 1.")]
Capacity = Annotated[int, Field(ge=1, le=1000, description="Number of locations, 1 to 1000.")]
Tags = Annotated[list[Tag], Field(max_length=50)]
Attributes = Annotated[dict[AttributeKey, AttributeValue], Field(max_length=100)]


def _unique_tags(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


class PartCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: Description = Field(examples=["Resistor 10 kΩ 1% 0603"])
    manufacturer: ShortText | None = Field(default=None, examples=["Yageo"])
    manufacturer_code: ShortText | None = Field(default=None, examples=["RC0603FR-0710KL"])
    category: Category | None = Field(default=None, examples=["resistors"])
    tags: Tags = Field(default_factory=list, examples=[["smd", "0603"]])
    package: ShortText | None = Field(default=None, examples=["0603"])
    attributes: Attributes = Field(
        default_factory=dict, description="Key → value, both strings.", examples=[{"R": "10k"}]
    )
    seller: ShortText | None = Field(default=None, examples=["Mouser"])
    seller_link: AnyHttpUrl | None = Field(default=None, description="Where to buy it.")

    _tags = field_validator("tags")(_unique_tags)


class PartUpdate(PartialUpdate):
    """Partial update: only the fields sent change; null clears an optional field."""

    nullable: ClassVar[frozenset[str]] = frozenset(
        {"manufacturer", "manufacturer_code", "category", "package", "seller", "seller_link"}
    )

    description: Description | None = None
    manufacturer: ShortText | None = None
    manufacturer_code: ShortText | None = None
    category: Category | None = None
    tags: Tags | None = None
    package: ShortText | None = None
    attributes: Attributes | None = None
    seller: ShortText | None = None
    seller_link: AnyHttpUrl | None = None

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str] | None) -> list[str] | None:
        return None if tags is None else _unique_tags(tags)


class LocationStock(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    box_no: int
    loc_no: int
    quantity: int


class PartRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str = Field(description="The part's 4-letter id.", examples=["BZQM"])
    description: str
    manufacturer: str | None
    manufacturer_code: str | None
    category: str | None
    tags: list[str]
    package: str | None
    attributes: dict[str, str]
    seller: str | None
    seller_link: str | None
    documents: list[FileRead]
    total_quantity: int = Field(description="Summed over all its locations.")
    locations: list[LocationStock] = Field(description="Where it is, box and location order.")
    version: int = Field(description="Incremented on every change; send it back in If-Match.")
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    is_deleted: bool


class StockAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    box_no: BoxNo
    loc_no: LocNo
    quantity: Quantity
    reason: Reason | None = None


class StockRemove(StockAdd):
    pass


class StockMove(BaseModel):
    model_config = ConfigDict(extra="forbid")

    from_box_no: BoxNo
    from_loc_no: LocNo
    to_box_no: BoxNo
    to_loc_no: LocNo
    quantity: Quantity
    reason: Reason | None = None

    @model_validator(mode="after")
    def _somewhere_else(self) -> Self:
        if (self.from_box_no, self.from_loc_no) == (self.to_box_no, self.to_loc_no):
            raise ValueError("a move needs two different locations")
        return self


class StockChangeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    delta: int = Field(description="Positive when stock came in, negative when it left.")
    kind: str = Field(examples=["add"])
    box_no: int
    loc_no: int
    reason: str | None
    user_id: str | None = Field(description="Who changed it (from their token).")
    at: datetime


class BoxCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: Reason | None = Field(default=None, examples=["SMD resistors"])
    capacity: Capacity


class BoxUpdate(PartialUpdate):
    nullable: ClassVar[frozenset[str]] = frozenset({"description"})

    description: Reason | None = None
    capacity: Capacity | None = Field(
        default=None, description="Shrinking below an occupied location is a 409."
    )


class BoxRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    box_no: int = Field(description="Given by the service, from 1.")
    description: str | None
    capacity: int
    used: int = Field(description="Occupied locations.")
    utilisation: float = Field(ge=0, le=1, description="used / capacity.")
    version: int
    created_at: datetime
    updated_at: datetime


class BoxLocationRead(BaseModel):
    loc_no: int
    part_id: str | None
    description: str | None
    quantity: int


class Requirement(BaseModel):
    model_config = ConfigDict(extra="forbid")

    part_id: PartId = Field(examples=["BZQM"])
    quantity: Quantity = Field(description="Needed per build.")


Requirements = Annotated[list[Requirement], Field(max_length=1000)]


def _each_part_once(requirements: list[Requirement]) -> list[Requirement]:
    seen: set[str] = set()
    for requirement in requirements:
        if requirement.part_id in seen:
            raise ValueError(f"part {requirement.part_id} is required more than once")
        seen.add(requirement.part_id)
    return requirements


class ProjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(examples=["Clock kit"])
    description: Annotated[str, StringConstraints(max_length=20_000)] | None = None
    requirements: Requirements = Field(default_factory=list)

    _once = field_validator("requirements")(_each_part_once)


class ProjectUpdate(PartialUpdate):
    nullable: ClassVar[frozenset[str]] = frozenset({"description"})

    name: Name | None = None
    description: Annotated[str, StringConstraints(max_length=20_000)] | None = None
    requirements: Requirements | None = None

    @field_validator("requirements")
    @classmethod
    def _once(cls, requirements: list[Requirement] | None) -> list[Requirement] | None:
        return None if requirements is None else _each_part_once(requirements)


class ProjectRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str | None
    requirements: list[Requirement]
    version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    is_deleted: bool


class PartNeedRead(BaseModel):
    part_id: str
    required: int
    available: int = Field(description="Stock summed over every location.")
    shortfall: int


class BuildabilityRead(BaseModel):
    builds: int
    max_buildable: int
    can_build: bool
    parts: list[PartNeedRead]


class BuildRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    builds: Annotated[int, Field(gt=0, le=1_000_000)] = 1


class SuggestionRead(BaseModel):
    box_no: int
    loc_no: int
    rule: PlacementRule
    reason: str = Field(description="Why this location, in words.")


class PlacementRead(BaseModel):
    suggestions: list[SuggestionRead]


class ImportRowError(BaseModel):
    row: int = Field(description="The row's number in the file (the header is row 1).")
    field: str | None
    message: str


class ImportResult(BaseModel):
    dry_run: bool
    rows: int = Field(description="Data rows read.")
    created: list[str] = Field(description="Ids of the parts created (none on a dry run).")
    stocked: int = Field(default=0, description="Locations filled with the parts' stock.")
    errors: list[ImportRowError]
