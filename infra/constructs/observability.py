"""Alarms on what must never happen silently (poison events, consumer errors, API 5xx, failed billing runs,
undelivered webhooks, a stalled outbox) and a dashboard."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from infra.config import DeploymentConfig
from infra.constructs.api import ApiConstruct
from infra.constructs.cycle_close import CycleCloseConstruct
from infra.constructs.ingest import IngestConstruct
from infra.constructs.webhooks import WebhooksConstruct

# A consumer that lags this far behind is failing or throttled, long before the queue's retention.
MAX_INGEST_AGE = cdk.Duration.minutes(15)
# A dispatcher this far behind the billing table's stream is failing (retrying a batch) or throttled; the
# stream keeps records 24 h, so webhooks are late long before any outbox event could be lost.
MAX_OUTBOX_ITERATOR_AGE = cdk.Duration.minutes(5)


class ObservabilityConstruct(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeploymentConfig,
        key: kms.Key,
        ingest: IngestConstruct,
        api: ApiConstruct,
        cycle_close: CycleCloseConstruct,
        webhooks: WebhooksConstruct,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = self._build_topic(key, config.alarm_email)
        self.alarms = [
            self._build_alarm(
                "DeadLetterQueueNotEmpty",
                "Usage events reached the ingest dead-letter queue: inspect and redrive them.",
                ingest.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=cdk.Duration.minutes(1), statistic=cloudwatch.Stats.MAXIMUM
                ),
            ),
            self._build_alarm(
                "ConsumerErrors",
                "The ingest consumer failed invocations (events are retried, then dead-lettered).",
                ingest.consumer.function.metric_errors(period=cdk.Duration.minutes(5)),
            ),
            self._build_alarm(
                "IngestBacklogAge",
                "The oldest queued usage event is older than expected: the consumer is not keeping up.",
                ingest.queue.metric_approximate_age_of_oldest_message(
                    period=cdk.Duration.minutes(5), statistic=cloudwatch.Stats.MAXIMUM
                ),
                threshold=MAX_INGEST_AGE.to_seconds(),
            ),
            self._build_alarm(
                "ApiServerErrors",
                "The API answered 5xx; bad input must never yield a 5xx.",
                api.rest_api.metric_server_error(period=cdk.Duration.minutes(5)),
            ),
            self._build_alarm(
                "ApiFunctionErrors",
                "The api function failed invocations.",
                api.api_function.function.metric_errors(period=cdk.Duration.minutes(5)),
            ),
            self._build_alarm(
                "AuthorizerErrors",
                "The authorizer failed invocations: every request is answered 5xx while it fails.",
                api.authorizer_function.function.metric_errors(period=cdk.Duration.minutes(5)),
            ),
            *self._cycle_close_alarms(cycle_close),
            *self._webhook_alarms(webhooks),
        ]
        self.dashboard = self._build_dashboard(ingest, api, cycle_close, webhooks)

    def _cycle_close_alarms(self, cycle_close: CycleCloseConstruct) -> list[cloudwatch.Alarm]:
        five_minutes = cdk.Duration.minutes(5)
        state_machine = cycle_close.state_machine
        return [
            self._build_alarm(
                "BillingRunFailed",
                "A billing run (cycle close) failed: listing due subscriptions or the run summary failed "
                "after its retries. Periods stay open until a run succeeds.",
                state_machine.metric_failed(period=five_minutes),
            ),
            self._build_alarm(
                "BillingRunTimedOut",
                "A billing run (cycle close) timed out.",
                state_machine.metric_timed_out(period=five_minutes),
            ),
            self._build_alarm(
                "CycleCloseFunctionErrors",
                "The cycle-close function failed invocations: transient ones are retried, the others mark a "
                "subscription failed in its run summary (its period stays open).",
                cycle_close.function.function.metric_errors(period=five_minutes),
            ),
            self._build_alarm(
                "BillingRunStartsDeadLettered",
                "EventBridge Scheduler could not start a billing run after its retries; the next hourly "
                "run closes the same periods, but find out why.",
                cycle_close.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=cdk.Duration.minutes(1), statistic=cloudwatch.Stats.MAXIMUM
                ),
            ),
        ]

    def _webhook_alarms(self, webhooks: WebhooksConstruct) -> list[cloudwatch.Alarm]:
        one_minute, five_minutes = cdk.Duration.minutes(1), cdk.Duration.minutes(5)
        return [
            self._build_alarm(
                "WebhookDeadLetterQueueNotEmpty",
                "Webhook queue messages (lane kicks, retry timers, replays) failed every receive and were "
                "dead-lettered: their lanes may be stalled. Inspect them and redrive.",
                webhooks.dead_letter_queue.metric_approximate_number_of_messages_visible(
                    period=one_minute, statistic=cloudwatch.Stats.MAXIMUM
                ),
            ),
            self._build_alarm(
                "OutboxDispatchFailed",
                "Billing-table stream batches failed the outbox dispatcher after every retry: their outbox "
                "events have no webhook deliveries yet. Replay them from the failures queue's descriptions.",
                webhooks.failures_queue.metric_approximate_number_of_messages_visible(
                    period=one_minute, statistic=cloudwatch.Stats.MAXIMUM
                ),
            ),
            self._build_alarm(
                "WebhookDeliveriesDeadLettered",
                "Webhook deliveries exhausted their retries and were dead-lettered: the customers' endpoints "
                "did not accept them. They can be replayed through the API.",
                webhooks.metric_deliveries_dead_lettered(),
            ),
            self._build_alarm(
                "OutboxDispatcherIteratorAge",
                "The outbox dispatcher is behind the billing table's stream: it is failing (retrying a "
                "batch) or throttled, and webhooks are late.",
                webhooks.dispatcher.function.metric(
                    "IteratorAge", period=five_minutes, statistic=cloudwatch.Stats.MAXIMUM
                ),
                # IteratorAge is in milliseconds.
                threshold=MAX_OUTBOX_ITERATOR_AGE.to_milliseconds(),
            ),
            self._build_alarm(
                "OutboxDispatcherErrors",
                "The outbox dispatcher failed invocations (batches are bisected and retried, then described "
                "on the outbox failures queue).",
                webhooks.dispatcher.function.metric_errors(period=five_minutes),
            ),
            self._build_alarm(
                "WebhookSenderErrors",
                "The webhook sender failed invocations (its messages are redelivered, then dead-lettered).",
                webhooks.sender.function.metric_errors(period=five_minutes),
            ),
        ]

    def _build_topic(self, key: kms.Key, alarm_email: str) -> sns.Topic:
        topic = sns.Topic(
            self, "AlarmTopic", display_name="usage-billing alarms", master_key=key, enforce_ssl=True
        )
        # CloudWatch publishes to the encrypted topic with the data key.
        key.add_to_resource_policy(
            iam.PolicyStatement(
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                resources=["*"],
                conditions={"StringEquals": {"aws:SourceAccount": cdk.Aws.ACCOUNT_ID}},
            )
        )
        if alarm_email:
            topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        return topic

    def _build_alarm(
        self, construct_id: str, description: str, metric: cloudwatch.IMetric, *, threshold: float = 0
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        action = cloudwatch_actions.SnsAction(self.topic)
        alarm.add_alarm_action(action)
        alarm.add_ok_action(action)
        return alarm

    def _build_dashboard(
        self,
        ingest: IngestConstruct,
        api: ApiConstruct,
        cycle_close: CycleCloseConstruct,
        webhooks: WebhooksConstruct,
    ) -> cloudwatch.Dashboard:
        dashboard = cloudwatch.Dashboard(self, "Dashboard", default_interval=cdk.Duration.hours(6))
        five_minutes = cdk.Duration.minutes(5)
        dashboard.add_widgets(
            cloudwatch.AlarmStatusWidget(title="Alarms", alarms=self.alarms, width=24, height=4),
            cloudwatch.GraphWidget(
                title="API requests and errors",
                left=[api.rest_api.metric_count(period=five_minutes)],
                right=[
                    api.rest_api.metric_client_error(period=five_minutes),
                    api.rest_api.metric_server_error(period=five_minutes),
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="API latency (p99)",
                left=[api.rest_api.metric_latency(period=five_minutes, statistic="p99")],
                right=[api.rest_api.metric_integration_latency(period=five_minutes, statistic="p99")],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Ingest queue",
                left=[
                    ingest.queue.metric_approximate_number_of_messages_visible(period=five_minutes),
                    ingest.dead_letter_queue.metric_approximate_number_of_messages_visible(
                        period=five_minutes
                    ),
                ],
                right=[ingest.queue.metric_approximate_age_of_oldest_message(period=five_minutes)],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Consumer",
                left=[
                    ingest.consumer.function.metric_invocations(period=five_minutes),
                    ingest.consumer.function.metric_errors(period=five_minutes),
                    ingest.consumer.function.metric_throttles(period=five_minutes),
                ],
                right=[ingest.consumer.function.metric_duration(period=five_minutes, statistic="p99")],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Billing runs",
                left=[
                    cycle_close.state_machine.metric_started(period=five_minutes),
                    cycle_close.state_machine.metric_succeeded(period=five_minutes),
                    cycle_close.state_machine.metric_failed(period=five_minutes),
                    cycle_close.state_machine.metric_timed_out(period=five_minutes),
                ],
                right=[cycle_close.state_machine.metric_time(period=five_minutes, statistic="p99")],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Cycle-close function",
                left=[
                    cycle_close.function.function.metric_invocations(period=five_minutes),
                    cycle_close.function.function.metric_errors(period=five_minutes),
                    cycle_close.function.function.metric_throttles(period=five_minutes),
                ],
                right=[cycle_close.function.function.metric_duration(period=five_minutes, statistic="p99")],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Outbox dispatcher",
                left=[
                    webhooks.dispatcher.function.metric_invocations(period=five_minutes),
                    webhooks.dispatcher.function.metric_errors(period=five_minutes),
                    webhooks.failures_queue.metric_approximate_number_of_messages_visible(
                        period=five_minutes
                    ),
                ],
                right=[
                    webhooks.dispatcher.function.metric(
                        "IteratorAge", period=five_minutes, statistic=cloudwatch.Stats.MAXIMUM
                    )
                ],
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Webhook sender",
                left=[
                    webhooks.sender.function.metric_invocations(period=five_minutes),
                    webhooks.sender.function.metric_errors(period=five_minutes),
                    webhooks.metric_deliveries_dead_lettered(),
                    webhooks.dead_letter_queue.metric_approximate_number_of_messages_visible(
                        period=five_minutes
                    ),
                ],
                right=[
                    webhooks.queue.metric_approximate_number_of_messages_visible(period=five_minutes),
                    webhooks.sender.function.metric_duration(period=five_minutes, statistic="p99"),
                ],
                width=12,
            ),
        )
        return dashboard
