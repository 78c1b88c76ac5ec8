"""``lkern check``: a service against the conventions of SPEC §14, each breach named
with its file and line.

The rules, by the id each line of the report starts with:

- ``ROUTE-UNGUARDED``: a route neither on a ``protected_router()`` among the
  definition's ``routers`` nor on a ``public_router()`` in its ``public_routers``.
- ``PROBLEM-UNDOCUMENTED``: a problem status the route can answer (validation,
  a path id, ``If-Match``, the database, a domain error the service's code
  raises) missing from its OpenAPI responses.
- ``LIST-ENVELOPE``, ``LIST-PAGING``, ``LIST-QUERY``, ``LIST-SLASH``: a list
  route (a page, or ``GET /api/v1/<things>``) off §2's contract, read from
  the app's OpenAPI document.
- ``EVENT-UNREGISTERED``, ``EVENT-UNDECLARED``: an event in ``produces`` or
  written to the outbox without a registered schema; one written but not
  in ``produces``.
- ``IMPORT-OTHER-SERVICE``: an import of another registered service's package.
- ``PRINT``: a call of ``print`` in the service's package.
- ``MIGRATION-DOWNGRADE``, ``MIGRATION-DRIFT``: a revision that does not go up,
  down and up again on a throw-away SQLite database; models unlike head.

One module per family of rules; each rule is a function of a :class:`Subject`
(the service, its package, its app) yielding :class:`Violation`\\ s. Nothing
here runs in a service: the checks build the app without starting it, and
migrate throw-away SQLite databases of their own.
"""

from lkern.conformance.runner import RULES, check, check_service
from lkern.conformance.subject import Subject, Violation

__all__ = ["RULES", "Subject", "Violation", "check", "check_service"]
