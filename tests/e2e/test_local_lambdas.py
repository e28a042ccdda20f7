"""Functions in worker processes: JSON in and out, errors, timeouts, a replaced environment."""

from __future__ import annotations

import os

import pytest

from local.lambdas import LambdaError, LambdaFunction, LambdaTimeout, ProcessInvoker

pytestmark = pytest.mark.e2e

HANDLERS = "tests.e2e.worker_handlers"


def an_invoker(handler: str, timeout: int = 10) -> ProcessInvoker:
    env = {**os.environ, "MARK": "from-the-runtime"}
    return ProcessInvoker(LambdaFunction("fn-under-test", f"{HANDLERS}:{handler}", timeout), env).load()


def test_a_worker_runs_the_handler_in_its_own_process_with_the_given_environment() -> None:
    invoker = an_invoker("echo")
    try:
        result = invoker({"a": [1, 2]})
    finally:
        invoker.close()

    assert result["event"] == {"a": [1, 2]}
    assert result["function"] == "fn-under-test"
    assert result["env"] == "from-the-runtime"
    assert result["pid"] != os.getpid()


def test_an_error_keeps_its_message_so_unauthorized_is_recognised() -> None:
    invoker = an_invoker("unauthorized")
    try:
        with pytest.raises(LambdaError) as caught:
            invoker({})
    finally:
        invoker.close()

    assert str(caught.value) == "Unauthorized"
    assert "Traceback" in caught.value.stack


def test_a_call_past_the_timeout_kills_the_environment_and_the_next_call_gets_a_fresh_one() -> None:
    invoker = an_invoker("slow", timeout=1)
    try:
        with pytest.raises(LambdaTimeout):
            invoker({"seconds": 5})
        assert invoker({"seconds": 0}) == "done"
    finally:
        invoker.close()


def test_a_handler_that_cannot_be_imported_fails_at_load() -> None:
    with pytest.raises(LambdaError, match="init failed"):
        ProcessInvoker(LambdaFunction("broken", "no_such_module_here:handler"), dict(os.environ)).load()
