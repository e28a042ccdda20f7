"""The cycle-close state machine: list due subscriptions, close each (rate → tax → finalize), summarize.

One definition, two users: the CDK app deploys it with the real function ARN, the local runtime hands it
to moto with the local one. Every task calls the cycle-close function with `{"step": ...}`; every step is
idempotent (deterministic ids, conditional writes), so Step Functions' retries and a re-run of the whole
machine can never bill twice. One failing subscription is caught inside the Map and reported in the
summary; it never blocks the others.
"""

from __future__ import annotations

from typing import Any

# Errors worth retrying: Lambda's own transient faults and the functions' TransientFailure.
TRANSIENT_ERRORS = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.Unknown",
    "TransientFailure",
]

DEFAULT_MAX_CONCURRENCY = 10
RUN_TIMEOUT_SECONDS = 6 * 3600
# Distributed Map runs each subscription as a child execution: no 256 KiB state limit on the item list,
# up to thousands of subscriptions in parallel, each with its own execution history.
MAP_MODE = "DISTRIBUTED"


def _retry(interval_seconds: int, max_attempts: int = 6) -> list[dict[str, Any]]:
    return [
        {
            "ErrorEquals": TRANSIENT_ERRORS,
            "IntervalSeconds": interval_seconds,
            "MaxAttempts": max_attempts,
            "BackoffRate": 2.0,
            "MaxDelaySeconds": 60,
            "JitterStrategy": "FULL",
        }
    ]


def _step(
    function_arn: str, step: str, parameters: dict[str, Any], next_state: str | None, retry_seconds: int
) -> dict[str, Any]:
    state: dict[str, Any] = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": function_arn, "Payload": {"step": step, **parameters}},
        "OutputPath": "$.Payload",
        "Retry": _retry(retry_seconds),
    }
    if next_state is None:
        state["End"] = True
    else:
        state["Next"] = next_state
    return state


def _item_step(function_arn: str, step: str, next_state: str | None, retry_seconds: int) -> dict[str, Any]:
    state = _step(function_arn, step, {"run.$": "$.run", "item.$": "$.item"}, next_state, retry_seconds)
    state["Catch"] = [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "SubscriptionFailed"}]
    return state


def cycle_close_definition(
    function_arn: str,
    *,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    map_mode: str = MAP_MODE,
    retry_seconds: int = 2,
) -> dict[str, Any]:
    """The ASL document. `retry_seconds` is the first retry interval (doubling, full jitter)."""
    processor: dict[str, Any] = {"Mode": map_mode}
    if map_mode == "DISTRIBUTED":
        processor["ExecutionType"] = "STANDARD"
    return {
        "Comment": "Close every billing period that has ended (plus the grace window): rate, tax, finalize.",
        "StartAt": "ListDueSubscriptions",
        # A run that has not finished in six hours is stuck: fail it (and alarm) rather than wait a year.
        "TimeoutSeconds": RUN_TIMEOUT_SECONDS,
        "States": {
            "ListDueSubscriptions": {
                **_step(function_arn, "list_due", {"input.$": "$"}, "CloseEachSubscription", retry_seconds),
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RunFailed"}],
            },
            "CloseEachSubscription": {
                "Type": "Map",
                "ItemsPath": "$.items",
                "ItemSelector": {"run.$": "$.run", "item.$": "$$.Map.Item.Value"},
                "MaxConcurrency": max_concurrency,
                "ItemProcessor": {
                    "ProcessorConfig": processor,
                    "StartAt": "RateUsage",
                    "States": {
                        "RateUsage": _item_step(function_arn, "rate", "ComputeTax", retry_seconds),
                        "ComputeTax": _item_step(function_arn, "tax", "FinalizeInvoice", retry_seconds),
                        "FinalizeInvoice": _item_step(
                            function_arn, "finalize", "MorePeriodsDue", retry_seconds
                        ),
                        # A subscription with several ended periods closes them in order, one by one.
                        "MorePeriodsDue": {
                            "Type": "Choice",
                            "Choices": [
                                {
                                    "And": [
                                        {"Variable": "$.item", "IsPresent": True},
                                        {"Variable": "$.item", "IsNull": False},
                                    ],
                                    "Next": "RateUsage",
                                }
                            ],
                            "Default": "SubscriptionClosed",
                        },
                        "SubscriptionClosed": {"Type": "Succeed"},
                        "SubscriptionFailed": {
                            "Type": "Pass",
                            "Parameters": {
                                "status": "failed",
                                "item.$": "$.item",
                                "invoices.$": "$.item.invoices",
                                "error.$": "$.error.Error",
                                "cause.$": "$.error.Cause",
                            },
                            "End": True,
                        },
                    },
                },
                "ResultPath": "$.results",
                "Next": "SummarizeRun",
                # The Map itself failing (its results over the state limit, say) still ends the run recorded.
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RunFailed"}],
            },
            "SummarizeRun": _step(
                function_arn, "summarize", {"run.$": "$.run", "results.$": "$.results"}, None, retry_seconds
            ),
            "RunFailed": _step(function_arn, "run_failed", {"input.$": "$"}, "Failed", retry_seconds),
            "Failed": {
                "Type": "Fail",
                "Error": "BillingRunFailed",
                "Cause": "listing due subscriptions failed",
            },
        },
    }
