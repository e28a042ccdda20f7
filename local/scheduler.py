"""EventBridge Scheduler, played locally: a thread that starts the cycle-close state machine on a timer.

In AWS the schedule (`CYCLE_CLOSE_SCHEDULE`, `rate(1 hour)`) starts an execution with
`{"source": "schedule", "as_of": <scheduled time>}`. Here a thread does the same every `interval_seconds`,
the first time one interval after start (as a rate schedule created now would). Executions are named by
the run id the cycle-close function derives from `as_of` (`scheduled_run_id`), so a name that already
exists means this run was already started: it is skipped, never started twice.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from billing.services.cycle_close import scheduled_run_id

log = logging.getLogger("billing.local.scheduler")


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class CycleCloseScheduler:
    def __init__(
        self,
        sfn_client: Any,
        state_machine_arn: str,
        interval_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if interval_seconds <= 0:
            raise ValueError("interval_seconds must be positive (0 means: no scheduler at all)")
        self._sfn = sfn_client
        self._arn = state_machine_arn
        self._interval = interval_seconds
        self._clock = clock
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.started: list[str] = []  # execution names this scheduler started
        self.skipped: list[str] = []  # names that already existed

    def start(self) -> CycleCloseScheduler:
        self._thread = threading.Thread(target=self._run, name="cycle-close-scheduler", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self.fire()
            except Exception:  # keep the schedule alive whatever one start did
                log.exception("scheduled billing run could not be started")

    def fire(self) -> str | None:
        """Start one scheduled run now: its execution name, or None if that run already exists."""
        now = self._clock()
        name = scheduled_run_id(now)
        payload = {"source": "schedule", "as_of": rfc3339(now)}
        try:
            self._sfn.start_execution(stateMachineArn=self._arn, name=name, input=json.dumps(payload))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ExecutionAlreadyExists":
                log.info("scheduled billing run %s already started: skipped", name)
                self.skipped.append(name)
                return None
            log.warning("scheduled billing run %s not started: %s", name, exc)
            return None
        except BotoCoreError as exc:
            log.warning("scheduled billing run %s not started: %s", name, exc)
            return None
        log.info("scheduled billing run %s started", name)
        self.started.append(name)
        return name

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
