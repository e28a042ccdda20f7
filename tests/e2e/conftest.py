"""The local runtime as a real subprocess (`python -m local.runtime --port 0 --moto-port 0`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
READY_PREFIX = "READY "
START_TIMEOUT_SECONDS = 60

# A fixed admin key (BILLING_LOCAL_ADMIN_KEY): 32+ characters of [A-Za-z0-9_-].
FIXED_ADMIN_KEY = "e2e_admin_key_0123456789abcdefghijklmnop"


@dataclass
class RuntimeProcess:
    process: subprocess.Popen[bytes]
    info: dict[str, Any]
    stdout_path: Path
    stderr_path: Path

    @property
    def api_url(self) -> str:
        return str(self.info["api_url"])

    @property
    def endpoint_url(self) -> str:
        return str(self.info["endpoint_url"])

    @property
    def aws_env(self) -> dict[str, str]:
        """The variables that point a client (boto3, billing-admin) at the runtime's moto."""
        return {**os.environ, **self.info["env"]}

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


def start_runtime(
    workdir: Path, *, env: Mapping[str, str] | None = None, args: Sequence[str] = ()
) -> RuntimeProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = workdir / "stdout.log", workdir / "stderr.log"
    process_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    # Lean pools (fewer worker processes to start on CI's two cores); a test's own args come last and win.
    lean = ["--api-concurrency", "2", "--sender-concurrency", "1", "--cycle-close-concurrency", "1"]
    command = [sys.executable, "-m", "local.runtime", "--port", "0", "--moto-port", "0", *lean, *args]
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        process = subprocess.Popen(command, cwd=REPO, env=process_env, stdout=out, stderr=err)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        for line in stdout_path.read_text(errors="replace").splitlines():
            if line.startswith(READY_PREFIX):
                info = json.loads(line[len(READY_PREFIX) :])
                return RuntimeProcess(process, info, stdout_path, stderr_path)
        if process.poll() is not None:
            break
        time.sleep(0.05)
    if process.poll() is None:
        process.kill()
        process.wait()
    output = stdout_path.read_text(errors="replace") + stderr_path.read_text(errors="replace")
    pytest.fail(f"billing-local did not print READY (exit code {process.returncode}):\n{output}")


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeProcess]:
    """One runtime per test module, with a fixed admin key and a 1 s retry delay."""
    running = start_runtime(
        tmp_path_factory.mktemp("billing-local"),
        env={"BILLING_LOCAL_ADMIN_KEY": FIXED_ADMIN_KEY},
        args=["--retry-delay", "1"],
    )
    yield running
    code = running.stop()
    assert code == 0, running.output()
