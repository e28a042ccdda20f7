"""`Idempotency-Key` on POST and PATCH requests, through Powertools idempotency on DynamoDB.

The same key with the same request replays the first response: its status and its body, byte for byte
(the body is kept as the text that was sent). The same key with another request raises
`IdempotencyValidationError` (answered 422); a request with a key still in progress raises
`IdempotencyAlreadyInProgressError` (answered 409 with Retry-After). Records expire after the configured
TTL (24 h). Keys are scoped per tenant. A request that raised (an error answer, a 5xx) is not kept, so a
client may retry it with the same key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.persistence.base import BasePersistenceLayer
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.typing import LambdaContext


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: str  # the exact text of the first answer
    content_type: str
    replayed: bool = False

    def to_record(self) -> dict[str, Any]:
        return {"status": self.status, "body": self.body, "content_type": self.content_type}

    @classmethod
    def from_record(cls, data: dict[str, Any], replayed: bool) -> StoredResponse:
        return cls(int(data["status"]), str(data["body"]), str(data["content_type"]), replayed)


def _mark_replayed(response: Any, idempotent_data: DataRecord) -> Any:
    return {**response, "replayed": True}


class IdempotentRequests:
    def __init__(self, persistence: BasePersistenceLayer, ttl_seconds: int) -> None:
        self._config = IdempotencyConfig(
            event_key_jmespath="[tenant_id, key]",
            payload_validation_jmespath="fingerprint",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=ttl_seconds,
            hash_function="sha256",
            response_hook=_mark_replayed,
        )
        self._run = idempotent_function(
            data_keyword_argument="request", persistence_store=persistence, config=self._config
        )(self._execute)

    def register_lambda_context(self, context: LambdaContext) -> None:
        """Lets an INPROGRESS record of a timed-out invocation expire with that invocation."""
        self._config.register_lambda_context(context)

    def run(
        self,
        *,
        tenant_id: str,
        key: str,
        method: str,
        path: str,
        body: bytes,
        operation: Callable[[], StoredResponse],
    ) -> StoredResponse:
        fingerprint = hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()
        request = {"tenant_id": tenant_id, "key": key, "fingerprint": fingerprint}
        stored = self._run(request=request, operation=operation)
        return StoredResponse.from_record(stored, replayed=bool(stored.get("replayed", False)))

    @staticmethod
    def _execute(request: dict[str, Any], operation: Callable[[], StoredResponse]) -> dict[str, Any]:
        return replace(operation(), replayed=False).to_record()
