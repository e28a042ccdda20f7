"""The worker pool of a function: dead environments are never handed out and are replaced."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from local.lambdas import LambdaError, LambdaFunction, ProcessInvoker

pytestmark = pytest.mark.e2e

POOL = "tests.e2e.worker_handlers_pool"
HANDLERS = "tests.e2e.worker_handlers"
DEADLINE_SECONDS = 10.0


def eventually(condition: Callable[[], bool], what: str, seconds: float = DEADLINE_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds} s: {what}")
        time.sleep(0.02)


def worker_processes(function_name: str) -> set[int]:
    """This process's children that are workers of `function_name` (zombies included, as they are leaks)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone meanwhile
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == os.getpid() and b"local.lambda_worker" in argv and function_name.encode() in argv:
            found.add(int(entry.name))
    return found


@pytest.fixture
def invokers() -> Iterator[Callable[..., ProcessInvoker]]:
    started: list[ProcessInvoker] = []

    def start(name: str, handler: str, *, concurrency: int, timeout: int = 10) -> ProcessInvoker:
        invoker = ProcessInvoker(LambdaFunction(name, handler, timeout), dict(os.environ), concurrency)
        started.append(invoker)
        return invoker.load()

    yield start
    for invoker in started:
        invoker.close()


def test_an_environment_killed_while_idle_is_skipped_by_the_next_invocation_and_replaced(
    invokers: Callable[..., ProcessInvoker],
) -> None:
    invoker = invokers("pool-idle-kill", f"{POOL}:pid", concurrency=2)
    before = invoker.pids()
    victim = invoker({})  # now the first environment the next invocation is offered (the idle pool is LIFO)

    os.kill(victim, signal.SIGKILL)
    eventually(lambda: victim not in invoker.pids(), "the killed worker is seen dead")
    served_by = invoker({})

    assert served_by != victim
    eventually(lambda: invoker.live_count() == 2, "the pool is back to 2 workers")
    after = invoker.pids()
    assert victim not in after
    assert len(set(after) - set(before)) == 1


def test_the_pool_grows_back_to_its_concurrency_without_traffic_when_half_of_it_is_killed(
    invokers: Callable[..., ProcessInvoker],
) -> None:
    invoker = invokers("pool-half-killed", f"{POOL}:pid", concurrency=4)
    before = invoker.pids()
    assert len(before) == 4

    for pid in before[:2]:
        os.kill(pid, signal.SIGKILL)

    eventually(lambda: invoker.live_count() == 4 and not set(before[:2]) & set(invoker.pids()), "4 workers")
    assert set(before[2:]) <= set(invoker.pids())
    assert {invoker({}) for _ in range(8)} <= set(invoker.pids())


def test_an_invocation_whose_worker_crashes_fails_and_the_pool_comes_back(
    invokers: Callable[..., ProcessInvoker],
) -> None:
    invoker = invokers("pool-crash", f"{POOL}:crash", concurrency=2)
    before = invoker.pids()

    with pytest.raises(LambdaError) as caught:
        invoker({})

    assert caught.value.error_type == "Runtime.ExitError"
    eventually(lambda: invoker.live_count() == 2, "the pool is back to 2 workers")
    assert len(set(invoker.pids()) - set(before)) == 1


def test_an_invocation_whose_worker_is_killed_mid_call_fails_and_the_pool_comes_back(
    invokers: Callable[..., ProcessInvoker],
) -> None:
    invoker = invokers("pool-mid-call", f"{HANDLERS}:slow", concurrency=1)
    [busy] = invoker.pids()
    outcome: list[BaseException | str] = []

    def call() -> None:
        try:
            outcome.append(invoker({"seconds": 20}))
        except LambdaError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.3)  # the event is in the worker
    os.kill(busy, signal.SIGKILL)
    caller.join(DEADLINE_SECONDS)

    assert not caller.is_alive()
    assert isinstance(outcome[0], LambdaError)
    assert outcome[0].error_type == "Runtime.ExitError"
    eventually(lambda: invoker.live_count() == 1 and invoker.pids() != [busy], "a new worker")
    assert invoker({"seconds": 0}) == "done"


@pytest.mark.parametrize("delay", [0.0, 0.05, 0.3])
def test_closing_while_a_replacement_starts_leaves_no_worker_behind(
    invokers: Callable[..., ProcessInvoker], delay: float
) -> None:
    name = f"pool-close-race-{delay}"
    invoker = invokers(name, f"{POOL}:pid", concurrency=2)
    os.kill(invoker.pids()[0], signal.SIGKILL)
    time.sleep(delay)  # before the death is seen, while the replacement spawns, while it imports

    invoker.close()

    eventually(lambda: not worker_processes(name), "every worker of the closed invoker is gone")
    with pytest.raises(LambdaError, match="stopping"):
        invoker({})
