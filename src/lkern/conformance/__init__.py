"""``lkern check``: a service against the conventions of SPEC §14, each breach named
with its file and line.

One module per family of rules; each rule is a function of a :class:`Subject`
(the service, its package, its app) yielding :class:`Violation`\\ s. Nothing
here runs in a service: the checks build the app without starting it, and
migrate throw-away SQLite databases of their own.
"""

from lkern.conformance.runner import RULES, check, check_service
from lkern.conformance.subject import Subject, Violation

__all__ = ["RULES", "Subject", "Violation", "check", "check_service"]
