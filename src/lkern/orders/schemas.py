"""Orders' API schemas. Money is a JSON string in answers and a string or number in requests."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from lkern.orders.enums import OrderStatus
from lkern.orders.rules import (
    CURRENCIES,
    MAX_AMOUNT,
    MAX_STORED_AMOUNT,
    check_currency,
    check_line_total,
    check_order_total,
    money,
)
from lkern.platform.schemas import PartialUpdate, Trimmed

MAX_LINES = 500
#: Within the quantity column (a 32-bit integer) on every backend.
MAX_QUANTITY = 1_000_000

Amount = Annotated[
    Decimal,
    Field(ge=0, le=MAX_AMOUNT),
    AfterValidator(money),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\d{1,12}(\.\d+)?$"},
                {"type": "number", "minimum": 0, "maximum": float(MAX_AMOUNT)},
            ],
            "description": "Amount ≥ 0; rounded half-up to 2 places.",
            "examples": ["19.99"],
        },
        mode="validation",
    ),
]
MoneyOut = Annotated[
    Decimal,
    PlainSerializer(lambda amount: f"{amount:.2f}", return_type=str),
    WithJsonSchema(
        {"type": "string", "pattern": r"^\d+\.\d{2}$", "examples": ["59.97"]}, mode="serialization"
    ),
]
Currency = Annotated[
    str,
    AfterValidator(check_currency),
    WithJsonSchema({"type": "string", "enum": sorted(CURRENCIES)}),
    Field(description="ISO 4217 code of a currency in circulation.", examples=["EUR"]),
]
PartId = Annotated[str, StringConstraints(pattern=r"^[A-Z]{4}$")]
Notes = Annotated[str, StringConstraints(max_length=10_000)]


class OrderLineCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: Annotated[str, Trimmed(500, 1)] = Field(examples=["Resistor 10k 0603, reel"])
    part_id: PartId | None = Field(
        default=None, description="Inventory part (4 capital letters).", examples=["BZQM"]
    )
    quantity: int = Field(gt=0, le=MAX_QUANTITY, examples=[3])
    unit_price: Amount = Field(description="Price of one unit.")

    @field_validator("unit_price")
    @classmethod
    def _line_total_storable(cls, unit_price: Decimal, info: ValidationInfo) -> Decimal:
        # Named on the price: the quantity alone is within its bounds (or already refused).
        if "quantity" in info.data:
            check_line_total(info.data["quantity"], unit_price)
        return unit_price


def _total_storable(lines: list[OrderLineCreate]) -> list[OrderLineCreate]:
    check_order_total((line.quantity, line.unit_price) for line in lines)
    return lines


Lines = Annotated[
    list[OrderLineCreate],
    Field(
        max_length=MAX_LINES,
        description=f"Each line's total and the order's total at most {MAX_STORED_AMOUNT}.",
    ),
    AfterValidator(_total_storable),
]


class OrderLineRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    description: str
    part_id: str | None
    quantity: int
    unit_price: MoneyOut
    line_total: MoneyOut = Field(description="quantity times unit_price, exact.")


class OrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_id: uuid.UUID = Field(description="The customer; must be an active contact.")
    currency: Currency = "EUR"
    lines: Lines = Field(default_factory=list)
    notes: Notes | None = None


class OrderUpdate(PartialUpdate):
    """Partial update. Lines are replaced as a whole, and only while the order is a draft."""

    nullable: ClassVar[frozenset[str]] = frozenset({"notes"})

    lines: Lines | None = None
    currency: Currency | None = None
    notes: Notes | None = None


class OrderTransition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: OrderStatus = Field(description="The status to move to.", examples=["confirmed"])


class OrderRead(BaseModel):
    id: uuid.UUID
    code: str = Field(examples=["ORD-2611-0001"])
    contact_id: uuid.UUID
    customer_name: str | None = Field(
        description="The contact's current name, as orders last heard it."
    )
    status: OrderStatus
    currency: str
    lines: list[OrderLineRead]
    total: MoneyOut
    notes: str | None
    version: int
    created_at: datetime
    updated_at: datetime
    confirmed_at: datetime | None
    fulfilled_at: datetime | None
    closed_at: datetime | None
    cancelled_at: datetime | None
    deleted_at: datetime | None
    is_deleted: bool
