"""Handlers for the worker-pool tests (imported by `local.lambda_worker` in its own process)."""

from __future__ import annotations

import os
from typing import Any


def pid(event: Any, context: Any) -> int:
    return os.getpid()


def crash(event: Any, context: Any) -> None:
    # What a segfault in an extension or a handler calling os._exit looks like: no reply, the process gone.
    os._exit(70)
