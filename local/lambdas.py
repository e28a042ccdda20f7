"""The Lambda functions, run locally: one worker process per execution environment, as in AWS.

Workers are `python -m local.lambda_worker` processes fed JSON events over a socket pair.

Each function gets its own processes (spawned with the runtime's environment), so the module singletons
the handlers share (the Powertools resolver's current event, Logger keys, Metrics buffers, cached
composition roots) are never touched by two invocations at once, and a function that is slow or crashes
does not stall the others. An environment runs one invocation at a time; `concurrency` environments are
started up front (an import error shows at start-up) and a dead one is replaced on demand. A call that
outlives the function's timeout kills its environment, as Lambda does.

Handlers given as callables (tests' stand-ins) and `in_process=True` (handy under a debugger) run in
this process instead, one invocation at a time.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from billing.resources import (
    CONSUMER_TIMEOUT_SECONDS,
    CYCLE_CLOSE_FUNCTION_NAME,
    CYCLE_CLOSE_TIMEOUT_SECONDS,
)
from local.lambda_context import new_context

Handler = Callable[[Any, Any], Any]


class LambdaError(Exception):
    """The handler raised; `str()` is its message (API Gateway matches "Unauthorized" on it)."""

    def __init__(self, error_type: str, message: str, stack: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.stack = stack


class LambdaTimeout(LambdaError):
    def __init__(self, function: str, seconds: float) -> None:
        super().__init__("Sandbox.Timedout", f"{function}: task timed out after {seconds:.2f} seconds")


@dataclass(frozen=True)
class LambdaFunction:
    """A function of the system: its name, handler (`module:attribute` or a callable) and timeout."""

    name: str
    handler: str | Handler
    timeout_seconds: int = 30


def resolve_handler(spec: str | Handler) -> Handler:
    if callable(spec):
        return spec
    module_name, _, attribute = spec.partition(":")
    handler = getattr(importlib.import_module(module_name), attribute or "handler")
    if not callable(handler):
        raise TypeError(f"{spec} is not callable")
    return handler


# ---- worker processes -------------------------------------------------------------------------------------


class _Environment:
    """One worker process (`local.lambda_worker`): an execution environment, one invocation at a time."""

    def __init__(self, function: LambdaFunction, env: Mapping[str, str]) -> None:
        assert isinstance(function.handler, str)
        self.function = function
        ours, theirs = socket.socketpair()
        with theirs:
            self._process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "local.lambda_worker",
                    function.handler,
                    function.name,
                    str(function.timeout_seconds),
                    str(theirs.fileno()),
                ],
                env=dict(env),
                pass_fds=[theirs.fileno()],
            )
        self._socket = ours
        self._channel = ours.makefile("rwb")
        message = self._receive(timeout=120.0)
        if "ready" not in message:
            self.kill()
            error = message.get("error", {})
            raise LambdaError(
                error.get("type", "Runtime.InitError"),
                f"{function.name}: init failed: {error.get('message')}",
                error.get("stack", ""),
            )

    def _receive(self, timeout: float) -> dict[str, Any]:
        self._socket.settimeout(timeout)
        try:
            line = self._channel.readline()
        except TimeoutError:
            self.kill()
            raise LambdaTimeout(self.function.name, timeout) from None
        except OSError as exc:
            self.kill()
            raise LambdaError("Runtime.ExitError", f"{self.function.name}: the runtime exited") from exc
        if not line:
            self.kill()
            raise LambdaError("Runtime.ExitError", f"{self.function.name}: the runtime exited")
        return dict(json.loads(line))

    @property
    def alive(self) -> bool:
        return self._process.poll() is None and not self._channel.closed

    def invoke(self, event: Any) -> Any:
        try:
            self._channel.write(json.dumps(event, separators=(",", ":")).encode() + b"\n")
            self._channel.flush()
        except (OSError, ValueError) as exc:
            self.kill()
            raise LambdaError("Runtime.ExitError", f"{self.function.name}: the runtime exited") from exc
        message = self._receive(timeout=float(self.function.timeout_seconds))
        if "ok" in message:
            return message["ok"]
        error = message.get("error", {})
        raise LambdaError(error.get("type", "Error"), error.get("message", ""), error.get("stack", ""))

    def close(self, timeout: float = 5.0) -> None:
        """Close the channel (the worker exits on EOF); kill it if it does not."""
        with contextlib.suppress(OSError, ValueError):
            self._channel.close()
            self._socket.close()
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait(5.0)
        with contextlib.suppress(OSError, ValueError):
            self._channel.close()
            self._socket.close()


class ProcessInvoker:
    """Invokes a function in worker processes, starting up to `concurrency` of them on demand."""

    def __init__(self, function: LambdaFunction, env: Mapping[str, str], concurrency: int = 1) -> None:
        self.function = function
        self._env = dict(env)
        self._concurrency = max(1, concurrency)
        self._idle: queue.LifoQueue[_Environment] = queue.LifoQueue()
        self._all: list[_Environment] = []
        self._lock = threading.Lock()
        self._closed = False

    def load(self) -> ProcessInvoker:
        """Start every environment now (in parallel), so a broken handler fails the start-up and the first
        requests do not pay cold starts."""
        with ThreadPoolExecutor(self._concurrency) as pool:
            for environment in pool.map(lambda _: self._new_environment(), range(self._concurrency)):
                self._idle.put(environment)
        return self

    def _new_environment(self) -> _Environment:
        environment = _Environment(self.function, self._env)
        with self._lock:
            self._all.append(environment)
        return environment

    def _acquire(self) -> _Environment:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            self._all = [e for e in self._all if e.alive]
            can_grow = len(self._all) < self._concurrency
        if can_grow:
            return self._new_environment()
        return self._idle.get()

    def __call__(self, event: Any) -> Any:
        if self._closed:
            raise LambdaError("Runtime.Stopped", f"{self.function.name}: the runtime is stopping")
        environment = self._acquire()
        try:
            return environment.invoke(event)
        finally:
            if environment.alive and not self._closed:
                self._idle.put(environment)
            elif not environment.alive:
                with self._lock:
                    if environment in self._all:
                        self._all.remove(environment)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            environments, self._all = self._all, []
        for environment in environments:
            environment.close()


class InProcessInvoker:
    """Invokes a handler in this process; one invocation at a time across all in-process functions,
    because they share module singletons (see the module docstring)."""

    _lock = threading.RLock()

    def __init__(self, function: LambdaFunction) -> None:
        self.function = function
        self._handler: Handler | None = None

    def load(self) -> InProcessInvoker:
        self._handler = resolve_handler(self.function.handler)
        return self

    def __call__(self, event: Any) -> Any:
        if self._handler is None:
            self.load()
        assert self._handler is not None
        context = new_context(self.function.name, timeout_seconds=self.function.timeout_seconds)
        with self._lock:
            return self._handler(event, context)

    def close(self) -> None:
        return None


Invoker = ProcessInvoker | InProcessInvoker


def make_invoker(
    function: LambdaFunction, env: Mapping[str, str], *, concurrency: int = 1, in_process: bool = False
) -> Invoker:
    if in_process or callable(function.handler):
        return InProcessInvoker(function)
    return ProcessInvoker(function, env, concurrency)


API_FUNCTION = LambdaFunction("billing-api", "functions.api.handler:handler", timeout_seconds=29)
AUTHORIZER_FUNCTION = LambdaFunction(
    "billing-authorizer", "functions.authorizer.handler:handler", timeout_seconds=10
)
CONSUMER_FUNCTION = LambdaFunction(
    "billing-ingest-consumer",
    "functions.ingest_consumer.handler:handler",
    timeout_seconds=CONSUMER_TIMEOUT_SECONDS,
)
# Named as the state machine's Lambda tasks name it locally (`LambdaRouter` routes by this name).
CYCLE_CLOSE_FUNCTION = LambdaFunction(
    CYCLE_CLOSE_FUNCTION_NAME,
    "functions.cycle_close.handler:handler",
    timeout_seconds=CYCLE_CLOSE_TIMEOUT_SECONDS,
)
