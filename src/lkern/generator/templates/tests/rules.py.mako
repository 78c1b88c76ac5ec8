"""${whose} domain rules, without I/O."""

from __future__ import annotations

import pytest

% if prefix:
from lkern.platform.codes import CODE_PATTERN
% endif
from lkern.${name}.rules import ${"CODE_PREFIX, " if prefix else ""}normalise_name


@pytest.mark.parametrize(
    ("written", "stored"),
    [("Main hall", "Main hall"), ("  Main   hall ", "Main hall"), ("Main\thall\n", "Main hall")],
)
def test_names_keep_one_space_between_words(written: str, stored: str):
    assert normalise_name(written) == stored
% if prefix:


def test_the_code_prefix_makes_valid_codes():
    assert CODE_PATTERN.match(f"{CODE_PREFIX}-2601-0001")
% endif
