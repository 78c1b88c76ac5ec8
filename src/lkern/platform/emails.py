"""E-mail addresses as every service stores them."""

from __future__ import annotations

from typing import Annotated

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, Field, StringConstraints


def normalise_email(value: str) -> str:
    """A syntactically valid address, lower-cased whole (uniqueness is case-insensitive)."""
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid e-mail address: {exc}") from None
    return result.normalized.lower()


_FORMAT_EMAIL = Field(json_schema_extra={"format": "email"})

#: An address a client sends: checked and normalised.
Email = Annotated[
    str, StringConstraints(max_length=254), AfterValidator(normalise_email), _FORMAT_EMAIL
]
#: An address the service answers with: normalised when it was stored.
StoredEmail = Annotated[str, _FORMAT_EMAIL]
