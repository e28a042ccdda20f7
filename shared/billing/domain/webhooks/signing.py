"""How a webhook is signed: Standard Webhooks (https://www.standardwebhooks.com) secrets, signatures and
headers, and the verification a receiver makes, as pure functions (the caller passes the clock and the bytes).

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature is HMAC-SHA256 under the
base64-decoded secret, sent as `v1,<base64>`. A receiver's own Standard Webhooks library must accept what we
send, so the format follows the specification to the byte (tests check it against the reference library).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping, Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's marker, not a secret
SECRET_BYTES = 32
# The specification asks for secrets of 24 to 64 bytes.
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"


class SignatureMismatch(ValueError):
    """A webhook that does not verify; `reason` says why (a header is missing, the timestamp is outside the
    tolerance, or no signature matches)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def new_secret(random_bytes: bytes) -> str:
    """A signing secret, `whsec_` + base64 of `random_bytes` (pass `SECRET_BYTES` from a CSPRNG)."""
    if not isinstance(random_bytes, bytes | bytearray):
        raise TypeError("random_bytes must be bytes")
    if not MIN_SECRET_BYTES <= len(random_bytes) <= MAX_SECRET_BYTES:
        raise ValueError(
            f"a webhook secret is {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes, "
            f"got {len(random_bytes)}"
        )
    return SECRET_PREFIX + base64.b64encode(bytes(random_bytes)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret: the base64 after the optional `whsec_` prefix.

    Missing `=` padding is tolerated, as the reference libraries do (a secret pasted without its padding is
    still the same key); any character outside the standard base64 alphabet is refused rather than skipped,
    since skipping would silently sign with a different key than the one the receiver holds.
    """
    if not isinstance(secret, str):
        raise TypeError("a webhook secret is a string (whsec_ followed by base64)")
    encoded = secret.removeprefix(SECRET_PREFIX)
    if not encoded:
        raise ValueError("the webhook secret is empty (expected whsec_ followed by base64)")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(
            "the webhook secret is not valid base64 after the whsec_ prefix "
            "(standard alphabet A-Z a-z 0-9 + /, optional = padding)"
        ) from exc
    if not key:
        raise ValueError("the webhook secret decodes to no bytes")
    return key


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64>` signature of one message under one secret."""
    return f"{SIGNATURE_VERSION},{_b64(_digest(secret_key(secret), message_id, timestamp, body))}"


def signature_header(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per secret, space-separated, in the given order.

    During a secret rotation both the new and the old secret sign, so a receiver still holding the old one
    keeps verifying until it switches.
    """
    if isinstance(secrets, str):
        # A str is a Sequence[str]: without this, one secret would be signed character by character.
        raise TypeError("secrets is a sequence of secrets, not one secret")
    if not secrets:
        raise ValueError("at least one secret is needed to sign a webhook")
    keys = [secret_key(secret) for secret in secrets]
    return " ".join(f"{SIGNATURE_VERSION},{_b64(_digest(key, message_id, timestamp, body))}" for key in keys)


def webhook_headers(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers a webhook request carries (the body is JSON)."""
    # These values go into HTTP header lines: a control character or a space in the id would break the
    # request (or smuggle a header), and receivers' libraries split nothing but expect one token.
    if not message_id or any(not 0x21 <= ord(char) <= 0x7E for char in message_id):
        raise ValueError("a webhook id must be a non-empty token of printable ASCII characters")
    return {
        HEADER_ID: message_id,
        HEADER_TIMESTAMP: str(_checked_timestamp(timestamp)),
        HEADER_SIGNATURE: signature_header(secrets, message_id, timestamp, body),
        "content-type": "application/json",
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> None:
    """Check a received webhook the way a receiver should; raises SignatureMismatch saying why not.

    Header names are case-insensitive. The timestamp must be within `tolerance_seconds` of `now` (unix
    seconds) either way, which bounds how long a captured request can be replayed. Every `v1,` entry of the
    signature header is compared in constant time; entries of other versions are ignored.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    message_id = _required(lowered, HEADER_ID)
    timestamp_text = _required(lowered, HEADER_TIMESTAMP)
    signatures = _required(lowered, HEADER_SIGNATURE)

    # Whole seconds only: signers write an integer, and "1.5" or "+1" would sign a text other than its number.
    if not (timestamp_text.isascii() and timestamp_text.isdigit()):
        raise SignatureMismatch(f"{HEADER_TIMESTAMP} is not a whole number of unix seconds")
    timestamp = int(timestamp_text)
    if timestamp < now - tolerance_seconds:
        raise SignatureMismatch(f"{HEADER_TIMESTAMP} is too old (more than {tolerance_seconds} s before now)")
    if timestamp > now + tolerance_seconds:
        raise SignatureMismatch(f"{HEADER_TIMESTAMP} is too new (more than {tolerance_seconds} s after now)")

    expected = _b64(_digest(secret_key(secret), message_id, timestamp, body)).encode("ascii")
    matched = False
    for entry in signatures.split(" "):
        version, separator, signature = entry.partition(",")
        if not separator or version != SIGNATURE_VERSION:
            continue
        # Compare the base64 text, not decoded bytes: decoding tolerates variants of the text. Every entry
        # is compared (no early exit), so the time taken does not say which entry matched.
        matched |= hmac.compare_digest(expected, signature.encode("utf-8"))
    if not matched:
        raise SignatureMismatch("no matching signature")


def _required(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise SignatureMismatch(f"missing {name} header")
    return value


def _checked_timestamp(timestamp: int) -> int:
    if isinstance(timestamp, bool) or not isinstance(timestamp, int):
        raise TypeError("a webhook timestamp is an int of unix seconds")
    if timestamp < 0:
        raise ValueError("a webhook timestamp is a non-negative number of unix seconds")
    return timestamp


def _digest(key: bytes, message_id: str, timestamp: int, body: bytes) -> bytes:
    # The timestamp is signed as the integer's decimal text, as the reference libraries do (a header with
    # leading zeros verifies as its number).
    if not isinstance(body, bytes | bytearray):
        # A str body would be signed as whatever encoding it is sent in: sign the bytes that are sent.
        raise TypeError("a webhook body is the bytes sent")
    signed = f"{message_id}.{_checked_timestamp(timestamp)}.".encode() + bytes(body)
    return hmac.new(key, signed, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
