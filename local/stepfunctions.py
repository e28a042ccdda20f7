"""Step Functions, played locally: moto executes the state machine; its Lambda tasks call our functions.

moto runs Amazon States Language itself when `stepfunctions.execute_state_machine` is on. For a Lambda
task it invokes a moto Lambda function, which would need Docker; instead, `LambdaRouter` replaces moto's
`LambdaFunction._invoke_lambda` so the invocation goes to the function's local invoker (a worker process
or an in-process callable) by function name. The functions are registered in moto with a placeholder
package only so that their ARNs exist; their code is never run by moto.

In server mode (`ThreadedMotoServer`, the local runtime) the interpreter runs in the server's process, so
the patch applies there too, but it calls Lambda through a boto3 client aimed at
`http://localhost:$MOTO_PORT` (moto's own convention): `moto_server_environment` gives the variable that
makes it reach this server. Distributed Map child executions run inside the interpreter (threads), with
no further calls out.
"""

from __future__ import annotations

import io
import json
import threading
import traceback
import zipfile
from collections.abc import Callable, Mapping
from typing import Any

from moto.awslambda.models import LambdaFunction as MotoLambdaFunction
from moto.core.config import default_user_config

from local.lambdas import LambdaError

Invoke = Callable[[Any], Any]

_PLACEHOLDER_ROLE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)


def _placeholder_package() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("placeholder.py", "# routed to the local runtime's invoker; never run by moto\n")
    return buffer.getvalue()


class LambdaRouter:
    """Routes moto's Lambda invocations to local invokers, by function name. Install once per process."""

    _lock = threading.Lock()
    _routes: dict[str, Invoke] = {}
    _original: Any = None
    _executed_before: bool | None = None

    @classmethod
    def install(cls, routes: Mapping[str, Invoke]) -> None:
        """Route these functions. Install before creating state machines: moto keeps the machines of its
        executing backend apart from those of the plain one, and picks the backend by this setting."""
        with cls._lock:
            cls._routes.update(routes)
            if cls._original is None:
                cls._original = MotoLambdaFunction._invoke_lambda
                MotoLambdaFunction._invoke_lambda = _routed_invoke  # type: ignore[method-assign]
                cls._executed_before = bool(default_user_config["stepfunctions"]["execute_state_machine"])
            # moto executes ASL only when asked to; the server reads this process-wide setting.
            default_user_config["stepfunctions"]["execute_state_machine"] = True

    @classmethod
    def uninstall(cls, names: Mapping[str, Any] | None = None) -> None:
        """Drop these routes (all if None); the last one out restores moto as it was."""
        with cls._lock:
            for name in list(cls._routes if names is None else names):
                cls._routes.pop(name, None)
            if not cls._routes and cls._original is not None:
                MotoLambdaFunction._invoke_lambda = cls._original  # type: ignore[method-assign]
                cls._original = None
                if cls._executed_before is not None:
                    default_user_config["stepfunctions"]["execute_state_machine"] = cls._executed_before
                    cls._executed_before = None

    @classmethod
    def route(cls, function_name: str) -> Invoke | None:
        with cls._lock:
            return cls._routes.get(function_name)


def _routed_invoke(self: MotoLambdaFunction, event: Any = None) -> tuple[str, bool, str]:
    """moto's hook: returns (result JSON, errored, logs) as its own Docker invocation would."""
    invoke = LambdaRouter.route(self.function_name)
    if invoke is None:
        error = {"errorType": "ResourceNotFound", "errorMessage": f"no local route for {self.function_name}"}
        return json.dumps(error), True, ""
    payload = event if not isinstance(event, str | bytes) else json.loads(event or "{}")
    try:
        result = invoke(payload)
    except LambdaError as exc:
        return json.dumps({"errorType": exc.error_type, "errorMessage": str(exc)}), True, exc.stack
    except Exception as exc:  # an in-process handler raised: report it as Lambda would
        error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
        return json.dumps(error), True, traceback.format_exc()
    return json.dumps(result), False, ""


def placeholder_role(iam_client: Any, name: str) -> str:
    """An IAM role in moto (Lambda and Step Functions may assume it; moto enforces nothing): its ARN."""
    try:
        return str(
            iam_client.create_role(RoleName=name, AssumeRolePolicyDocument=_PLACEHOLDER_ROLE_POLICY)["Role"][
                "Arn"
            ]
        )
    except iam_client.exceptions.EntityAlreadyExistsException:
        return str(iam_client.get_role(RoleName=name)["Role"]["Arn"])


def register_functions(lambda_client: Any, iam_client: Any, names: list[str]) -> dict[str, str]:
    """Create each function in moto (placeholder code) so state machines can name it; {name: ARN}."""
    role = placeholder_role(iam_client, "billing-local-functions")
    arns: dict[str, str] = {}
    for name in names:
        try:
            arns[name] = lambda_client.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
        except lambda_client.exceptions.ResourceNotFoundException:
            arns[name] = lambda_client.create_function(
                FunctionName=name,
                Runtime="python3.13",
                Role=role,
                Handler="placeholder.handler",
                Code={"ZipFile": _placeholder_package()},
                Timeout=900,
            )["FunctionArn"]
    return arns


def put_state_machine(sfn_client: Any, name: str, definition: dict[str, Any], role_arn: str) -> str:
    """Create the state machine (or give an existing one of that name this definition): its ARN.

    Call after `LambdaRouter.install`, so that it lands in moto's executing backend.
    """
    document = json.dumps(definition)
    for page in sfn_client.get_paginator("list_state_machines").paginate():
        for machine in page["stateMachines"]:
            if machine["name"] == name:
                arn = str(machine["stateMachineArn"])
                sfn_client.update_state_machine(stateMachineArn=arn, definition=document, roleArn=role_arn)
                return arn
    return str(
        sfn_client.create_state_machine(name=name, definition=document, roleArn=role_arn)["stateMachineArn"]
    )


def moto_server_environment(port: int) -> dict[str, str]:
    """What this process needs in `os.environ` for moto's interpreter to call the server on `port`."""
    return {"MOTO_PORT": str(port)}
