"""Service credentials for gRPC: which service is calling, proven with the shared secret.

A credential is ``service.issued_at.signature``, the signature an HMAC-SHA256
of the first two parts under ``LKERN_SERVICE_SECRET``; it is good for a few
minutes, so a leaked one expires on its own.
"""

from __future__ import annotations

import hashlib
import hmac
import time

MAX_AGE_SECONDS = 300


class InvalidCredential(ValueError):
    pass


def _signature(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def issue(secret: str, service: str, *, now: float | None = None) -> str:
    message = f"{service}.{int(now if now is not None else time.time())}"
    return f"{message}.{_signature(secret, message)}"


def verify(secret: str, credential: str | None, *, now: float | None = None) -> str:
    """The calling service's name; raises InvalidCredential otherwise."""
    if not credential or credential.count(".") != 2:
        raise InvalidCredential("no service credential")
    service, issued, signature = credential.split(".")
    if not hmac.compare_digest(signature, _signature(secret, f"{service}.{issued}")):
        raise InvalidCredential("bad service credential")
    age = (now if now is not None else time.time()) - int(issued) if issued.isdigit() else -1
    if not 0 <= age <= MAX_AGE_SECONDS:
        raise InvalidCredential("expired service credential")
    return service
