"""Identity's API schemas."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints

from lkern.platform.auth import Role
from lkern.platform.emails import Email, StoredEmail
from lkern.platform.schemas import PartialUpdate, Trimmed

FullName = Annotated[str, Trimmed(255, 1)]
Password = Annotated[
    SecretStr, Field(min_length=10, max_length=128, description="10 to 128 characters.")
]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email = Field(examples=["grace@example.com"])
    full_name: FullName = Field(examples=["Grace Hopper"])
    password: Password
    role: Role = Field(
        default=Role.VIEWER, description="viewer reads, member writes, admin does all."
    )
    is_active: bool = True


class UserUpdate(PartialUpdate):
    full_name: FullName | None = None
    role: Role | None = None
    is_active: bool | None = None
    password: Password | None = None


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: StoredEmail
    full_name: str
    role: Role
    is_active: bool
    version: int
    created_at: datetime
    updated_at: datetime
    deleted_at: datetime | None
    is_deleted: bool


class TokenPair(BaseModel):
    access_token: str = Field(description="Signed JWT (EdDSA) for `Authorization: Bearer`.")
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    refresh_token: str = Field(description="Single-use; exchange it at /api/v1/auth/refresh.")


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: Annotated[str, StringConstraints(min_length=16, max_length=256)]
