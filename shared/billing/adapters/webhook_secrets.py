"""KMS: webhook signing secrets sealed with the stack's webhook key, under an encryption context that
names the tenant and the endpoint (a ciphertext copied to another endpoint's item does not open)."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from billing.adapters.aws_errors import error_code, is_transient
from billing.domain.errors import TransientFailure

CACHE_SECONDS = 300.0  # a warm sender decrypts an endpoint's secret once per 5 minutes, not per delivery


class KmsSecretBox:
    def __init__(
        self, key_id: str, client: Any = None, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._key_id = key_id
        self._client = client or boto3.client("kms")
        self._monotonic = monotonic
        self._cache: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[float, str]] = {}
        self._lock = threading.Lock()

    def encrypt(self, plaintext: str, context: dict[str, str]) -> str:
        try:
            blob = self._client.encrypt(
                KeyId=self._key_id, Plaintext=plaintext.encode(), EncryptionContext=context
            )["CiphertextBlob"]
        except (ClientError, BotoCoreError) as exc:
            raise _failure(exc) from exc
        return base64.b64encode(blob).decode()

    def decrypt(self, ciphertext: str, context: dict[str, str]) -> str:
        key = (ciphertext, tuple(sorted(context.items())))
        now = self._monotonic()
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        try:
            plaintext = self._client.decrypt(
                KeyId=self._key_id, CiphertextBlob=base64.b64decode(ciphertext), EncryptionContext=context
            )["Plaintext"].decode()
        except (ClientError, BotoCoreError) as exc:
            raise _failure(exc) from exc
        with self._lock:
            self._cache[key] = (now, plaintext)
        return plaintext


def _failure(exc: Exception) -> Exception:
    if isinstance(exc, BotoCoreError) or (isinstance(exc, ClientError) and is_transient(exc)):
        return TransientFailure(
            f"kms: {error_code(exc) if isinstance(exc, ClientError) else type(exc).__name__}"
        )
    return exc
