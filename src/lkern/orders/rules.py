"""Orders' domain rules: the status machine and exact money. No I/O."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Protocol

from lkern.orders.enums import OrderStatus
from lkern.platform.db import Money
from lkern.platform.errors import InvalidTransition

S = OrderStatus
TRANSITIONS: dict[OrderStatus, tuple[OrderStatus, ...]] = {
    S.DRAFT: (S.CONFIRMED, S.CANCELLED),
    S.CONFIRMED: (S.FULFILLED, S.CANCELLED),
    S.FULFILLED: (S.CLOSED,),
    S.CLOSED: (),
    S.CANCELLED: (),
}
#: The timestamp each status sets when entered.
ENTERED_AT = {
    S.CONFIRMED: "confirmed_at",
    S.FULFILLED: "fulfilled_at",
    S.CLOSED: "closed_at",
    S.CANCELLED: "cancelled_at",
}


class LineSpec(Protocol):
    """What an order line is made from (a line of a request body, say)."""

    @property
    def description(self) -> str: ...
    @property
    def part_id(self) -> str | None: ...
    @property
    def quantity(self) -> int: ...
    @property
    def unit_price(self) -> Decimal: ...


CENT = Decimal("0.01")
#: The largest unit price.
MAX_AMOUNT = Decimal("999999999999.99")
#: The largest line total or order total: what the amount columns hold.
MAX_STORED_AMOUNT = Money.MAX


def check_transition(current: OrderStatus, target: OrderStatus) -> None:
    allowed = TRANSITIONS[current]
    if target not in allowed:
        raise InvalidTransition(current.value, target.value, [status.value for status in allowed])


def money(value: Decimal | int | str) -> Decimal:
    """An amount rounded half-up to cents, by decimal rule, never through a float."""
    try:
        amount = Decimal(value) if not isinstance(value, Decimal) else value
    except InvalidOperation:
        raise ValueError(f"not an amount: {value!r}") from None
    if not amount.is_finite():
        raise ValueError("amounts must be finite")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def line_total(quantity: int, unit_price: Decimal) -> Decimal:
    return money(unit_price * quantity)


def order_total(line_totals: Iterable[Decimal]) -> Decimal:
    return money(sum(line_totals, Decimal("0")))


def check_storable(amount: Decimal, what: str) -> Decimal:
    """``amount``, if an amount column can hold it: a line total or an order total
    beyond that is the client's error, told before anything is written."""
    if amount > MAX_STORED_AMOUNT:
        raise ValueError(f"{what} {amount} is more than the largest amount, {MAX_STORED_AMOUNT}")
    return amount


def check_line_total(quantity: int, unit_price: Decimal) -> Decimal:
    return check_storable(line_total(quantity, unit_price), "the line total")


def check_order_total(lines: Iterable[tuple[int, Decimal]]) -> Decimal:
    """The total of ``(quantity, unit_price)`` lines, if it can be stored."""
    totals = (line_total(quantity, unit_price) for quantity, unit_price in lines)
    return check_storable(order_total(totals), "the order total")


# ISO 4217 currencies in circulation (funds and precious metals left out).
CURRENCIES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
    KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP
    MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR
    RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
    TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR
    ZMW ZWG
    """.split()  # noqa: SIM905 - a table reads better than 160 quoted strings
)


def check_currency(code: str) -> str:
    if code not in CURRENCIES:
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return code
