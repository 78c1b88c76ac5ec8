"""Contacts' domain rules: how addresses and numbers are normalised. No I/O."""

from __future__ import annotations

import phonenumbers

from lkern.platform.emails import normalise_email

__all__ = ["normalise_email", "normalise_phone"]


def normalise_phone(value: str, default_region: str | None = None) -> str:
    """E.164 (``+421905123456``); numbers without a country code need ``default_region``."""
    text = value.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else default_region)
    except phonenumbers.NumberParseException:
        raise ValueError(
            "not a valid phone number; use the international format, e.g. +421905123456"
        ) from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError("not a valid phone number")
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))
