"""A Lambda context object for invoking handlers in-process (local runtime, tests)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field


@dataclass
class LocalLambdaContext:
    function_name: str
    timeout_seconds: int = 30
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    region: str = "us-east-1"
    account_id: str = "123456789012"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        elapsed = time.monotonic() - self._started
        return max(0, int((self.timeout_seconds - elapsed) * 1000))


def new_context(function_name: str, timeout_seconds: int = 30) -> LocalLambdaContext:
    """A fresh context per invocation (each gets its own request id and deadline)."""
    return LocalLambdaContext(function_name=function_name, timeout_seconds=timeout_seconds)
