"""Billing-cycle close: the cycle-close function, the state machine that drives it, and its hourly schedule.

The state machine's ASL is `billing.workflows.cycle_close.cycle_close_definition`, the same document the
local runtime hands to moto; this construct only fills in the function ARN. Because the definition is raw
ASL, CDK adds none of the permissions its L2 states would (Lambda invoke, the Distributed Map's child
executions): they are granted here, action by action.

The Distributed Map's permissions name the state machine itself. They live in a separate inline policy
(`DistributedMapPolicy`, as CDK's own `DistributedMap` state does) rather than in the role's default
policy: the state machine resource depends on its role's default policy (Step Functions checks the
logging permissions when the machine is created), so a self-reference there would be a circular
dependency. The state machine keeps its CDK-generated name.

The state machine goes into the resource registry: functions whose spec starts runs (the api function) are
built afterwards and get its ARN and their grants from there, so this construct knows none of them.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct, Node

from billing import resources
from billing.workflows.cycle_close import cycle_close_definition
from infra.constructs.function import BillingFunction
from infra.constructs.permissions import execution_arn, grant_key, grant_send, nag_execution_finding
from infra.constructs.registry import ResourceRegistry

GRACE_CONTEXT_KEY = "billing_grace_seconds"
DEFAULT_GRACE_SECONDS = 24 * 3600
GRACE_ENV_VAR = "BILLING_GRACE_SECONDS"

# A failed start is retried with backoff until the next hourly run is due; after that the next run
# covers the same periods (every close is idempotent), and the missed start lands in the DLQ for a look.
SCHEDULE_RETRY_ATTEMPTS = 10
SCHEDULE_MAX_EVENT_AGE = cdk.Duration.hours(1)
SCHEDULE_INPUT = {"source": "schedule", "as_of": scheduler.ContextAttribute.scheduled_time}

# Invoice data stays out of the execution log: only state transitions, no input or output.
LOG_LEVEL = sfn.LogLevel.ALL
INCLUDE_EXECUTION_DATA = False


def grace_seconds_from_context(node: Node) -> int:
    """`-c billing_grace_seconds=…`: time after a period's end before it is closed (default 24 h)."""
    value = node.try_get_context(GRACE_CONTEXT_KEY)
    seconds = DEFAULT_GRACE_SECONDS if value is None or value == "" else int(value)
    if seconds < 0:
        raise ValueError(f"{GRACE_CONTEXT_KEY} must be >= 0, got {seconds}")
    return seconds


def seller_environment_from_context(node: Node) -> dict[str, str]:
    """`-c seller_country=US -c seller_tax_registrations=US-NY,EU-OSS`: who sells, where it collects tax."""
    country = str(node.try_get_context("seller_country") or "US")
    registrations = str(node.try_get_context("seller_tax_registrations") or "")
    return {"BILLING_SELLER_COUNTRY": country, "BILLING_SELLER_TAX_REGISTRATIONS": registrations}


def function_settings_from_context(node: Node) -> dict[str, str]:
    """The settings this deployment sets for the functions; each gets those its spec reads (cycle close)."""
    return {GRACE_ENV_VAR: str(grace_seconds_from_context(node)), **seller_environment_from_context(node)}


class CycleCloseConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        registry: ResourceRegistry,
        layer: lambda_.ILayerVersion,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = BillingFunction(
            self, "Function", spec=resources.CYCLE_CLOSE_FUNCTION, layer=layer, registry=registry
        )
        self.log_group = self._build_log_group(registry.key)
        self.state_machine = self._build_state_machine()
        registry.add_state_machine(resources.CYCLE_CLOSE_STATE_MACHINE, self.state_machine)
        self.distributed_map_policy = self._grant_distributed_map()
        self.dead_letter_queue = self._build_dead_letter_queue(registry.key)
        self.schedule_role = self._build_schedule_role(registry.key)
        self.schedule = self._build_schedule()

    def execution_arn(self, separator: str = ":") -> str:
        """The ARN pattern of this machine's executions: `:` top-level runs, `/` Distributed Map children."""
        return execution_arn(self.state_machine, separator)

    # --- the state machine ---------------------------------------------------------------------------

    def _build_log_group(self, key: kms.IKey) -> logs.LogGroup:
        stack = cdk.Stack.of(self)
        # Named so the key policy can name it without a reference (the group depends on the key), and
        # under /aws/vendedlogs/ so log delivery's resource policy stays one wildcard entry.
        name = f"/aws/vendedlogs/states/{stack.stack_name}-cycle-close"
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=[
                    "kms:Encrypt",
                    "kms:Decrypt",
                    "kms:ReEncryptFrom",
                    "kms:ReEncryptTo",
                    "kms:GenerateDataKey",
                    "kms:DescribeKey",
                ],
                resources=["*"],
                conditions={
                    "ArnEquals": {
                        "kms:EncryptionContext:aws:logs:arn": stack.format_arn(
                            service="logs",
                            resource="log-group",
                            resource_name=name,
                            arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                        )
                    }
                },
            )
        )
        return logs.LogGroup(
            self,
            "ExecutionLogs",
            log_group_name=name,
            encryption_key=key,
            retention=logs.RetentionDays.THREE_MONTHS,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )

    def _build_state_machine(self) -> sfn.StateMachine:
        stack = cdk.Stack.of(self)
        definition = cycle_close_definition(self.function.function.function_arn)
        state_machine = sfn.StateMachine(
            self,
            "StateMachine",
            comment="usage-billing cycle close (billing.workflows.cycle_close)",
            definition_body=sfn.DefinitionBody.from_string(stack.to_json_string(definition)),
            state_machine_type=sfn.StateMachineType.STANDARD,
            logs=sfn.LogOptions(
                destination=self.log_group, level=LOG_LEVEL, include_execution_data=INCLUDE_EXECUTION_DATA
            ),
            tracing_enabled=True,
        )
        cfn: sfn.CfnStateMachine = state_machine.node.default_child  # type: ignore[assignment]
        cfn.override_logical_id(resources.CYCLE_CLOSE_STATE_MACHINE.logical_id)
        # Adds lambda:InvokeFunction on the function and on `<arn>:*` (its versions and aliases).
        self.function.function.grant_invoke(state_machine)
        cdk.Validations.of(state_machine.role).acknowledge(
            cdk.Acknowledgment(
                id=f"AwsSolutions-IAM5[Resource::<{self._nag_ref(self.function.function)}.Arn>:*]",
                reason="lambda:InvokeFunction on the cycle-close function's own versions and aliases "
                "(`<arn>:*`), next to the unqualified ARN: a qualified invocation is authorized against "
                "the qualified ARN, and CDK's grant_invoke names both.",
            ),
            cdk.Acknowledgment(
                id="AwsSolutions-IAM5[Resource::*]",
                reason="Only what Step Functions needs for logging and tracing: the CloudWatch Logs "
                "log-delivery actions (CreateLogDelivery and friends) and X-Ray's PutTraceSegments, "
                "PutTelemetryRecords, GetSamplingRules and GetSamplingTargets, none of which supports "
                "resource-level permissions.",
            ),
        )
        return state_machine

    def _grant_distributed_map(self) -> iam.Policy:
        """What a Distributed Map in STANDARD mode needs: start, watch and stop its child executions."""
        state_machine = self.state_machine
        children = self.execution_arn("/")
        policy = iam.Policy(
            self,
            "DistributedMapPolicy",
            statements=[
                iam.PolicyStatement(
                    actions=["states:StartExecution"], resources=[state_machine.state_machine_arn]
                ),
                iam.PolicyStatement(
                    actions=["states:DescribeExecution", "states:StopExecution"],
                    resources=[self.execution_arn(":"), children],
                ),
                # Redriving a run redrives its map run's failed children.
                iam.PolicyStatement(actions=["states:RedriveExecution"], resources=[children]),
            ],
        )
        state_machine.role.attach_inline_policy(policy)
        reason = (
            "The Distributed Map runs each subscription as a child execution of this same state machine; "
            "execution ARNs are generated per run and per child, so they are named by this machine's "
            "execution pattern and nothing wider."
        )
        cdk.Validations.of(policy).acknowledge(
            cdk.Acknowledgment(
                id=nag_execution_finding(resources.CYCLE_CLOSE_STATE_MACHINE, ":"), reason=reason
            ),
            cdk.Acknowledgment(
                id=nag_execution_finding(resources.CYCLE_CLOSE_STATE_MACHINE, "/"), reason=reason
            ),
        )
        return policy

    # --- the schedule --------------------------------------------------------------------------------

    def _build_dead_letter_queue(self, key: kms.IKey) -> sqs.Queue:
        queue = sqs.Queue(
            self,
            "ScheduleDeadLetterQueue",
            retention_period=cdk.Duration.days(14),
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            enforce_ssl=True,
        )
        is_dead_letter_queue = (
            "This queue is the scheduler's dead-letter queue itself (billing-run starts that failed every "
            "retry); the DLQ-depth alarm watches it."
        )
        cdk.Validations.of(queue).acknowledge(
            cdk.Acknowledgment(id="AwsSolutions-SQS3", reason=is_dead_letter_queue),
            cdk.Acknowledgment(id="Serverless-SQSRedrivePolicy", reason=is_dead_letter_queue),
        )
        return queue

    def _build_schedule_role(self, key: kms.IKey) -> iam.Role:
        stack = cdk.Stack.of(self)
        role = iam.Role(
            self,
            "ScheduleRole",
            description="EventBridge Scheduler: start the cycle-close state machine",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                # Only schedules of this account's default group may assume it (confused deputy).
                conditions={
                    "StringEquals": {
                        "aws:SourceAccount": stack.account,
                        "aws:SourceArn": stack.format_arn(
                            service="scheduler",
                            resource="schedule-group",
                            resource_name="default",
                            arn_format=cdk.ArnFormat.SLASH_RESOURCE_NAME,
                        ),
                    }
                },
            ),
        )
        # The target adds states:StartExecution on the state machine; dead-lettering needs the queue and
        # its key (written here with exact actions, not the queue's grant_send_messages wildcards).
        grant_send(role, self.dead_letter_queue)
        grant_key(role, key, write=True)
        return role

    def _build_schedule(self) -> scheduler.Schedule:
        target = scheduler_targets.StepFunctionsStartExecution(
            self.state_machine,
            role=self.schedule_role,
            input=scheduler.ScheduleTargetInput.from_object(SCHEDULE_INPUT),
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=SCHEDULE_RETRY_ATTEMPTS,
            max_event_age=SCHEDULE_MAX_EVENT_AGE,
        )
        schedule = scheduler.Schedule(
            self,
            "Schedule",
            description="usage-billing: start a billing run (cycle close) relative to the scheduled time",
            schedule=scheduler.ScheduleExpression.expression(resources.CYCLE_CLOSE_SCHEDULE),
            target=target,
            time_window=scheduler.TimeWindow.off(),
        )
        # The first run must find the Distributed Map's permissions in place.
        schedule.node.add_dependency(self.distributed_map_policy)
        return schedule

    # --- cdk-nag finding ids -------------------------------------------------------------------------

    def _nag_ref(self, function: lambda_.Function) -> str:
        stack = cdk.Stack.of(self)
        return str(stack.resolve(stack.get_logical_id(function.node.default_child)))  # type: ignore[arg-type]
