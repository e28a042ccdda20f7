"""What a function's spec refers to, as deployed: the stack's resources by spec, the data key, and the
settings the deployment gives the functions.

The area constructs add the tables, queues, keys and state machines they build; a `BillingFunction` resolves
its spec's access declarations here. So no area construct needs another to wire a function (the api function
reaches the cycle-close state machine without the api construct knowing the cycle-close one), and a
function can only be built once every resource it uses exists: a function whose resource is missing (built
later, or never) fails synthesis with the spec's name instead of deploying without it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn

from billing.resources import (
    Access,
    KeyAccess,
    KeySpec,
    QueueAccess,
    QueueSpec,
    StateMachineSpec,
    TableAccess,
    TableSpec,
)

_T = TypeVar("_T")


class ResourceRegistry:
    def __init__(self, key: kms.IKey, settings: Mapping[str, str]) -> None:
        self.key = key  # encrypts every table and queue
        # {env var: value} of the settings this deployment sets; each function gets those its spec reads.
        self.settings = dict(settings)
        self._tables: dict[str, dynamodb.ITable] = {}
        self._queues: dict[str, sqs.IQueue] = {}
        self._state_machines: dict[str, sfn.StateMachine] = {}
        self._keys: dict[str, kms.IKey] = {}

    def add_table(self, spec: TableSpec, table: dynamodb.ITable) -> None:
        self._tables[spec.logical_id] = table

    def add_queue(self, spec: QueueSpec, queue: sqs.IQueue) -> None:
        self._queues[spec.logical_id] = queue

    def add_state_machine(self, spec: StateMachineSpec, state_machine: sfn.StateMachine) -> None:
        self._state_machines[spec.logical_id] = state_machine

    def add_key(self, spec: KeySpec, key: kms.IKey) -> None:
        """A key of its own (`billing.resources.KEYS`) for functions with a `KeyAccess`; not the data key."""
        self._keys[spec.logical_id] = key

    def table(self, spec: TableSpec) -> dynamodb.ITable:
        return _lookup(self._tables, spec.logical_id, "table")

    def queue(self, spec: QueueSpec) -> sqs.IQueue:
        return _lookup(self._queues, spec.logical_id, "queue")

    def state_machine(self, spec: StateMachineSpec) -> sfn.StateMachine:
        return _lookup(self._state_machines, spec.logical_id, "state machine")

    def key_for(self, spec: KeySpec) -> kms.IKey:
        return _lookup(self._keys, spec.logical_id, "key")

    def value(self, access: Access) -> str:
        """What the function's env var carries: a table's name, a queue's URL, a state machine's or a key's
        ARN."""
        if isinstance(access, TableAccess):
            return self.table(access.table).table_name
        if isinstance(access, QueueAccess):
            return self.queue(access.queue).queue_url
        if isinstance(access, KeyAccess):
            return self.key_for(access.key).key_arn
        return self.state_machine(access.state_machine).state_machine_arn


def _lookup(found: Mapping[str, _T], logical_id: str, kind: str) -> _T:
    try:
        return found[logical_id]
    except KeyError:
        raise LookupError(
            f"{kind} {logical_id} is not in the stack yet: build a function after the resources it uses"
        ) from None
