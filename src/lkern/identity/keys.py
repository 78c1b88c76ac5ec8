"""Identity's signing key: from configuration, or generated on first start and kept."""

from __future__ import annotations

import base64
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from lkern.identity.settings import IdentitySettings
from lkern.platform.auth import StaticKeys
from lkern.platform.settings import Settings

logger = logging.getLogger(__name__)

KEY_FILE = "signing_key.pem"


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()


def _kid(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()[:12]).decode().rstrip("=")


def _from_pem(pem: bytes) -> Ed25519PrivateKey:
    key = load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the signing key must be an Ed25519 private key")
    return key


_loaded: dict[str, SigningKey] = {}


def signing_key(settings: IdentitySettings) -> SigningKey:
    """The key identity signs with; the same object for every caller in a process."""
    path = settings.service_data_dir("identity") / KEY_FILE
    cache_key = str(path.resolve()) if settings.signing_key is None else "configured"
    if cache_key not in _loaded:
        if settings.signing_key is not None:
            private = _from_pem(settings.signing_key.get_secret_value().encode())
        else:
            private = _load_or_create(path)
        _loaded[cache_key] = SigningKey(_kid(private.public_key()), private)
    return _loaded[cache_key]


def _load_or_create(path: Path) -> Ed25519PrivateKey:
    if path.exists():
        return _from_pem(path.read_bytes())
    path.parent.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    # Created with owner-only permissions, never readable by others even briefly.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    logger.info("generated a new signing key in %s", path)
    return private


def own_keys(settings: Settings) -> StaticKeys:
    key = signing_key(IdentitySettings.of(settings))
    return StaticKeys({key.kid: key.public})
