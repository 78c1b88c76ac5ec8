"""Service credentials for gRPC: which service calls which method, proven with the shared secret.

A credential is ``service|issued_at|method|signature``, the signature an
HMAC-SHA256 of the first three parts under ``LKERN_SERVICE_SECRET``. It is
good for a few minutes, so a leaked one expires on its own, and only for the
method it was issued for, so a captured one cannot call another RPC. Clocks
may disagree by the configured skew either way.
"""

from __future__ import annotations

import hashlib
import hmac
import time

MAX_AGE_SECONDS = 300
DEFAULT_SKEW_SECONDS = 30.0
_SEPARATOR = "|"  # in neither service names nor gRPC method paths


class InvalidCredential(ValueError):
    pass


def _signature(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def issue(secret: str, service: str, method: str, *, now: float | None = None) -> str:
    """A credential for ``service`` to call ``method`` (``/package.Service/Method``)."""
    issued = int(now if now is not None else time.time())
    message = _SEPARATOR.join((service, str(issued), method))
    return f"{message}{_SEPARATOR}{_signature(secret, message)}"


def verify(
    secret: str,
    credential: str | None,
    method: str,
    *,
    now: float | None = None,
    skew: float = DEFAULT_SKEW_SECONDS,
) -> str:
    """The calling service's name when ``credential`` is good for ``method``;
    raises InvalidCredential otherwise."""
    parts = credential.split(_SEPARATOR) if credential else []
    if len(parts) != 4:
        raise InvalidCredential("no service credential")
    service, issued, signed_method, signature = parts
    message = _SEPARATOR.join((service, issued, signed_method))
    if not hmac.compare_digest(signature, _signature(secret, message)):
        raise InvalidCredential("bad service credential")
    if signed_method != method:
        raise InvalidCredential(f"credential issued for another method ({signed_method[:100]})")
    age = (now if now is not None else time.time()) - int(issued) if issued.isdigit() else None
    if age is None or not -skew <= age <= MAX_AGE_SECONDS + skew:
        raise InvalidCredential("expired service credential")
    return service
