"""Handlers for the worker-process tests (imported by `local.lambda_worker` in its own process)."""

from __future__ import annotations

import os
import time
from typing import Any


def echo(event: Any, context: Any) -> dict[str, Any]:
    return {
        "event": event,
        "function": context.function_name,
        "pid": os.getpid(),
        "env": os.environ.get("MARK"),
    }


def unauthorized(event: Any, context: Any) -> None:
    raise Exception("Unauthorized")  # what a TOKEN authorizer raises to get a 401


def slow(event: Any, context: Any) -> str:
    time.sleep(float(event["seconds"]))
    return "done"
