"""The server secret and what it protects: the Tradavity key at rest, CSRF tokens, and
the hashes tokens are stored under.

The secret comes from `TRADAVITY_MCP_SECRET_KEY`. Off loopback it is required; on a
loopback bind a missing secret is generated once into the state directory (mode 0600)
so a local server keeps its grants across restarts. Keys derived from it (HKDF-SHA256):
one for Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`), one for HMACs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ...settings import ConfigError

__all__ = ["MIN_SECRET_CHARS", "SECRET_FILE", "KeyBox", "hash_token", "load_secret", "new_token"]

#: The generated secret's file name, in the state directory.
SECRET_FILE = "oauth-secret.key"  # noqa: S105 (a file name)
#: The shortest secret accepted from the environment.
MIN_SECRET_CHARS = 32


def new_token() -> str:
    """An opaque random token: 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What a token is stored and looked up under (tokens are random: no salt needed)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _derive(secret: str, purpose: bytes) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"tradavity-mcp " + purpose)
    return hkdf.derive(secret.encode("utf-8"))


class KeyBox:
    """Encrypts Tradavity keys for the store; signs and fingerprints with the secret."""

    def __init__(self, secret: str) -> None:
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(secret, b"key-at-rest v1")))
        self._mac = _derive(secret, b"mac v1")

    def seal(self, key: str) -> bytes:
        return self._fernet.encrypt(key.encode("utf-8"))

    def open(self, sealed: bytes) -> str | None:
        """The key, or None when it was sealed under another secret."""
        try:
            return self._fernet.decrypt(sealed).decode("utf-8")
        except InvalidToken:
            return None

    def mac(self, *parts: str) -> str:
        msg = "\x1f".join(parts).encode("utf-8")
        return hmac.new(self._mac, msg, hashlib.sha256).hexdigest()

    def same_mac(self, given: str, *parts: str) -> bool:
        return hmac.compare_digest(given.encode("utf-8"), self.mac(*parts).encode("utf-8"))


def load_secret(
    raw: str | None, state_dir: Path, *, loopback: bool, shared: bool = False
) -> KeyBox:
    """The server's `KeyBox`: from the environment's secret, else (loopback only, and
    not for a store `shared` by replicas) the state directory's generated one."""
    if raw is not None and raw.strip():
        if len(raw.strip()) < MIN_SECRET_CHARS:
            raise ConfigError(
                f"TRADAVITY_MCP_SECRET_KEY must be at least {MIN_SECRET_CHARS} characters "
                "(e.g. `openssl rand -hex 32`)"
            )
        return KeyBox(raw.strip())
    if shared:
        raise ConfigError(
            "--auth oauth with --store needs TRADAVITY_MCP_SECRET_KEY, the same on every "
            "replica (it seals the users' Tradavity keys in the shared store): set it to "
            "`openssl rand -hex 32`, and keep it"
        )
    if not loopback:
        raise ConfigError(
            "--auth oauth off loopback needs TRADAVITY_MCP_SECRET_KEY (it encrypts the "
            "users' Tradavity keys at rest): set it to `openssl rand -hex 32`, and keep it"
        )
    return KeyBox(_generated(state_dir / SECRET_FILE))


def _generated(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        os.chmod(path, 0o600)
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secrets.token_hex(32))
    return path.read_text(encoding="ascii").strip()
