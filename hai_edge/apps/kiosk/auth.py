"""Operator credentials, sessions and CSRF tokens (standard library only).

* PINs/passwords: ``hashlib.scrypt`` (memory-hard) with a 16-byte random salt per user and the
  parameters stored in the hash string (``scrypt$n=32768,r=8,p=1$<salt>$<key>``): about 32 MiB and
  tens of milliseconds per check, so an offline guess costs the same. Minimum length 6.
* Lockout: ``max_failures`` consecutive failures lock the account for ``lockout_s``.
* Sessions: a 256-bit random token in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS);
  the database keeps only its SHA-256. Idle and absolute timeouts.
* CSRF: every POST carries ``X-CSRF-Token``. With a session it must equal the token bound to the
  session; before sign-in (login, first-run setup) it must equal the ``kiosk_csrf`` cookie
  (double submit). The cookie is readable by the page's own script, never by another origin.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets

__all__ = ["CSRF_COOKIE", "CSRF_HEADER", "SESSION_COOKIE", "KdfParams", "burn_time",
           "hash_password", "new_token", "token_hash", "tokens_equal", "validate_password",
           "validate_username", "verify_password"]

SESSION_COOKIE = "kiosk_session"
CSRF_COOKIE = "kiosk_csrf"
CSRF_HEADER = "x-csrf-token"
MIN_SECRET_LEN = 6
MAX_SECRET_LEN = 256


@dataclasses.dataclass(frozen=True)
class KdfParams:
    """scrypt cost: memory = 128 * r * n bytes (32 MiB at the defaults)."""

    n: int = 2**15
    r: int = 8
    p: int = 1
    dklen: int = 32

    @property
    def maxmem(self) -> int:
        return 2 * 128 * self.r * self.n + 1024 * 1024


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def hash_password(secret: str, params: KdfParams = KdfParams()) -> str:
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=params.n, r=params.r, p=params.p,
                         dklen=params.dklen, maxmem=params.maxmem)
    return f"scrypt$n={params.n},r={params.r},p={params.p}${_b64(salt)}${_b64(key)}"


def verify_password(secret: str, stored: str) -> bool:
    """Constant-time check against a stored hash; malformed hashes never verify."""
    try:
        kind, cost, salt_b64, key_b64 = stored.split("$")
        if kind != "scrypt":
            return False
        c = dict(item.split("=") for item in cost.split(","))
        params = KdfParams(int(c["n"]), int(c["r"]), int(c["p"]))
        salt = base64.b64decode(salt_b64, validate=True)
        key = base64.b64decode(key_b64, validate=True)
        if len(salt) < 16 or len(key) != KdfParams.dklen:  # a truncated hash never verifies
            return False
        got = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=params.n, r=params.r,
                             p=params.p, dklen=len(key), maxmem=params.maxmem)
    except (ValueError, KeyError, TypeError):
        return False
    return hmac.compare_digest(got, key)


_DUMMY_HASH: list[str] = []


def burn_time(secret: str) -> None:
    """Spend one hash's time for an unknown user, so timing does not reveal which names exist."""
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(hash_password("not-a-user-secret"))
    verify_password(secret, _DUMMY_HASH[0])


def validate_username(name: str) -> str | None:
    """None when acceptable, else the reason."""
    if not (1 <= len(name) <= 64) or not all(c.isalnum() or c in "._-" for c in name):
        return "user names are 1-64 letters, digits, '.', '_' or '-'"
    return None


def validate_password(secret: str) -> str | None:
    if len(secret) < MIN_SECRET_LEN:
        return f"PIN/password must be at least {MIN_SECRET_LEN} characters"
    if len(secret) > MAX_SECRET_LEN:
        return f"PIN/password must be at most {MAX_SECRET_LEN} characters"
    return None


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def tokens_equal(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    return hmac.compare_digest(a.encode("ascii", "replace"), b.encode("ascii", "replace"))
