"""Standard Webhooks signing (pure): the reference `standardwebhooks` library accepts what we send."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from billing.domain.webhooks.signing import (
    SECRET_BYTES,
    SECRET_PREFIX,
    SignatureMismatch,
    new_secret,
    secret_key,
    sign,
    signature_header,
    verify,
    webhook_headers,
)

# The Standard Webhooks test vector (the reference libraries' tests, and the specification's examples).
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

SECRET = new_secret(bytes(range(SECRET_BYTES)))
OTHER_SECRET = new_secret(bytes(range(100, 100 + SECRET_BYTES)))
MESSAGE_ID = "msg_01JABCDEF0123456789ABCDEFG"
BODY = json.dumps({"type": "invoice.finalized", "data": {"invoice_id": "inv_1", "total": "12.50"}}).encode()
NOW = 1_767_225_600  # 2026-01-01T00:00:00Z

secret_bytes = st.binary(min_size=24, max_size=64)
message_ids = st.text(min_size=1, max_size=80)
header_ids = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=80)
timestamps = st.integers(min_value=0, max_value=2**33)


def headers_for(message_id: str, timestamp: int, signature: str) -> dict[str, str]:
    return {"webhook-id": message_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def reason_of(headers: dict[str, str], body: bytes, *, secret: str = SECRET, now: int = NOW) -> str:
    with pytest.raises(SignatureMismatch) as refused:
        verify(secret, headers, body, now=now)
    return refused.value.reason


# --- interoperability: the published vector and the reference library ---------------------------------------


def test_the_standard_webhooks_test_vector_is_reproduced_exactly() -> None:
    assert sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_the_test_vector_verifies_at_its_own_time() -> None:
    headers = headers_for(VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_SIGNATURE)
    verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP)


def test_the_secret_prefix_is_optional_as_in_the_reference_libraries() -> None:
    unprefixed = VECTOR_SECRET.removeprefix(SECRET_PREFIX)
    assert sign(unprefixed, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE


def test_the_reference_library_accepts_the_headers_we_send() -> None:
    timestamp = int(time.time())
    headers = webhook_headers([SECRET], MESSAGE_ID, timestamp, BODY)
    assert Webhook(SECRET).verify(BODY, headers) == json.loads(BODY)


@given(secret=secret_bytes, message_id=header_ids, body=st.text(max_size=300))
def test_the_reference_library_accepts_every_signature_we_make(
    secret: bytes, message_id: str, body: str
) -> None:
    # The reference library decodes the body as UTF-8 before signing, so text bodies are what it can check.
    whsec = new_secret(secret)
    timestamp = int(time.time())
    headers = webhook_headers([whsec], message_id, timestamp, body.encode())
    Webhook(whsec).verify(body.encode(), headers, json_parse=False)


@given(secret=secret_bytes, message_id=message_ids, timestamp=timestamps, body=st.text(max_size=300))
def test_our_signature_equals_the_reference_librarys_for_any_message(
    secret: bytes, message_id: str, timestamp: int, body: str
) -> None:
    whsec = new_secret(secret)
    reference = Webhook(whsec).sign(message_id, datetime.fromtimestamp(timestamp, tz=UTC), body)
    assert sign(whsec, message_id, timestamp, body.encode()) == reference


def test_during_a_rotation_each_secret_alone_verifies_the_header() -> None:
    timestamp = int(time.time())
    headers = webhook_headers([SECRET, OTHER_SECRET], MESSAGE_ID, timestamp, BODY)
    Webhook(SECRET).verify(BODY, headers)
    Webhook(OTHER_SECRET).verify(BODY, headers)
    verify(SECRET, headers, BODY, now=timestamp)
    verify(OTHER_SECRET, headers, BODY, now=timestamp)


def test_a_secret_not_in_the_rotation_verifies_nothing() -> None:
    timestamp = int(time.time())
    headers = webhook_headers([SECRET, OTHER_SECRET], MESSAGE_ID, timestamp, BODY)
    stranger = new_secret(b"\xff" * SECRET_BYTES)
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(BODY, headers)
    assert reason_of(headers, BODY, secret=stranger, now=timestamp) == "no matching signature"


def test_the_signature_header_lists_one_signature_per_secret_in_the_given_order() -> None:
    header = signature_header([OTHER_SECRET, SECRET], MESSAGE_ID, NOW, BODY)
    expected = [sign(OTHER_SECRET, MESSAGE_ID, NOW, BODY), sign(SECRET, MESSAGE_ID, NOW, BODY)]
    assert header.split(" ") == expected


def test_webhook_headers_carry_the_id_the_timestamp_the_signature_and_the_json_content_type() -> None:
    assert webhook_headers([SECRET], MESSAGE_ID, NOW, BODY) == {
        "webhook-id": MESSAGE_ID,
        "webhook-timestamp": str(NOW),
        "webhook-signature": sign(SECRET, MESSAGE_ID, NOW, BODY),
        "content-type": "application/json",
    }


# --- tampering ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("part", ["body", "id", "timestamp"])
def test_a_tampered_body_id_or_timestamp_fails_both_our_verify_and_the_reference_librarys(part: str) -> None:
    timestamp = int(time.time())
    headers = webhook_headers([SECRET], MESSAGE_ID, timestamp, BODY)
    body = BODY
    if part == "body":
        body = BODY.replace(b"12.50", b"1.25")
    elif part == "id":
        headers["webhook-id"] = MESSAGE_ID + "x"
    else:
        # Still within the tolerance: only the signature can fail.
        headers["webhook-timestamp"] = str(timestamp - 1)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, headers)
    assert reason_of(headers, body, now=timestamp) == "no matching signature"


@given(
    secret=secret_bytes,
    message_id=message_ids,
    timestamp=timestamps,
    body=st.binary(min_size=1, max_size=500),
    data=st.data(),
)
def test_any_signed_body_verifies_and_any_single_byte_change_breaks_it(
    secret: bytes, message_id: str, timestamp: int, body: bytes, data: st.DataObject
) -> None:
    whsec = new_secret(secret)
    headers = headers_for(message_id, timestamp, sign(whsec, message_id, timestamp, body))
    verify(whsec, headers, body, now=timestamp)

    index = data.draw(st.integers(min_value=0, max_value=len(body) - 1), label="index")
    flip = data.draw(st.integers(min_value=1, max_value=255), label="flip")
    changed = bytearray(body)
    changed[index] ^= flip
    assert reason_of(headers, bytes(changed), secret=whsec, now=timestamp) == "no matching signature"


@given(secret=secret_bytes, message_id=message_ids, timestamp=timestamps, body=st.binary(max_size=200))
def test_a_signature_made_for_another_id_or_timestamp_does_not_verify(
    secret: bytes, message_id: str, timestamp: int, body: bytes
) -> None:
    whsec = new_secret(secret)
    signature = sign(whsec, message_id, timestamp, body)
    other_id = headers_for(message_id + "0", timestamp, signature)
    other_time = headers_for(message_id, timestamp + 1, signature)
    assert reason_of(other_id, body, secret=whsec, now=timestamp) == "no matching signature"
    assert reason_of(other_time, body, secret=whsec, now=timestamp) == "no matching signature"


def test_a_single_character_change_in_the_signature_text_breaks_it() -> None:
    # The last base64 character before "=" carries 2 unused bits: compared as decoded bytes, some changes
    # to it would still match. The text is compared, so none does.
    signature = sign(SECRET, MESSAGE_ID, NOW, BODY)
    last = signature[-2]
    for replacement in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/":
        if replacement != last:
            changed = signature[:-2] + replacement + "="
            assert reason_of(headers_for(MESSAGE_ID, NOW, changed), BODY) == "no matching signature"


# --- verify's rules -----------------------------------------------------------------------------------------


def test_header_names_are_read_case_insensitively() -> None:
    headers = {
        "Webhook-Id": MESSAGE_ID,
        "WEBHOOK-TIMESTAMP": str(NOW),
        "webhook-Signature": sign(SECRET, MESSAGE_ID, NOW, BODY),
    }
    verify(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
@pytest.mark.parametrize("absent", ["missing", "empty"])
def test_a_missing_or_empty_header_is_refused_naming_it(name: str, absent: str) -> None:
    headers = headers_for(MESSAGE_ID, NOW, sign(SECRET, MESSAGE_ID, NOW, BODY))
    if absent == "missing":
        del headers[name]
    else:
        headers[name] = ""
    assert reason_of(headers, BODY) == f"missing {name} header"


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_a_timestamp_within_the_tolerance_either_way_verifies(offset: int) -> None:
    timestamp = NOW + offset
    headers = headers_for(MESSAGE_ID, timestamp, sign(SECRET, MESSAGE_ID, timestamp, BODY))
    verify(SECRET, headers, BODY, now=NOW)


@pytest.mark.parametrize(("offset", "words"), [(-301, "too old"), (301, "too new")])
def test_a_timestamp_beyond_the_tolerance_is_refused_though_correctly_signed(offset: int, words: str) -> None:
    timestamp = NOW + offset
    headers = headers_for(MESSAGE_ID, timestamp, sign(SECRET, MESSAGE_ID, timestamp, BODY))
    assert words in reason_of(headers, BODY)


def test_the_tolerance_can_be_chosen_by_the_caller() -> None:
    timestamp = NOW - 1000
    headers = headers_for(MESSAGE_ID, timestamp, sign(SECRET, MESSAGE_ID, timestamp, BODY))
    verify(SECRET, headers, BODY, now=NOW, tolerance_seconds=1000)
    with pytest.raises(SignatureMismatch, match="too old"):
        verify(SECRET, headers, BODY, now=NOW, tolerance_seconds=999)


@pytest.mark.parametrize(
    "timestamp",
    ["abc", "1.5", "-1", "+1767225600", " 1767225600", "\uff11\uff12"],  # fullwidth digits
)
def test_a_timestamp_that_is_not_whole_unix_seconds_is_refused(timestamp: str) -> None:
    headers = headers_for(MESSAGE_ID, NOW, sign(SECRET, MESSAGE_ID, NOW, BODY))
    headers["webhook-timestamp"] = timestamp
    assert "not a whole number" in reason_of(headers, BODY)


def test_entries_of_other_versions_and_malformed_entries_are_ignored() -> None:
    good = sign(SECRET, MESSAGE_ID, NOW, BODY)
    payload = good.removeprefix("v1,")
    header = f"v2,{payload} garbage v1a,{payload}  v1,bm9wZQ== {good}"
    verify(SECRET, headers_for(MESSAGE_ID, NOW, header), BODY, now=NOW)


def test_a_valid_signature_under_another_version_tag_is_not_accepted() -> None:
    payload = sign(SECRET, MESSAGE_ID, NOW, BODY).removeprefix("v1,")
    headers = headers_for(MESSAGE_ID, NOW, f"v2,{payload} v1a,{payload}")
    assert reason_of(headers, BODY) == "no matching signature"


def test_a_signature_mismatch_is_a_value_error_with_its_reason_as_message() -> None:
    with pytest.raises(ValueError, match="missing webhook-id header"):
        verify(SECRET, {}, BODY, now=NOW)


# --- secrets ------------------------------------------------------------------------------------------------


def test_a_new_secret_is_the_prefix_and_the_base64_of_the_random_bytes() -> None:
    random_bytes = bytes(range(SECRET_BYTES))
    assert new_secret(random_bytes) == "whsec_" + base64.b64encode(random_bytes).decode()
    assert new_secret(bytes(32)) == "whsec_" + "A" * 43 + "="


@given(random_bytes=secret_bytes)
def test_the_key_of_a_new_secret_is_its_random_bytes(random_bytes: bytes) -> None:
    assert secret_key(new_secret(random_bytes)) == random_bytes


@pytest.mark.parametrize("size", [24, 32, 64])
def test_a_secret_of_24_to_64_bytes_is_made(size: int) -> None:
    assert secret_key(new_secret(bytes(size))) == bytes(size)


@pytest.mark.parametrize("size", [0, 16, 23, 65, 128])
def test_a_secret_of_fewer_than_24_or_more_than_64_bytes_is_refused(size: int) -> None:
    with pytest.raises(ValueError, match=f"got {size}"):
        new_secret(bytes(size))


def test_a_secret_without_its_base64_padding_is_the_same_key() -> None:
    padded = new_secret(bytes(range(SECRET_BYTES)))
    assert padded.endswith("=")
    assert secret_key(padded.rstrip("=")) == secret_key(padded)


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "whsec_",
        "whsec_not base64",
        "whsec_abc$defg",
        "whsec_a",  # one character cannot be base64
        "whsec_-_-_-_-_",  # the URL-safe alphabet is not the standard one
        "whsec_AAAA\n",
        "whsec_====",
        "whsec_AA=A",
        "wHsEc_AAAA",  # the prefix is lower case; otherwise "_" is not base64
    ],
)
def test_a_malformed_secret_is_refused_with_a_value_error(secret: str) -> None:
    with pytest.raises(ValueError, match="webhook secret"):
        secret_key(secret)
    with pytest.raises(ValueError, match="webhook secret"):
        sign(secret, MESSAGE_ID, NOW, BODY)


def test_a_malformed_secret_refuses_verification_rather_than_passing_it() -> None:
    headers = headers_for(MESSAGE_ID, NOW, sign(SECRET, MESSAGE_ID, NOW, BODY))
    with pytest.raises(ValueError, match="webhook secret"):
        verify("whsec_!!", headers, BODY, now=NOW)


# --- refusals of the signer ---------------------------------------------------------------------------------


def test_signing_needs_at_least_one_secret() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        signature_header([], MESSAGE_ID, NOW, BODY)
    with pytest.raises(ValueError, match="at least one secret"):
        webhook_headers((), MESSAGE_ID, NOW, BODY)


def test_one_secret_passed_as_a_string_is_refused_rather_than_signed_letter_by_letter() -> None:
    with pytest.raises(TypeError, match="not one secret"):
        signature_header(SECRET, MESSAGE_ID, NOW, BODY)


@pytest.mark.parametrize("message_id", ["", "msg 1", "msg\r\nx-injected: 1", "msg_é"])
def test_an_id_that_cannot_be_a_header_token_is_refused(message_id: str) -> None:
    with pytest.raises(ValueError, match="printable ASCII"):
        webhook_headers([SECRET], message_id, NOW, BODY)


def test_a_negative_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        sign(SECRET, MESSAGE_ID, -1, BODY)


@pytest.mark.parametrize("timestamp", [1.5, "1767225600", True])
def test_a_timestamp_that_is_not_an_int_is_refused(timestamp: object) -> None:
    with pytest.raises(TypeError, match="unix seconds"):
        sign(SECRET, MESSAGE_ID, timestamp, BODY)  # type: ignore[arg-type]


def test_a_text_body_is_refused_the_bytes_sent_are_what_is_signed() -> None:
    with pytest.raises(TypeError, match="bytes sent"):
        sign(SECRET, MESSAGE_ID, NOW, BODY.decode())  # type: ignore[arg-type]
