"""Inventory's enumerations."""

from enum import StrEnum


class PartSortField(StrEnum):
    ID = "id"
    DESCRIPTION = "description"
    CATEGORY = "category"
    TOTAL_QUANTITY = "total_quantity"
    CREATED_AT = "created_at"


class ProjectSortField(StrEnum):
    NAME = "name"
    CREATED_AT = "created_at"


class StockChangeKind(StrEnum):
    """Why a location's quantity changed, as history and metrics count it."""

    ADD = "add"
    REMOVE = "remove"
    MOVE_OUT = "move_out"
    MOVE_IN = "move_in"
    BUILD = "build"
    IMPORT = "import"


class PlacementRule(StrEnum):
    """Why a free location is suggested, strongest first."""

    NEXT_TO_PART = "next_to_part"
    SAME_CATEGORY = "same_category"
    MOST_ROOM = "most_room"
