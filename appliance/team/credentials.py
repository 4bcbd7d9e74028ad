"""Passwords (argon2id) and API tokens (256-bit random, stored as SHA-256).

API tokens are random with 256 bits of entropy, so a fast hash is enough to store them: no
dictionary to attack, and the lookup on every request stays cheap. Passwords are chosen by
people and get argon2id with the library's recommended parameters.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from argon2 import PasswordHasher

__all__ = ["hash_password", "verify_password", "new_api_token", "hash_token", "TOKEN_PREFIX"]

TOKEN_PREFIX = "aat_"


@functools.cache
def _hasher() -> PasswordHasher:
    """argon2id, RFC 9106 low-memory profile. argon2 (and its cffi bindings) is imported by the
    first password hashed or checked, not at start (BENCHMARKS.md, "Footprint")."""
    from argon2 import PasswordHasher

    return PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def new_api_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
