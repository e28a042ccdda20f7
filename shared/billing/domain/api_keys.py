"""API keys: their format, hashing, public ids and parsing from an `Authorization` header.

Pure: no I/O, no clock. Only the SHA-256 of a key is ever stored; the raw key is shown once, at issue.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict

from billing.domain.tenants import Scope

KEY_PREFIX = "bk_"
SECRET_BYTES = 32  # 256 bits of entropy; token_urlsafe encodes them as 43 characters
SECRET_LENGTH = 43
MIN_FIXED_KEY_LENGTH = 32
MAX_KEY_LENGTH = 128

_SCOPES = "|".join(scope.value for scope in Scope)
_ISSUED_KEY = re.compile(rf"bk_(?P<scope>{_SCOPES})_[A-Za-z0-9_\-]{{{SECRET_LENGTH}}}")
_FIXED_KEY = re.compile(rf"[A-Za-z0-9_\-]{{{MIN_FIXED_KEY_LENGTH},{MAX_KEY_LENGTH}}}")
_BEARER = re.compile(r"[ \t]*bearer[ \t]+(?P<token>\S+)[ \t]*", re.IGNORECASE)


class InvalidApiKey(ValueError):
    """A key offered for issue does not follow the key format rules (see `validate_raw_key`)."""


class ApiKeyRecord(BaseModel):
    """What is stored about one key: everything except the key itself."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    tenant_id: str
    scope: Scope
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def generate_api_key(scope: Scope, token: Callable[[int], str] = secrets.token_urlsafe) -> str:
    """A new key `bk_<scope>_<43 url-safe chars>`; the scope in the text only helps humans tell keys apart."""
    return f"{KEY_PREFIX}{Scope(scope).value}_{token(SECRET_BYTES)}"


def hash_api_key(raw_key: str) -> str:
    """SHA-256 hex of the key: the lookup key under which it is stored.

    A plain fast hash is right here: keys carry 256 random bits, so there is nothing to brute-force and a
    slow password hash (bcrypt, scrypt) would only add latency to every authorization.
    """
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def key_id_for(raw_key: str) -> str:
    """The key's public id (safe to log and show): `key_` + the first 12 hex digits of its hash."""
    return "key_" + hash_api_key(raw_key)[:12]


def is_well_formed(raw_key: str) -> bool:
    """Whether `raw_key` could be a key at all (see `validate_raw_key` for the rules); never raises."""
    if not isinstance(raw_key, str):
        return False
    if raw_key.startswith(KEY_PREFIX):
        return _ISSUED_KEY.fullmatch(raw_key) is not None
    return _FIXED_KEY.fullmatch(raw_key) is not None


def validate_raw_key(raw_key: str, scope: Scope | None = None) -> str:
    """Check a key an operator wants to fix (e.g. BILLING_LOCAL_ADMIN_KEY) and return it unchanged.

    Rules: a key starting with `bk_` must be exactly `bk_<scope>_<43 chars of [A-Za-z0-9_-]>`, and when
    `scope` is given the embedded scope must be that one. Any other key must be 32 to 128 characters of
    `[A-Za-z0-9_-]` (enough room for at least 190 random bits). Raises InvalidApiKey naming the broken rule.
    """
    if not isinstance(raw_key, str) or not raw_key:
        raise InvalidApiKey("an API key must be a non-empty string")
    if raw_key.startswith(KEY_PREFIX):
        match = _ISSUED_KEY.fullmatch(raw_key)
        if match is None:
            raise InvalidApiKey(
                f"a key starting with {KEY_PREFIX!r} must be {KEY_PREFIX}<scope>_<{SECRET_LENGTH} characters "
                "of A-Z a-z 0-9 _ ->, with scope one of: " + ", ".join(s.value for s in Scope)
            )
        if scope is not None and match["scope"] != Scope(scope).value:
            raise InvalidApiKey(
                f"the key says scope {match['scope']!r} but it is issued with {Scope(scope).value!r}"
            )
        return raw_key
    if _FIXED_KEY.fullmatch(raw_key) is None:
        raise InvalidApiKey(
            f"an API key must be {MIN_FIXED_KEY_LENGTH} to {MAX_KEY_LENGTH} characters of A-Z a-z 0-9 _ -"
        )
    return raw_key


def parse_bearer(header_value: object) -> str | None:
    """The key from `Bearer <key>` (scheme case-insensitive), or None for anything else; never raises."""
    if not isinstance(header_value, str) or len(header_value) > MAX_KEY_LENGTH + 64:
        return None
    match = _BEARER.fullmatch(header_value)
    if match is None:
        return None
    token = match["token"]
    return token if is_well_formed(token) else None
