"""Signed download links for objects a service serves itself (local files).

The signature covers the key, the expiry and the headers the download will
carry, so a link can be neither extended nor turned into one that renders
the file inline or under another name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import urlencode


class InvalidSignature(ValueError):
    """The link was altered, or was not made with this key."""


class ExpiredLink(ValueError):
    """The link was genuine but its time is over."""


@dataclass(frozen=True, slots=True)
class SignedDownload:
    key: str
    filename: str
    content_type: str
    expires: int


class LinkSigner:
    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("a link signer needs a non-empty secret")
        self._secret = secret

    def _signature(self, download: SignedDownload) -> str:
        message = "\n".join(
            (download.key, str(download.expires), download.filename, download.content_type)
        ).encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def query(self, download: SignedDownload) -> str:
        """The query string that carries and proves ``download``."""
        return urlencode(
            {
                "expires": download.expires,
                "filename": download.filename,
                "content_type": download.content_type,
                "signature": self._signature(download),
            }
        )

    def verify(
        self,
        key: str,
        *,
        expires: int,
        filename: str,
        content_type: str,
        signature: str,
        now: float | None = None,
    ) -> SignedDownload:
        download = SignedDownload(key, filename, content_type, expires)
        # As bytes: compare_digest refuses strings with characters beyond ASCII.
        if not hmac.compare_digest(self._signature(download).encode(), signature.encode()):
            raise InvalidSignature("the download link's signature does not match")
        if (time.time() if now is None else now) >= expires:
            raise ExpiredLink("the download link has expired")
        return download
