"""What every resource's request bodies share: trimmed text, partial updates and full
replacements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from lkern.platform.openapi import without_null


@dataclass(frozen=True, slots=True)
class Trimmed:
    """Text kept without its surrounding whitespace: at most ``max_length`` characters as
    sent, at least ``min_length`` once trimmed (``Annotated[str, Trimmed(255, 1)]``).

    pydantic's ``strip_whitespace`` measures what is left after stripping, so a value
    longer than the schema's ``maxLength`` got through whenever it had spaces to lose;
    here the published limits hold for what a client sends, and a value of spaces only
    is still too short."""

    max_length: int
    min_length: int = 0

    def __get_pydantic_core_schema__(
        self, source: type[Any], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        sent = core_schema.str_schema(
            min_length=self.min_length or None, max_length=self.max_length
        )
        return core_schema.no_info_after_validator_function(self._trim, sent)

    def _trim(self, value: str) -> str:
        trimmed = value.strip()
        if len(trimmed) < self.min_length:
            raise PydanticCustomError(
                "string_too_short",
                "String should have at least {min_length} character{plural} besides spaces",
                {"min_length": self.min_length, "plural": "" if self.min_length == 1 else "s"},
            )
        return trimmed


class PartialUpdate(BaseModel):
    """A ``PATCH`` body: every field may be left out, and only those in ``nullable``
    may be sent as null (which clears them); a required field cannot be nulled.
    Its JSON Schema says so: only the ``nullable`` fields admit null."""

    model_config = ConfigDict(extra="forbid")

    nullable: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        properties = handler.resolve_ref_schema(schema).get("properties", {})
        for name, field in properties.items():
            if name not in cls.nullable:
                # None is the "not sent" marker here, not a value to offer.
                field.pop("default", None)
                properties[name] = without_null(field)
        return schema

    @model_validator(mode="after")
    def _only_nullable_fields_null(self) -> Self:
        for name in type(self).model_fields:
            sent = name in self.model_fields_set
            if sent and name not in self.nullable and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


def partial_changes(patch: BaseModel) -> dict[str, Any]:
    """The fields a ``PATCH`` body names, with their values."""
    sent = patch.model_fields_set
    return {name: getattr(patch, name) for name in type(patch).model_fields if name in sent}


def replacement(document: BaseModel) -> dict[str, Any]:
    """Every field of a full (``…Create``-shaped) document, an omitted optional one at
    its default: what a ``PUT`` writes, so what it leaves out is reset."""
    return {name: getattr(document, name) for name in type(document).model_fields}
