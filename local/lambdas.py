"""The Lambda functions, run locally: one worker process per execution environment, as in AWS.

Workers are `python -m local.lambda_worker` processes fed JSON events over a socket pair. A function is
built from its spec (`billing.resources.FunctionSpec`, the one the CDK app deploys): name, handler and
timeout come from there, and its workers get only its spec's environment (`function_environment`): the
settings it reads, plus what any process needs (AWS endpoint and credentials, Powertools, Python's own).

Each function gets its own processes, so the module singletons the handlers share (the Powertools
resolver's current event, Logger keys, Metrics buffers, cached composition roots) are never touched by
two invocations at once, and a function that is slow or crashes does not stall the others. An
environment runs one invocation at a time; `concurrency` environments are started up front (an import
error shows at start-up). A call that outlives the function's timeout kills its environment, as Lambda
does.

An environment that dies (killed from outside, a handler that crashed the interpreter, a timeout) is
noticed by a watcher thread as it exits, never handed to an invocation, and replaced in the background,
so the pool comes back to `concurrency` without making a request wait for a cold start while another
environment is free. An invocation that was running in it fails (`Runtime.ExitError`), as in Lambda.

Handlers given as callables (tests' stand-ins) and `in_process=True` (handy under a debugger) run in
this process instead, one invocation at a time. They see this process's whole environment, every other
function's settings included: only worker processes are held to their spec's environment.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from billing.resources import FunctionSpec
from local.lambda_context import new_context

Handler = Callable[[Any, Any], Any]

log = logging.getLogger("billing.local.lambdas")

# How long an invocation waits for a free environment before it looks again whether it may start one
# (a replacement may have failed) or whether the invoker is closing.
_IDLE_WAIT_SECONDS = 0.5


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

    @classmethod
    def from_spec(
        cls, spec: FunctionSpec, *, handler: str | Handler | None = None, timeout_scale: float = 1.0
    ) -> LambdaFunction:
        """The spec's function; `handler` stands in for its code (tests), `timeout_scale` stretches its
        timeout (moto answers slower than AWS)."""
        return cls(
            spec.name,
            spec.local_handler if handler is None else handler,
            max(1, round(spec.timeout_seconds * timeout_scale)),
        )


# What a worker process needs whatever its function: the AWS SDK's endpoint, region and credentials, moto's
# port, Powertools' switches, and what Python and its libraries read from the environment.
_PROCESS_PREFIXES = ("AWS_", "MOTO_", "POWERTOOLS_", "PYTHON", "LC_")
_PROCESS_VARIABLES = frozenset(
    {
        "PATH",
        "HOME",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "TEMP",
        "TMP",
        "VIRTUAL_ENV",
        "LD_LIBRARY_PATH",
        "DYLD_LIBRARY_PATH",
        "SYSTEMROOT",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        # botocore honours proxies as the runtime's own clients do (NO_PROXY keeps moto direct).
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
    }
)


def function_environment(spec: FunctionSpec, env: Mapping[str, str]) -> dict[str, str]:
    """`env` narrowed to what the spec's function may see: its own settings (table names, queue URLs, the
    state machine ARN, the other settings it reads) and the process variables every worker needs. As in
    AWS, where each function's environment is exactly its spec's (`infra.constructs.function`)."""
    own = set(spec.env_vars)
    return {
        name: value
        for name, value in env.items()
        if name in own or name in _PROCESS_VARIABLES or name.startswith(_PROCESS_PREFIXES)
    }


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
    """One worker process (`local.lambda_worker`): an execution environment, one invocation at a time.

    The constructor spawns the process; `wait_ready` waits for its cold start (the handler's import).
    """

    def __init__(self, function: LambdaFunction, env: Mapping[str, str]) -> None:
        assert isinstance(function.handler, str)
        self.function = function
        self.ready = False
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

    @property
    def pid(self) -> int:
        return self._process.pid

    def wait_ready(self) -> None:
        message = self._receive(timeout=120.0)
        if "ready" not in message:
            self.kill()
            error = message.get("error", {})
            raise LambdaError(
                error.get("type", "Runtime.InitError"),
                f"{self.function.name}: init failed: {error.get('message')}",
                error.get("stack", ""),
            )
        self.ready = True

    def watch(self, on_exit: Callable[[_Environment], None]) -> None:
        """Call `on_exit(self)` from a daemon thread as soon as the process exits, however it does."""

        def wait() -> None:
            # Popen.wait reaps the process the moment it exits; meanwhile `poll()` elsewhere answers None
            # (Popen lets one thread wait at a time), which `alive` reads as "still running": it is.
            self._process.wait()
            on_exit(self)

        threading.Thread(target=wait, name=f"{self.function.name}-{self.pid}-watch", daemon=True).start()

    def _receive(self, timeout: float) -> dict[str, Any]:
        try:
            self._socket.settimeout(timeout)
            line = self._channel.readline()
        except TimeoutError:
            self.kill()
            raise LambdaTimeout(self.function.name, timeout) from None
        except (OSError, ValueError) as exc:
            # ValueError: the watcher saw the process die and closed the channel under this read.
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
    """Invokes a function in worker processes: keeps `concurrency` of them, replacing those that die.

    `_all` holds every environment that counts toward `concurrency` (starting, idle or busy) and `_pending`
    the slots reserved for environments about to be spawned; both change under `_lock`, and nothing is
    added once `_closed` is set under it, so `close()` sees (and stops) every environment there will be.
    """

    def __init__(self, function: LambdaFunction, env: Mapping[str, str], concurrency: int = 1) -> None:
        self.function = function
        self._env = dict(env)
        self._concurrency = max(1, concurrency)
        self._idle: queue.LifoQueue[_Environment] = queue.LifoQueue()
        self._all: list[_Environment] = []
        self._pending = 0
        self._lock = threading.Lock()
        self._closed = False

    def load(self) -> ProcessInvoker:
        """Start every environment now (in parallel), so a broken handler fails the start-up and the first
        requests do not pay cold starts."""
        with self._lock:
            slots = sum(1 for _ in range(self._concurrency) if self._reserve())
        with ThreadPoolExecutor(max(1, slots)) as pool:
            for environment in pool.map(lambda _: self._start(), range(slots)):
                self._idle.put(environment)
        return self

    def live_count(self) -> int:
        """How many environments are started and alive (idle or busy)."""
        return len(self.pids())

    def pids(self) -> list[int]:
        """The process ids of the environments that are started and alive."""
        with self._lock:
            environments = list(self._all)
        return sorted(e.pid for e in environments if e.ready and e.alive)

    def _reserve(self) -> bool:
        """Reserve a slot for a new environment if the pool has room; the caller holds `_lock`."""
        if self._closed or len(self._all) + self._pending >= self._concurrency:
            return False
        self._pending += 1
        return True

    def _start(self) -> _Environment:
        """Start an environment in a slot `_reserve` gave (the slot is used or given back either way)."""
        try:
            environment = _Environment(self.function, self._env)
        except BaseException:
            with self._lock:
                self._pending -= 1
            raise
        with self._lock:
            self._pending -= 1
            closing = self._closed
            if not closing:
                self._all.append(environment)
        if closing:
            environment.kill()
            raise LambdaError("Runtime.Stopped", f"{self.function.name}: the runtime is stopping")
        try:
            environment.wait_ready()
        except BaseException:
            # Not replaced: a handler that cannot start would be restarted for ever. The next invocation
            # that finds no environment starts one itself and reports the error.
            self._discard(environment, replace=False)
            raise
        environment.watch(self._on_exit)
        return environment

    def _on_exit(self, environment: _Environment) -> None:
        self._discard(environment, replace=True)

    def _discard(self, environment: _Environment, *, replace: bool) -> None:
        """Forget a dead (or failed) environment; with `replace`, bring the pool back to `concurrency`.

        Idempotent: the watcher, the invocation that hit the death and `_acquire` may all get here.
        """
        environment.kill()  # reaps it if needed and closes our end of the channel
        with self._lock:
            if environment in self._all:
                self._all.remove(environment)
            slots = 0
            if replace:
                while self._reserve():
                    slots += 1
        for _ in range(slots):
            threading.Thread(target=self._replace, name=f"{self.function.name}-replace", daemon=True).start()

    def _replace(self) -> None:
        try:
            environment = self._start()
        except Exception as exc:
            if not self._closed:
                log.warning("%s: could not replace a dead environment: %s", self.function.name, exc)
            return
        self._idle.put(environment)

    def _acquire(self) -> _Environment:
        while True:
            if self._closed:
                raise LambdaError("Runtime.Stopped", f"{self.function.name}: the runtime is stopping")
            try:
                environment = self._idle.get_nowait()
            except queue.Empty:
                with self._lock:
                    can_grow = self._reserve()
                if can_grow:
                    return self._start()  # a cold start, as Lambda's when every environment is busy
                try:
                    environment = self._idle.get(timeout=_IDLE_WAIT_SECONDS)
                except queue.Empty:
                    continue
            if environment.alive:
                return environment
            # It died while idle (the watcher may not have run yet): never hand it out.
            self._discard(environment, replace=True)

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
                self._discard(environment, replace=True)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            environments, self._all = self._all, []
        for environment in environments:
            if environment.ready:
                environment.close()
            else:
                # Still starting (a replacement or a cold start): its starter thread is reading the channel,
                # and closing a file another thread reads waits for that read; killing the process ends it.
                environment.kill()
        # Dead environments the watchers took out of `_all` may still sit in the queue, holding sockets.
        while True:
            try:
                self._idle.get_nowait().kill()
            except queue.Empty:
                break


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
