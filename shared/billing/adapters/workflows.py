"""Starting Step Functions executions: one per billing run, named by the run id."""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from billing.adapters.aws_errors import error_code
from billing.domain.errors import TransientFailure


class StepFunctionsStarter:
    def __init__(self, state_machine_arn: str | None, client: Any = None) -> None:
        self._arn = state_machine_arn
        self._client = client or boto3.client("stepfunctions")

    def start(self, run_id: str, payload: dict[str, Any]) -> None:
        """Start the run's execution; the name makes a repeated start of the same run a no-op."""
        if not self._arn:
            raise TransientFailure("billing runs are not configured here (no state machine ARN)")
        try:
            self._client.start_execution(stateMachineArn=self._arn, name=run_id, input=json.dumps(payload))
        except ClientError as exc:
            if error_code(exc) == "ExecutionAlreadyExists":
                return
            raise TransientFailure(f"could not start the billing run: {error_code(exc)}") from exc
        except BotoCoreError as exc:
            raise TransientFailure(f"could not start the billing run: {type(exc).__name__}") from exc

    def status(self, run_id: str) -> str | None:
        """The execution's status (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED), None if unknown."""
        if not self._arn:
            return None
        execution_arn = self._arn.replace(":stateMachine:", ":execution:", 1) + f":{run_id}"
        try:
            return str(self._client.describe_execution(executionArn=execution_arn)["status"])
        except (ClientError, BotoCoreError):
            return None  # unknown is not failed: the run record stays as it is
