"""Orders' domain rules on orders that no database has seen: drafts, transitions, lines."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from lkern.orders.enums import OrderStatus
from lkern.orders.models import Order
from lkern.orders.schemas import OrderCreate, OrderLineCreate
from lkern.platform.errors import Conflict, InvalidTransition
from lkern.platform.schemas import replacement

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LINES = [
    OrderLineCreate(description="Resistor", quantity=3, unit_price=Decimal("19.99")),
    OrderLineCreate(description="Capacitor", part_id="BZQM", quantity=10, unit_price="0.1"),
]


def order(status: OrderStatus = OrderStatus.DRAFT, **fields: object) -> Order:
    values: dict[str, object] = {
        "code": "ORD-2611-0001",
        "contact_id": uuid.uuid4(),
        "currency": "EUR",
        "notes": None,
        "total": Decimal("0.00"),
        **fields,
    }
    made = Order(status=status, **values)
    made.lines = []
    return made


class TestLines:
    def test_numbered_with_exact_totals(self):
        draft = order()
        draft.set_lines(LINES)
        assert [line.position for line in draft.lines] == [1, 2]
        assert [line.line_total for line in draft.lines] == [Decimal("59.97"), Decimal("1.00")]
        assert draft.total == Decimal("60.97")

    @pytest.mark.parametrize("status", [s for s in OrderStatus if s is not OrderStatus.DRAFT])
    def test_only_in_a_draft(self, status):
        placed = order(status)
        with pytest.raises(Conflict) as refused:
            placed.set_lines(LINES)
        assert refused.value.code == "ORDER_NOT_DRAFT"
        assert placed.lines == [] and placed.total == Decimal("0.00")


class TestRevise:
    def test_changes_only_what_differs_and_stamps_it(self):
        draft = order(notes="rush")
        assert draft.revise({"notes": "rush", "currency": "EUR"}, NOW) is False
        assert draft.updated_at is None
        assert draft.revise({"currency": "USD"}, NOW) is True
        assert draft.currency == "USD" and draft.updated_at == NOW

    def test_lines_are_replaced_whenever_named(self):
        draft = order()
        assert draft.revise({"lines": []}, NOW) is True and draft.total == Decimal("0.00")

    def test_notes_change_after_the_draft_but_currency_does_not(self):
        confirmed = order(OrderStatus.CONFIRMED)
        assert confirmed.revise({"notes": "ship Friday"}, NOW) is True
        with pytest.raises(Conflict, match="currency"):
            confirmed.revise({"currency": "USD"}, NOW)

    def test_a_replacement_resets_what_the_document_leaves_out(self):
        draft = order(currency="USD", notes="rush")
        draft.set_lines(LINES)
        customer = uuid.uuid4()
        draft.replace_with(replacement(OrderCreate(contact_id=customer)), NOW)
        assert draft.contact_id == customer and draft.currency == "EUR"
        assert draft.notes is None and draft.lines == [] and draft.total == Decimal("0.00")

    def test_a_replacement_only_of_a_draft(self):
        confirmed = order(OrderStatus.CONFIRMED)
        with pytest.raises(Conflict) as refused:
            confirmed.replace_with(replacement(OrderCreate(contact_id=uuid.uuid4())), NOW)
        assert refused.value.code == "ORDER_NOT_DRAFT"


class TestTransitions:
    @pytest.mark.parametrize(
        ("path", "stamped"),
        [
            ([OrderStatus.CONFIRMED], "confirmed_at"),
            ([OrderStatus.CONFIRMED, OrderStatus.FULFILLED], "fulfilled_at"),
            ([OrderStatus.CONFIRMED, OrderStatus.FULFILLED, OrderStatus.CLOSED], "closed_at"),
            ([OrderStatus.CANCELLED], "cancelled_at"),
            ([OrderStatus.CONFIRMED, OrderStatus.CANCELLED], "cancelled_at"),
        ],
    )
    def test_each_status_entered_stamps_its_moment(self, path, stamped):
        moving = order()
        left = []
        for step, target in enumerate(path):
            left.append(moving.move_to(target, NOW.replace(minute=step)))
        assert moving.status == path[-1]
        assert left == [OrderStatus.DRAFT, *path[:-1]]
        assert getattr(moving, stamped) == NOW.replace(minute=len(path) - 1)

    @pytest.mark.parametrize(
        ("status", "target"),
        [
            (OrderStatus.DRAFT, OrderStatus.FULFILLED),
            (OrderStatus.FULFILLED, OrderStatus.CANCELLED),
            (OrderStatus.CLOSED, OrderStatus.DRAFT),
            (OrderStatus.CANCELLED, OrderStatus.CONFIRMED),
        ],
    )
    def test_what_the_machine_does_not_allow_changes_nothing(self, status, target):
        placed = order(status)
        with pytest.raises(InvalidTransition):
            placed.move_to(target, NOW)
        assert placed.status == status
        assert all(
            getattr(placed, name) is None
            for name in ("confirmed_at", "fulfilled_at", "closed_at", "cancelled_at")
        )
