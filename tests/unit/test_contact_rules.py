"""Contacts' normalisation rules, free of I/O."""

import pytest

from lkern.contacts.rules import normalise_email, normalise_phone


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Ada@Example.COM", "ada@example.com"), ("  bob@example.org ", "bob@example.org")],
)
def test_email_is_lower_cased(raw, expected):
    assert normalise_email(raw) == expected


@pytest.mark.parametrize("raw", ["", "no-at-sign", "a@", "@example.com", "a b@example.com"])
def test_invalid_email(raw):
    with pytest.raises(ValueError, match="e-mail"):
        normalise_email(raw)


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+421 905 123 456", None, "+421905123456"),
        ("00421905123456", None, "+421905123456"),
        ("+1 (650) 253-0000", None, "+16502530000"),
        ("0905 123 456", "SK", "+421905123456"),
    ],
)
def test_phone_to_e164(raw, region, expected):
    assert normalise_phone(raw, region) == expected


@pytest.mark.parametrize(
    ("raw", "region"), [("0905 123 456", None), ("+999 1", None), ("abc", "SK")]
)
def test_invalid_phone(raw, region):
    with pytest.raises(ValueError, match="phone"):
        normalise_phone(raw, region)
