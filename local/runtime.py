"""`billing-local`: the whole system on one machine, moto standing in for AWS.

Starts moto in server mode, creates every table, queue and key from `billing.resources`, creates a default
tenant with an admin and an ingest key, serves the HTTP API (API Gateway played by `local.apigw`), runs
the pumps that play the event source mappings (the ingest queue → consumer and the webhook queue → sender,
`local.pump`; the billing table's stream, filtered to outbox events → dispatcher, `local.stream_pump`),
creates the cycle-close state machine in moto (its Lambda tasks routed to the local cycle-close function,
`local.stepfunctions`) and starts it on a timer as EventBridge Scheduler does (`local.scheduler`).

The six functions are built from their specs in `billing.resources` (the ones the CDK app deploys), and
each one's worker processes get only its spec's environment (`local.lambdas.function_environment`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import boto3

from billing import resources
from billing.adapters.provisioning import create_all
from billing.resources import FunctionSpec
from billing.workflows.cycle_close import cycle_close_definition
from local.apigw import AuthorizerCache, LocalApiGateway, TenantThrottle
from local.http_api import LocalHttpApi
from local.lambdas import (
    Handler,
    Invoker,
    LambdaFunction,
    ProcessInvoker,
    function_environment,
    make_invoker,
)
from local.moto_server import REGION, LocalMoto, aws_environment, forget_shard_iterator
from local.pump import SqsPump
from local.scheduler import CycleCloseScheduler
from local.stepfunctions import (
    LambdaRouter,
    moto_server_environment,
    placeholder_role,
    put_state_machine,
    register_functions,
)
from local.stream_pump import StreamPump

log = logging.getLogger("billing.local")

ADMIN_KEY_ENV = "BILLING_LOCAL_ADMIN_KEY"
INGEST_KEY_ENV = "BILLING_LOCAL_INGEST_KEY"
READY_PREFIX = "READY "

# Defaults for the functions' environment; anything already set in the environment wins.
FUNCTION_ENV_DEFAULTS = {
    "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here
    "POWERTOOLS_METRICS_DISABLED": "true",  # EMF lines would drown the output; set "false" to see them
    "POWERTOOLS_SERVICE_NAME": "usage-billing",
}

# Local defaults of the billing settings, so that a demo bills at once and shows tax. AWS: a 24 h grace
# window (the settings' default) and no tax registrations unless configured.
DEFAULT_LOCAL_GRACE_SECONDS = 0
DEFAULT_LOCAL_SELLER_REGISTRATIONS = "US-NY,US-WA,US-TX,GB,EU-OSS,DE,CA,CA-ON,AU"
GRACE_ENV = "BILLING_GRACE_SECONDS"
REGISTRATIONS_ENV = "BILLING_SELLER_TAX_REGISTRATIONS"
# Webhooks: plain http to loopback addresses is allowed here (a receiver on 127.0.0.1; never in AWS), and
# the retry schedule is compressed to minutes (nine retries, as the AWS default, which spans three days:
# 5,300,1800,7200,18000,36000,50400,72000,86400).
WEBHOOK_LOOPBACK_ENV = "BILLING_WEBHOOK_ALLOW_LOOPBACK"
WEBHOOK_SCHEDULE_ENV = "BILLING_WEBHOOK_RETRY_SCHEDULE"
DEFAULT_LOCAL_WEBHOOK_ALLOW_LOOPBACK = "true"
DEFAULT_LOCAL_WEBHOOK_RETRY_SCHEDULE = "1,2,4,8,15,30,60,120,300"
# The first retry interval of the cycle-close tasks here (the CDK app deploys the definition's default).
LOCAL_RETRY_SECONDS = 1
CYCLE_CLOSE_ROLE = "billing-local-cycle-close"
DEFAULT_SCHEDULE_INTERVAL_SECONDS = 3600  # resources.CYCLE_CLOSE_SCHEDULE: rate(1 hour)


class StartupError(RuntimeError):
    """The runtime cannot start (port taken, invalid fixed key, ...): a message for the user, no traceback."""


# The runtime's functions by the name it uses for them; everything else about them is in their spec.
FUNCTION_SPECS: dict[str, FunctionSpec] = {
    "api": resources.API_FUNCTION,
    "authorizer": resources.AUTHORIZER_FUNCTION,
    "consumer": resources.INGEST_CONSUMER_FUNCTION,
    "cycle-close": resources.CYCLE_CLOSE_FUNCTION,
    "dispatcher": resources.OUTBOX_DISPATCHER_FUNCTION,
    "sender": resources.WEBHOOK_SENDER_FUNCTION,
}


@dataclass(frozen=True)
class Handlers:
    """Which handler plays each function (tests may pass callables instead of the real modules)."""

    api: str | Handler = resources.API_FUNCTION.local_handler
    authorizer: str | Handler = resources.AUTHORIZER_FUNCTION.local_handler
    consumer: str | Handler = resources.INGEST_CONSUMER_FUNCTION.local_handler
    cycle_close: str | Handler = resources.CYCLE_CLOSE_FUNCTION.local_handler
    dispatcher: str | Handler = resources.OUTBOX_DISPATCHER_FUNCTION.local_handler
    sender: str | Handler = resources.WEBHOOK_SENDER_FUNCTION.local_handler

    def for_function(self, name: str) -> str | Handler:
        """The handler of the function the runtime calls `name` (a key of FUNCTION_SPECS)."""
        return {
            "api": self.api,
            "authorizer": self.authorizer,
            "consumer": self.consumer,
            "cycle-close": self.cycle_close,
            "dispatcher": self.dispatcher,
            "sender": self.sender,
        }[name]


def _check_port_free(host: str, port: int) -> None:
    # moto binds in its own thread and would hang on a taken port instead of failing; ask first.
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc


def _reset_handler_caches(module_names: Sequence[str]) -> None:
    """A cold start: drop what handler modules cached (composition roots built against an older endpoint)."""
    from billing.settings import get_settings

    get_settings.cache_clear()
    for name in module_names:
        module = sys.modules.get(name)
        if module is None:
            continue
        for value in list(vars(module).values()):
            clear = getattr(value, "cache_clear", None)
            if callable(value) and callable(clear):
                clear()


def _log_function_error(where: str, exc: BaseException) -> None:
    stack = getattr(exc, "stack", "")
    if stack:
        log.error("the %s function failed: %s\n%s", where, exc, stack)
    else:
        log.error("the %s function failed", where, exc_info=exc)


class LocalRuntime:
    """The local runtime as a Python object: `start()`, use `.api_url` / `.endpoint_url` / keys, `stop()`.

    It sets process environment variables (AWS endpoint, fake credentials, table and queue names, the
    functions' settings) and `stop()` restores what was there before; run one at a time per process. Each
    function's worker processes get only their spec's share of that environment (`environment_for`);
    in-process functions (`in_process=True`, or callables as handlers) run here and see all of it.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        moto_port: int = 4566,
        tenant_id: str = "default",
        tenant_name: str = "Local default tenant",
        admin_key: str | None = None,
        ingest_key: str | None = None,
        retry_delay_seconds: int = 2,
        authorizer_cache_seconds: float = 60.0,
        throttle: resources.ThrottleSpec = resources.DEFAULT_TENANT_THROTTLE,
        poll_wait_seconds: int = 1,
        handlers: Handlers | None = None,
        log_level: str | None = None,
        in_process: bool = False,
        api_concurrency: int = 4,
        cycle_close_concurrency: int = 2,
        timeout_scale: float = 5.0,
        grace_seconds: int | None = None,
        seller_registrations: str | None = None,
        schedule_interval_seconds: float = DEFAULT_SCHEDULE_INTERVAL_SECONDS,
        sender_concurrency: int = 4,
        webhook_retry_schedule: str | None = None,
        webhook_allow_loopback: bool | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.moto_port = moto_port
        self.tenant_id = tenant_id
        self.tenant_name = tenant_name
        self._fixed_admin_key = (
            admin_key if admin_key is not None else (os.environ.get(ADMIN_KEY_ENV) or None)
        )
        self._fixed_ingest_key = (
            ingest_key if ingest_key is not None else (os.environ.get(INGEST_KEY_ENV) or None)
        )
        self.retry_delay_seconds = retry_delay_seconds
        self.authorizer_cache_seconds = authorizer_cache_seconds
        self.throttle = throttle
        self.poll_wait_seconds = poll_wait_seconds
        self.handlers = handlers or Handlers()
        self.log_level = log_level
        self.in_process = in_process
        self.api_concurrency = api_concurrency
        self.cycle_close_concurrency = cycle_close_concurrency
        # Explicit values win over the environment; the local defaults apply only to what neither sets.
        self.grace_seconds = grace_seconds
        self.seller_registrations = seller_registrations
        self.schedule_interval_seconds = schedule_interval_seconds
        # The sender's environments, and as many pollers of the webhook queue: a batch may wait 15 s on a
        # slow receiver, and the others go on meanwhile.
        self.sender_concurrency = max(1, sender_concurrency)
        self.webhook_retry_schedule = webhook_retry_schedule
        self.webhook_allow_loopback = webhook_allow_loopback
        # moto answers much slower than DynamoDB and SQS, so a function that fits its AWS timeout could
        # time out here; timeouts are multiplied by this factor (1 = exactly the AWS timeouts).
        self.timeout_scale = timeout_scale
        self._invokers: list[Invoker] = []
        self.admin_key = ""
        self.ingest_key = ""
        self.tenant_created = False
        self.function_env: dict[str, str] = {}
        self._moto: LocalMoto | None = None
        self._http: LocalHttpApi | None = None
        self.pump: SqsPump | None = None
        self.stream_pump: StreamPump | None = None
        self.webhook_pump: SqsPump | None = None
        self.scheduler: CycleCloseScheduler | None = None
        self.state_machine_arn = ""
        self._routes: dict[str, Invoker] = {}
        self._saved_env: dict[str, str | None] = {}
        self._lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> LocalRuntime:
        with self._lock:
            try:
                self._start()
            except BaseException:
                self._stop()
                raise
        return self

    def stop(self) -> None:
        with self._lock:
            self._stop()

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _start(self) -> None:
        _check_port_free(self.host, self.moto_port)
        _check_port_free(self.host, self.port)
        self._moto = LocalMoto(self.host, self.moto_port)
        self._moto.start()
        endpoint = self._moto.endpoint_url
        env = aws_environment(endpoint, REGION)
        self._set_env(env)
        defaults = {k: v for k, v in FUNCTION_ENV_DEFAULTS.items() if k not in os.environ}
        if self.log_level:
            defaults["POWERTOOLS_LOG_LEVEL"] = self.log_level.upper()
        elif "POWERTOOLS_LOG_LEVEL" not in os.environ:
            defaults["POWERTOOLS_LOG_LEVEL"] = "WARNING"
        defaults.update(self._billing_settings_env())
        self._set_env(defaults)
        self._check_webhook_schedule()
        # moto's ASL interpreter calls Lambda at localhost:$MOTO_PORT: this server (see local.stepfunctions).
        self._set_env(moto_server_environment(self._moto.port))
        dynamodb = boto3.client("dynamodb", endpoint_url=endpoint, region_name=REGION)
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
        kms = boto3.client("kms", endpoint_url=endpoint, region_name=REGION)
        resource_env = create_all(dynamodb, sqs, kms)
        self._set_env(resource_env)
        sfn = boto3.client("stepfunctions", endpoint_url=endpoint, region_name=REGION)
        # Before the functions start: the api function's spec gives it the ARN from this environment.
        machine_env = self._create_state_machine(endpoint, sfn)
        self._set_env(machine_env)
        # Every function's resources together, with the AWS variables: what a client of this runtime needs
        # (the READY line, the banner's exports); no single function gets all of it.
        self.function_env = {**env, **resource_env, **machine_env}

        functions = self.build_functions()
        _reset_handler_caches(
            [f.handler.partition(":")[0] for f in functions.values() if isinstance(f.handler, str)]
        )
        self._bootstrap_tenant(dynamodb, resource_env[resources.BILLING_TABLE.env_var])
        concurrency = {
            "api": self.api_concurrency,
            "authorizer": 1,
            "consumer": 1,
            "cycle-close": self.cycle_close_concurrency,
            # One batch at a time per shard (moto's stream has one shard), as Lambda on a stream.
            "dispatcher": 1,
            "sender": self.sender_concurrency,
        }
        # Built now that every variable is set (the state machine ARN last): each gets its spec's share.
        invokers = {
            name: make_invoker(
                function,
                self.environment_for(name),
                concurrency=concurrency[name],
                in_process=self.in_process,
            )
            for name, function in functions.items()
        }
        self._invokers = list(invokers.values())
        # Worker processes cold-start in parallel; in-process handlers import one after the other (threads
        # importing the same packages at once can meet partially initialized modules).
        workers = [invoker for invoker in invokers.values() if isinstance(invoker, ProcessInvoker)]
        for invoker in invokers.values():
            if not isinstance(invoker, ProcessInvoker):
                invoker.load()
        if workers:
            with ThreadPoolExecutor(len(workers)) as pool:
                list(pool.map(lambda invoker: invoker.load(), workers))
        # moto runs executions in this process: its Lambda tasks now reach the cycle-close function.
        self._routes = {resources.CYCLE_CLOSE_FUNCTION.name: invokers["cycle-close"]}
        LambdaRouter.install(self._routes)

        gateway = LocalApiGateway(
            authorizer=invokers["authorizer"],
            api=invokers["api"],
            throttle=TenantThrottle(self.throttle),
            cache=AuthorizerCache(self.authorizer_cache_seconds),
            on_error=_log_function_error,
        )
        self._http = LocalHttpApi(gateway, self.host, self.port)
        self._http.start()
        self.pump = SqsPump(
            sqs,
            queue_url=resource_env[resources.INGEST_QUEUE.env_var],
            consumer=invokers["consumer"],
            batch_size=resources.CONSUMER_BATCH_SIZE,
            retry_delay_seconds=self.retry_delay_seconds,
            wait_seconds=self.poll_wait_seconds,
            region=REGION,
        )
        self.pump.start()
        streams = boto3.client("dynamodbstreams", endpoint_url=endpoint, region_name=REGION)
        self.stream_pump = StreamPump(
            dynamodb,
            streams,
            table_name=resource_env[resources.BILLING_TABLE.env_var],
            function=invokers["dispatcher"],
            function_name=resources.OUTBOX_DISPATCHER_FUNCTION.name,
            filter_pattern=resources.OUTBOX_STREAM_FILTER,
            batch_size=resources.OUTBOX_BATCH_SIZE,
            retry_attempts=resources.OUTBOX_RETRY_ATTEMPTS,
            retry_delay_seconds=self.retry_delay_seconds,
            sqs=sqs,
            on_failure_queue_url=resource_env[resources.OUTBOX_FAILURES_QUEUE.env_var],
            region=REGION,
            forget_iterator=forget_shard_iterator,
        ).start()
        self.webhook_pump = SqsPump(
            sqs,
            queue_url=resource_env[resources.WEBHOOK_QUEUE.env_var],
            consumer=invokers["sender"],
            batch_size=resources.SENDER_BATCH_SIZE,
            retry_delay_seconds=self.retry_delay_seconds,
            wait_seconds=self.poll_wait_seconds,
            region=REGION,
            name="webhooks",
            pollers=self.sender_concurrency,
        )
        self.webhook_pump.start()
        if self.schedule_interval_seconds > 0:
            self.scheduler = CycleCloseScheduler(
                sfn, self.state_machine_arn, self.schedule_interval_seconds
            ).start()

    def build_functions(self) -> dict[str, LambdaFunction]:
        """The functions of FUNCTION_SPECS, with this runtime's handlers and timeout scale."""
        return {
            name: LambdaFunction.from_spec(
                spec, handler=self.handlers.for_function(name), timeout_scale=self.timeout_scale
            )
            for name, spec in FUNCTION_SPECS.items()
        }

    def environment_for(self, name: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
        """What the worker processes of function `name` get: its spec's share of `env` (this process's)."""
        return function_environment(FUNCTION_SPECS[name], os.environ if env is None else env)

    def _billing_settings_env(self) -> dict[str, str]:
        loopback = None if self.webhook_allow_loopback is None else str(self.webhook_allow_loopback).lower()
        values: dict[str, str] = {}
        for env_var, explicit, default in (
            (GRACE_ENV, self.grace_seconds, DEFAULT_LOCAL_GRACE_SECONDS),
            (REGISTRATIONS_ENV, self.seller_registrations, DEFAULT_LOCAL_SELLER_REGISTRATIONS),
            (WEBHOOK_SCHEDULE_ENV, self.webhook_retry_schedule, DEFAULT_LOCAL_WEBHOOK_RETRY_SCHEDULE),
            (WEBHOOK_LOOPBACK_ENV, loopback, DEFAULT_LOCAL_WEBHOOK_ALLOW_LOOPBACK),
        ):
            if explicit is not None:
                values[env_var] = str(explicit)
            elif env_var not in os.environ:
                values[env_var] = str(default)
        return values

    @staticmethod
    def _check_webhook_schedule() -> None:
        """The retry schedule in effect must parse: the sender would otherwise fail at every message."""
        from billing.domain.webhooks.retries import parse_schedule

        try:
            parse_schedule(os.environ.get(WEBHOOK_SCHEDULE_ENV, DEFAULT_LOCAL_WEBHOOK_RETRY_SCHEDULE))
        except ValueError as exc:
            raise StartupError(f"{WEBHOOK_SCHEDULE_ENV}: {exc}") from exc

    def _create_state_machine(self, endpoint: str, sfn: Any) -> dict[str, str]:
        """The cycle-close state machine in moto, from the definition the CDK app deploys; its env var."""
        lambda_client = boto3.client("lambda", endpoint_url=endpoint, region_name=REGION)
        iam = boto3.client("iam", endpoint_url=endpoint, region_name=REGION)
        arns = register_functions(lambda_client, iam, [resources.CYCLE_CLOSE_FUNCTION.name])
        # The router goes in before the machine is created: it switches moto to its executing backend,
        # which keeps its own state machines. Routes are added once the function's invoker exists.
        LambdaRouter.install({})
        definition = cycle_close_definition(
            arns[resources.CYCLE_CLOSE_FUNCTION.name], retry_seconds=LOCAL_RETRY_SECONDS
        )
        self.state_machine_arn = put_state_machine(
            sfn,
            resources.CYCLE_CLOSE_STATE_MACHINE.local_name,
            definition,
            placeholder_role(iam, CYCLE_CLOSE_ROLE),
        )
        return {resources.CYCLE_CLOSE_STATE_MACHINE.env_var: self.state_machine_arn}

    def _bootstrap_tenant(self, dynamodb: Any, billing_table: str) -> None:
        from billing.adapters.tenant_store import DynamoTenantStore
        from billing.domain.tenants import Scope
        from billing.services.tenants import ApiKeyExists, InvalidApiKey, TenantExists, TenantService

        service = TenantService(DynamoTenantStore(billing_table, client=dynamodb))
        try:
            service.create_tenant(self.tenant_id, self.tenant_name)
            self.tenant_created = True
        except TenantExists:
            self.tenant_created = False  # a persistent backend: keep the tenant, issue keys for this session

        def issue(scope: Scope, fixed: str | None, env_var: str) -> str:
            try:
                return service.issue_api_key(self.tenant_id, scope, raw_key=fixed).raw_key
            except InvalidApiKey as exc:
                raise StartupError(f"{env_var}: {exc}") from exc
            except ApiKeyExists as exc:
                # Issued in an earlier session against the same backend: fine if it still authenticates here.
                principal = service.authenticate(fixed or "")
                if principal is None or principal.tenant_id != self.tenant_id or principal.scope is not scope:
                    raise StartupError(
                        f"{env_var}: this key is already issued to another tenant, scope, or was revoked"
                    ) from exc
                assert fixed is not None
                return fixed

        self.admin_key = issue(Scope.ADMIN, self._fixed_admin_key, ADMIN_KEY_ENV)
        self.ingest_key = issue(Scope.INGEST, self._fixed_ingest_key, INGEST_KEY_ENV)

    def _stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None
        if self._http is not None:
            self._http.stop()
            self._http = None
        pumps = [pump for pump in (self.pump, self.stream_pump, self.webhook_pump) if pump is not None]
        # Side by side: each may be in a long poll or a function call; the functions' environments too.
        if pumps:
            with ThreadPoolExecutor(len(pumps)) as pool:
                list(pool.map(lambda pump: pump.stop(), pumps))
        if self._invokers:
            with ThreadPoolExecutor(len(self._invokers)) as pool:
                list(pool.map(lambda invoker: invoker.close(), self._invokers))
        self._invokers = []
        LambdaRouter.uninstall(self._routes)
        self._routes = {}
        if self._moto is not None:
            self._moto.stop()
            self._moto = None
        self._restore_env()

    def _set_env(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self._saved_env.setdefault(name, os.environ.get(name))
            os.environ[name] = value
        if "AWS_PROFILE" in os.environ:
            # A developer's real profile must never be used against moto.
            self._saved_env.setdefault("AWS_PROFILE", os.environ.pop("AWS_PROFILE"))

    def _restore_env(self) -> None:
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env = {}
        from billing.settings import get_settings

        get_settings.cache_clear()

    # -- what callers use ------------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        if self._http is None:
            raise RuntimeError("the runtime is not started")
        return self._http.url

    @property
    def endpoint_url(self) -> str:
        if self._moto is None:
            raise RuntimeError("the runtime is not started")
        return self._moto.endpoint_url

    def wait_idle(self, timeout: float = 30.0, *, webhooks: bool = False) -> bool:
        """Wait until the ingest queue is drained (every message consumed or dead-lettered); with
        `webhooks`, then also until the webhooks are (`wait_webhooks_idle`). False on timeout."""
        if self.pump is None:
            raise RuntimeError("the runtime is not started")
        deadline = time.monotonic() + timeout
        if not self.pump.wait_idle(timeout):
            return False
        return not webhooks or self.wait_webhooks_idle(max(0.0, deadline - time.monotonic()))

    def wait_webhooks_idle(self, timeout: float = 30.0) -> bool:
        """Wait until the outbox stream is read to its end with every outbox event dispatched, and the
        webhook queue holds nothing (no lane kick waiting, in flight, or delayed: a pending retry timer
        counts, so this waits for retries on the schedule to finish too). False on timeout."""
        if self.stream_pump is None or self.webhook_pump is None:
            raise RuntimeError("the runtime is not started")
        deadline = time.monotonic() + timeout
        if not self.stream_pump.wait_idle(timeout):
            return False
        return self.webhook_pump.wait_idle(max(0.0, deadline - time.monotonic()))

    def ready_info(self) -> dict[str, Any]:
        """What the READY line carries (machine-readable)."""
        return {
            "api_url": self.api_url,
            "endpoint_url": self.endpoint_url,
            "region": REGION,
            "tenant_id": self.tenant_id,
            "admin_key": self.admin_key,
            "ingest_key": self.ingest_key,
            "state_machine_arn": self.state_machine_arn,
            "env": dict(self.function_env),
        }


# ---------------------------------------------------------------------------------------------------------
# The command line.


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="billing-local",
        description="Run the billing system on this machine: HTTP API, ingest pump, billing runs, webhooks, "
        "moto as AWS.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address of the HTTP API and moto (default 127.0.0.1)"
    )
    parser.add_argument(
        "--port", type=int, default=8080, help="HTTP API port (default 8080; 0 picks a free one)"
    )
    parser.add_argument(
        "--moto-port", type=int, default=4566, help="moto port (default 4566; 0 picks a free one)"
    )
    parser.add_argument(
        "--tenant-id", default="default", help="the tenant created at start (default 'default')"
    )
    parser.add_argument(
        "--retry-delay",
        type=int,
        default=2,
        help="seconds before a failed ingest or webhook-queue message, or a failed outbox stream batch, "
        "is retried (default 2; AWS waits the queue's visibility timeout, 6 minutes for these queues, "
        "and retries a stream batch at once)",
    )
    parser.add_argument(
        "--authorizer-cache-ttl",
        type=float,
        default=60.0,
        help="seconds an authorizer answer is cached per token, as API Gateway does (default 60; 0 disables)",
    )
    parser.add_argument("--poll-wait", type=int, default=1, help="SQS long-poll wait of the pump, seconds")
    parser.add_argument(
        "--api-concurrency",
        type=int,
        default=4,
        help="most api function environments (worker processes) at once (default 4)",
    )
    parser.add_argument(
        "--cycle-close-concurrency",
        type=int,
        default=2,
        help="most cycle-close function environments (worker processes) at once (default 2)",
    )
    parser.add_argument(
        "--sender-concurrency",
        type=int,
        default=4,
        help="webhook sender function environments, and pollers of the webhook queue (default 4)",
    )
    parser.add_argument(
        "--webhook-retry-schedule",
        default=None,
        help=f"{WEBHOOK_SCHEDULE_ENV}: comma-separated seconds between webhook attempts (default: the "
        f"environment's, else {DEFAULT_LOCAL_WEBHOOK_RETRY_SCHEDULE} here so that retries show in minutes; "
        "AWS: 5,300,1800,7200,18000,36000,50400,72000,86400)",
    )
    parser.add_argument(
        "--grace-seconds",
        type=int,
        default=None,
        help=f"{GRACE_ENV}: seconds after a period's end before a billing run closes it (default: the "
        f"environment's, else {DEFAULT_LOCAL_GRACE_SECONDS} here so that a demo bills at once; AWS: 86400)",
    )
    parser.add_argument(
        "--seller-registrations",
        default=None,
        help=f"{REGISTRATIONS_ENV}: comma-separated jurisdictions where the seller collects tax; '' for none "
        f"(default: the environment's, else {DEFAULT_LOCAL_SELLER_REGISTRATIONS} here so that a demo "
        "shows tax; AWS: none unless configured)",
    )
    parser.add_argument(
        "--schedule-interval",
        type=float,
        default=DEFAULT_SCHEDULE_INTERVAL_SECONDS,
        help="seconds between scheduled billing runs, as EventBridge Scheduler's "
        f"{resources.CYCLE_CLOSE_SCHEDULE} (default {DEFAULT_SCHEDULE_INTERVAL_SECONDS}; 0: no schedule)",
    )
    parser.add_argument(
        "--timeout-scale",
        type=float,
        default=5.0,
        help="multiply the functions' AWS timeouts by this (default 5: moto is slower than AWS)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the functions in this process, one invocation at a time (for a debugger); they then see "
        "this process's whole environment, not only their spec's",
    )
    parser.add_argument(
        "--log-level", default=None, help="log level of the functions (POWERTOOLS_LOG_LEVEL; default WARNING)"
    )
    return parser


def _banner(info: dict[str, Any], tenant_created: bool, schedule_interval: float) -> str:
    api, endpoint = info["api_url"], info["endpoint_url"]
    schedule = (
        f"a scheduled run every {schedule_interval:g} s" if schedule_interval > 0 else "no scheduled runs"
    )
    admin, ingest, tenant = info["admin_key"], info["ingest_key"], info["tenant_id"]
    exports = " ".join(f"{k}={v}" for k, v in sorted(info["env"].items()))
    event = '{"id": "evt_1", "customer_id": "cus_1", "type": "api.call", "properties": {"tokens": 10}}'
    hook = '{"url": "http://127.0.0.1:9000/hooks", "event_types": ["*"]}'
    return "\n".join(
        [
            "billing-local is running",
            f"  HTTP API     {api}   (OpenAPI: {api}/v1/openapi.json)",
            f"  AWS (moto)   {endpoint}   region {info['region']}, any credentials",
            f"  tenant       {tenant}" + ("" if tenant_created else "   (already existed)"),
            f"  admin key    {admin}"
            + ("" if os.environ.get(ADMIN_KEY_ENV) else f"   (fix it with {ADMIN_KEY_ENV})"),
            f"  ingest key   {ingest}",
            f"  cycle close  {info['state_machine_arn']}",
            f"               {schedule}; {GRACE_ENV}={os.environ.get(GRACE_ENV, '')}, "
            f"{REGISTRATIONS_ENV}={os.environ.get(REGISTRATIONS_ENV, '') or '(none: no tax)'}",
            f"  webhooks     outbox stream -> dispatcher -> webhook queue -> sender; "
            f"{WEBHOOK_SCHEDULE_ENV}={os.environ.get(WEBHOOK_SCHEDULE_ENV, '')}, "
            f"{WEBHOOK_LOOPBACK_ENV}={os.environ.get(WEBHOOK_LOOPBACK_ENV, '')}",
            "",
            "Send an event and read it back:",
            f"  curl -s -X POST {api}/v1/events -H 'Authorization: Bearer {ingest}' "
            f"-H 'Content-Type: application/json' -d '{event}'",
            f"  curl -s '{api}/v1/events/evt_1?customer_id=cus_1' -H 'Authorization: Bearer {admin}'",
            "Close every ended period now (a billing run), then read it:",
            f"  curl -s -X POST {api}/v1/billing-runs -H 'Authorization: Bearer {admin}' "
            "-H 'Content-Type: application/json' -d '{}'",
            f"  curl -s {api}/v1/billing-runs/<id> -H 'Authorization: Bearer {admin}'",
            "Receive webhooks (signed as Standard Webhooks; the answer shows the endpoint's secret once), "
            "then list its deliveries:",
            f"  curl -s -X POST {api}/v1/webhook-endpoints -H 'Authorization: Bearer {admin}' "
            f"-H 'Content-Type: application/json' -d '{hook}'",
            f"  curl -s '{api}/v1/webhook-deliveries?endpoint_id=<id>' -H 'Authorization: Bearer {admin}'",
            "AWS CLI / billing-admin from another shell:",
            f"  export {exports}",
            f"  billing-admin --endpoint-url {endpoint} list-keys --tenant-id {tenant}",
            "Ctrl-C stops.",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stopping = threading.Event()

    def request_stop(signum: int, _frame: object) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    runtime = LocalRuntime(
        host=args.host,
        port=args.port,
        moto_port=args.moto_port,
        tenant_id=args.tenant_id,
        retry_delay_seconds=args.retry_delay,
        authorizer_cache_seconds=args.authorizer_cache_ttl,
        poll_wait_seconds=args.poll_wait,
        log_level=args.log_level,
        in_process=args.in_process,
        api_concurrency=args.api_concurrency,
        cycle_close_concurrency=args.cycle_close_concurrency,
        timeout_scale=args.timeout_scale,
        grace_seconds=args.grace_seconds,
        seller_registrations=args.seller_registrations,
        schedule_interval_seconds=args.schedule_interval,
        sender_concurrency=args.sender_concurrency,
        webhook_retry_schedule=args.webhook_retry_schedule,
    )
    try:
        try:
            runtime.start()
        except StartupError as exc:
            print(f"billing-local: {exc}", file=sys.stderr)
            return 1
        info = runtime.ready_info()
        print(_banner(info, runtime.tenant_created, runtime.schedule_interval_seconds), flush=True)
        print(READY_PREFIX + json.dumps(info, sort_keys=True), flush=True)
        while not stopping.wait(0.2):
            pass
        print("billing-local: stopping", flush=True)
        runtime.stop()
        print("billing-local: stopped", flush=True)
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
