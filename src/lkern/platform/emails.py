"""E-mail addresses as every service stores them."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


def normalise_email(value: str) -> str:
    """A syntactically valid address, lower-cased whole (uniqueness is case-insensitive)."""
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid e-mail address: {exc}") from None
    return result.normalized.lower()
