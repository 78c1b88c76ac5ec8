"""Rules read from the service's source alone."""

from __future__ import annotations

import ast
from collections.abc import Iterator

from lkern.conformance.subject import Subject, Violation

PRINT = "PRINT"


def check_print(subject: Subject) -> Iterator[Violation]:
    """Service code logs; a ``print`` bypasses the log format, level and trace ids (§4)."""
    for path in subject.files():
        for node in ast.walk(subject.tree(path)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "print"
            ):
                yield Violation(path, node.lineno, PRINT, "print() in service code: use logging")
