"""Password hashes for the config: ``scrypt$n=16384,r=8,p=1$<salt>$<hash>`` (base64).

Only hashes are stored. :func:`make` creates one (``bptd-http hash-password``),
:func:`check_hash` validates the text of one (a config error names what is wrong) and
:class:`Verifier` checks credentials, remembering the ones it verified for this process
(keyed by an HMAC under a random per-process key) so that a lab script sending a request
every few milliseconds does not pay a key derivation each time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from dataclasses import dataclass

SCHEME = "scrypt"
DEFAULT_N = 2**14
DEFAULT_R = 8
DEFAULT_P = 1
DKLEN = 32
MAX_CACHE = 256


class HashError(ValueError):
    """The text is not a password hash this program understands."""


@dataclass(frozen=True)
class PasswordHash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    def derive(self, password: str) -> bytes:
        return hashlib.scrypt(
            password.encode("utf-8"),
            salt=self.salt,
            n=self.n,
            r=self.r,
            p=self.p,
            maxmem=256 * 1024 * 1024,
            dklen=len(self.digest),
        )

    def matches(self, password: str) -> bool:
        return hmac.compare_digest(self.derive(password), self.digest)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise HashError(f"the {what} is not base64") from None


def make(password: str, *, n: int = DEFAULT_N, r: int = DEFAULT_R, p: int = DEFAULT_P) -> str:
    """A new hash of ``password`` with a random salt."""
    if not password:
        raise HashError("an empty password cannot be hashed")
    salt = secrets.token_bytes(16)
    h = PasswordHash(n, r, p, salt, b"\0" * DKLEN)
    return f"{SCHEME}$n={n},r={r},p={p}${_b64(salt)}${_b64(h.derive(password))}"


def parse(text: str) -> PasswordHash:
    """The hash in ``text``, or :class:`HashError` saying what is wrong."""
    parts = text.split("$") if isinstance(text, str) else []
    if len(parts) != 4:
        raise HashError("expected scrypt$n=N,r=R,p=P$SALT$HASH (make one: bptd-http hash-password)")
    scheme, params, salt, digest = parts
    if scheme != SCHEME:
        raise HashError(f"unknown scheme {scheme[:20]!r}; only {SCHEME!r} is supported")
    values: dict[str, int] = {}
    for item in params.split(","):
        key, sep, value = item.partition("=")
        if not sep or key not in ("n", "r", "p") or not value.isdigit():
            raise HashError(f"bad parameter {item[:20]!r}; expected n=N,r=R,p=P")
        values[key] = int(value)
    if set(values) != {"n", "r", "p"}:
        raise HashError("the parameters need n, r and p")
    n, r, p = values["n"], values["r"], values["p"]
    if n < 2 or n & (n - 1) or n > 2**20:
        raise HashError("n must be a power of two between 2 and 2**20")
    if not 1 <= r <= 32 or not 1 <= p <= 16 or 128 * r * n > 256 * 1024 * 1024:
        raise HashError("r must be 1..32 and p 1..16 (and 128*r*n at most 256 MiB)")
    salt_b = _unb64(salt, "salt")
    digest_b = _unb64(digest, "hash")
    if len(salt_b) < 8:
        raise HashError("the salt must be at least 8 bytes")
    if not 16 <= len(digest_b) <= 64:
        raise HashError("the hash must be 16..64 bytes")
    return PasswordHash(n, r, p, salt_b, digest_b)


def check_hash(text: str) -> None:
    parse(text)


class Verifier:
    """Checks user / password pairs against the configured hashes."""

    def __init__(self, users: dict[str, str]) -> None:
        self._users = {name: parse(h) for name, h in users.items()}
        self._key = secrets.token_bytes(32)
        self._verified: set[bytes] = set()

    @property
    def users(self) -> list[str]:
        return sorted(self._users)

    def _tag(self, user: str, password: str) -> bytes:
        msg = (
            user.encode("utf-8", "surrogatepass")
            + b"\0"
            + password.encode("utf-8", "surrogatepass")
        )
        return hmac.new(self._key, msg, hashlib.sha256).digest()

    def known(self, user: str, password: str) -> bool | None:
        """True / False when it can answer without a key derivation, else None."""
        if user not in self._users:
            return False
        return True if self._tag(user, password) in self._verified else None

    def verify(self, user: str, password: str) -> bool:
        """The full check (a key derivation: run it off the event loop)."""
        h = self._users.get(user)
        if h is None:
            return False
        try:
            ok = h.matches(password)
        except (UnicodeEncodeError, ValueError):
            return False
        if ok:
            if len(self._verified) >= MAX_CACHE:
                self._verified.clear()
            self._verified.add(self._tag(user, password))
        return ok
