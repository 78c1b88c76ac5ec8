"""${whose} enumerations."""

from enum import StrEnum


class ${Noun}SortField(StrEnum):
% if prefix:
    CODE = "code"
% endif
    NAME = "name"
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"
