"""One Lambda execution environment: `python -m local.lambda_worker <handler> <name> <timeout> <fd>`.

Imports the handler once (the cold start), then serves invocations over the inherited socket `fd`:
one JSON line in (the event), one JSON line out (`{"ok": result}` or `{"error": {...}}`). Events and
results cross as JSON, as they do in Lambda. Exits when the socket closes.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import traceback
from typing import Any

from local.lambda_context import new_context


def _error(exc: BaseException) -> dict[str, Any]:
    return {"error": {"type": type(exc).__name__, "message": str(exc), "stack": traceback.format_exc()}}


def serve(handler_spec: str, function_name: str, timeout_seconds: int, fd: int) -> int:
    # Ctrl-C reaches the whole process group; the runtime decides when its environments stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from local.lambdas import resolve_handler

    with socket.socket(fileno=fd) as sock, sock.makefile("rwb") as channel:

        def reply(message: dict[str, Any]) -> None:
            channel.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
            channel.flush()

        try:
            handler = resolve_handler(handler_spec)
        except BaseException as exc:
            reply(_error(exc))
            return 1
        reply({"ready": True})
        for line in channel:
            try:
                event = json.loads(line)
                result = handler(event, new_context(function_name, timeout_seconds=timeout_seconds))
                reply({"ok": result})
            except Exception as exc:
                try:
                    reply(_error(exc))
                except (OSError, ValueError):
                    return 1
    return 0


if __name__ == "__main__":
    spec, name, timeout, fd = sys.argv[1:5]
    sys.exit(serve(spec, name, int(timeout), int(fd)))
