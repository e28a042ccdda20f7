"""API key format, hashing and bearer parsing (pure)."""

from __future__ import annotations

import hashlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.api_keys import (
    InvalidApiKey,
    generate_api_key,
    hash_api_key,
    is_well_formed,
    key_id_for,
    parse_bearer,
    validate_raw_key,
)
from billing.domain.tenants import Scope

FIXED_SECRET = "A" * 43


@pytest.mark.parametrize("scope", list(Scope))
def test_generated_key_is_bk_scope_and_43_url_safe_chars(scope: Scope) -> None:
    key = generate_api_key(scope)
    assert re.fullmatch(rf"bk_{scope.value}_[A-Za-z0-9_\-]{{43}}", key)
    assert validate_raw_key(key, scope) == key


def test_generated_keys_differ_and_randomness_can_be_injected() -> None:
    assert generate_api_key(Scope.INGEST) != generate_api_key(Scope.INGEST)
    assert generate_api_key(Scope.ADMIN, token=lambda n: FIXED_SECRET) == f"bk_admin_{FIXED_SECRET}"


def test_hash_is_sha256_hex_and_deterministic() -> None:
    key = f"bk_ingest_{FIXED_SECRET}"
    assert hash_api_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert hash_api_key(key) == hash_api_key(key)
    assert hash_api_key(key) != hash_api_key(key[:-1] + "B")


def test_key_id_is_public_prefix_of_the_hash() -> None:
    key = f"bk_ingest_{FIXED_SECRET}"
    assert key_id_for(key) == "key_" + hash_api_key(key)[:12]
    assert FIXED_SECRET not in key_id_for(key)


@pytest.mark.parametrize(
    "raw",
    [
        "x" * 32,  # the shortest operator-fixed key
        "local-admin-key_0123456789abcdefXYZ",
        "z" * 128,
    ],
)
def test_operator_fixed_keys_of_32_to_128_url_safe_chars_are_accepted(raw: str) -> None:
    assert validate_raw_key(raw) == raw
    assert is_well_formed(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "short",
        "x" * 31,
        "z" * 129,
        "has space" + "x" * 30,
        "é" * 40,
        "bk_ingest_tooshort",
        f"bk_superuser_{FIXED_SECRET}",
        f"bk_ingest_{FIXED_SECRET}x",
        f"bk_ingest_{FIXED_SECRET[:-1]}!",
    ],
)
def test_keys_breaking_the_format_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidApiKey):
        validate_raw_key(raw)
    assert not is_well_formed(raw)


def test_a_prefixed_key_must_carry_the_scope_it_is_issued_with() -> None:
    with pytest.raises(InvalidApiKey, match="scope"):
        validate_raw_key(f"bk_admin_{FIXED_SECRET}", Scope.INGEST)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"Bearer bk_ingest_{FIXED_SECRET}", f"bk_ingest_{FIXED_SECRET}"),
        (f"bearer bk_ingest_{FIXED_SECRET}", f"bk_ingest_{FIXED_SECRET}"),
        (f"BEARER   bk_admin_{FIXED_SECRET}  ", f"bk_admin_{FIXED_SECRET}"),
        ("Bearer " + "k" * 40, "k" * 40),
    ],
)
def test_bearer_scheme_is_case_insensitive(header: str, expected: str) -> None:
    assert parse_bearer(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        42,
        "",
        "Bearer",
        "Bearer ",
        f"bk_ingest_{FIXED_SECRET}",  # no scheme
        f"Basic bk_ingest_{FIXED_SECRET}",
        f"Bearer bk_ingest_{FIXED_SECRET} extra",
        f"Bearerbk_ingest_{FIXED_SECRET}",
        "Bearer short",
        f"Bearer bk_ingest_{FIXED_SECRET}\n",
        "Bearer " + "k" * 10_000,
    ],
)
def test_garbage_authorization_headers_parse_to_none(header: object) -> None:
    assert parse_bearer(header) is None


@given(st.text())
def test_parse_bearer_never_raises_on_arbitrary_strings(header: str) -> None:
    result = parse_bearer(header)
    assert result is None or is_well_formed(result)


@given(st.from_regex(r"[A-Za-z0-9_\-]{32,128}", fullmatch=True).filter(lambda k: not k.startswith("bk_")))
def test_any_operator_fixed_key_round_trips_through_a_bearer_header(raw: str) -> None:
    assert parse_bearer(f"Bearer {raw}") == raw
    assert validate_raw_key(raw) == raw
