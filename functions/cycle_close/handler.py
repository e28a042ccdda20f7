"""The cycle-close function: every task of the cycle-close state machine, dispatched by `step`.

Thin: it routes the state machine's payload to the service's step. A TransientFailure is raised under
that name so the state machine's Retry catches it; anything else fails the item (its Catch) or the run.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from billing.bootstrap import get_services
from billing.domain.errors import TransientFailure as DomainTransientFailure
from billing.runtime import logger, metrics, tracer


class TransientFailure(Exception):
    """The error name the state machine retries (Lambda reports the exception's class name)."""


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    step = event.get("step")
    service = get_services().cycle_close
    logger.append_keys(step=step, run_id=(event.get("run") or {}).get("id"))
    try:
        if step == "list_due":
            return service.list_due(event.get("input") or {})
        if step == "rate":
            return service.rate(event["run"], event["item"])
        if step == "tax":
            return service.tax(event["run"], event["item"])
        if step == "finalize":
            return service.finalize(event["run"], event["item"])
        if step == "summarize":
            return service.summarize(event["run"], event.get("results") or [])
        if step == "run_failed":
            return service.run_failed(event)
    except DomainTransientFailure as exc:
        raise TransientFailure(exc.message) from exc
    raise ValueError(f"unknown cycle-close step {step!r}")
