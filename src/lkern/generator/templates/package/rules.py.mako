"""${whose} domain rules: how names are written${" and the prefix of codes" if prefix else ""}. No I/O."""

from __future__ import annotations

% if prefix:
#: Every ${noun}'s code starts with it: ${prefix}-2601-0001.
CODE_PREFIX = "${prefix}"

% endif

def normalise_name(value: str) -> str:
    """One space between words: " Main  hall " and "Main hall" are the same name."""
    return " ".join(value.split())
