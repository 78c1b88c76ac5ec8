"""HTTP conventions: versions as ETags, If-Match, Location."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Protocol, TypeVar

from fastapi import Depends, Header, Response

from lkern.platform.errors import PreconditionFailed

# Versions as entity tags: "3" (weak W/"3" accepted too), or * for any version.
# Validated with the other parameters, so a malformed value is a 422 like any
# other bad input, and only a well-formed but stale one is a 412.
IF_MATCH_PATTERN = r'^(\*|(W/)?"[0-9]{1,18}")$'


async def if_match(
    value: Annotated[
        str | None,
        Header(
            alias="If-Match",
            pattern=IF_MATCH_PATTERN,
            description='Expected version as an ETag, e.g. `"3"`; a stale one is a 412.',
            examples=['"1"'],
        ),
    ] = None,
) -> int | None:
    """The version the client expects, or None when it did not say (``*`` included)."""
    if value is None or value == "*":
        return None
    return int(value.removeprefix("W/").strip('"'))


ExpectedVersion = Annotated[int | None, Depends(if_match)]


def check_version(current: int, expected: int | None) -> None:
    if expected is not None and expected != current:
        raise PreconditionFailed(
            f"The resource is at version {current}, not {expected}; reload it and retry.",
            extra={"current_version": current},
        )


def set_etag(response: Response, version: int) -> None:
    response.headers["ETag"] = f'"{version}"'


class Versioned(Protocol):
    @property
    def version(self) -> int: ...


Item = TypeVar("Item")
V = TypeVar("V", bound=Versioned)


def with_etag(response: Response, read: Callable[[Item], V], item: Item) -> V:
    """``item`` as the route answers it (``read`` builds that), its version the ETag."""
    body = read(item)
    set_etag(response, body.version)
    return body
