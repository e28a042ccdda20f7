"""The edge end to end, on a real `billing-local`: nothing accepted is lost, one key has one effect.

- Events at every boundary the edge checks are sent in one batch; each answered as accepted must be
  stored (readable back, never dead-lettered), each refused must be named with its field.
- Bursts of parallel `POST /v1/billing-runs` with one `Idempotency-Key` start exactly one run, and every
  success answer is the same bytes.
"""

from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import boto3
import pytest
import requests

from tests.e2e.conftest import RuntimeProcess

pytestmark = pytest.mark.e2e

TIMEOUT = 30
BURSTS = 5
PARALLEL = 10


def headers(runtime: RuntimeProcess, **extra: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {runtime.info['admin_key']}",
        "Content-Type": "application/json",
        **extra,
    }


def client(runtime: RuntimeProcess, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=runtime.endpoint_url,
        region_name=runtime.info["region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


def boundary_events(customer: str) -> tuple[list[str], list[tuple[str, str]]]:
    """(raw JSON of each event, [(id, field) of those that must be refused]); numbers are written as text
    so that they reach the server exactly as given."""
    now = datetime.now(UTC)
    accepted: list[tuple[str, str]] = [
        ("n-smallest", '{"v": 1E-130}'),
        ("n-largest", '{"v": 9.99E+125}'),
        ("n-most-negative", '{"v": -9.99E+125}'),
        ("n-zero", '{"v": 0}'),
        ("n-38-digits", '{"v": ' + "9" * 38 + "}"),
        ("n-38-digit-fraction", '{"v": 0.' + "1" * 38 + "}"),
        ("deep-6", json.dumps(nested(6))),
        ("long-key", json.dumps({"k" * 256: 1})),
        ("text", json.dumps({"s": "ünïcødé ✓ \u00a0", "b": True, "z": None, "l": [1, "two", [3]]})),
        ("big", json.dumps({"pad": "x" * 30_000})),
    ]
    refused: list[tuple[str, str, str]] = [
        ("n-too-small", '{"v": 1E-131}', "properties.v"),
        ("n-too-large", '{"v": 1E+126}', "properties.v"),
        ("n-39-digits", '{"v": ' + "9" * 39 + "}", "properties.v"),
        ("deep-7", json.dumps(nested(7)), "properties"),
        ("key-too-long", json.dumps({"k" * 257: 1}), "properties"),
    ]
    raws = [
        json.dumps({"id": event_id, "customer_id": customer, "type": "api.call"})[:-1]
        + f', "properties": {properties}}}'
        for event_id, properties in accepted
    ]
    raws += [
        json.dumps({"id": event_id, "customer_id": customer, "type": "api.call"})[:-1]
        + f', "properties": {properties}}}'
        for event_id, properties, _ in refused
    ]
    # Ids and instants at their edges.
    edge_id = "i" * 128
    raws.append(json.dumps({"id": edge_id, "customer_id": customer, "type": "api.call"}))
    raws.append(json.dumps({"id": "!\"$&'()*+,-.:;<=>@[\\]^_`{|}~", "customer_id": customer, "type": "t.x"}))
    old = instant(now - timedelta(days=35) + timedelta(minutes=5))
    raws.append(json.dumps({"id": "t-old", "customer_id": customer, "type": "api.call", "timestamp": old}))
    ahead = instant(now + timedelta(minutes=4))
    raws.append(
        json.dumps({"id": "t-ahead", "customer_id": customer, "type": "api.call", "timestamp": ahead})
    )
    refused_ids = [(event_id, field) for event_id, _, field in refused]
    for event_id, field, value in (
        ("i" * 129, "id", None),
        ("4111111111111111", "id", None),
        ("t-far", "timestamp", "2100-01-01T00:00:00Z"),
        ("t-too-old", "timestamp", instant(now - timedelta(days=36))),
    ):
        event = {"id": event_id, "customer_id": customer, "type": "api.call"}
        if value is not None:
            event["timestamp"] = value
        raws.append(json.dumps(event))
        refused_ids.append((event_id, field))
    return raws, refused_ids


def test_every_event_accepted_at_the_boundaries_is_stored_and_every_refused_one_is_named(
    runtime: RuntimeProcess,
) -> None:
    customer = f"cus_{uuid.uuid4().hex[:10]}"
    raws, refused = boundary_events(customer)
    body = '{"events": [' + ", ".join(raws) + "]}"

    response = requests.post(
        f"{runtime.api_url}/v1/events", data=body, headers=headers(runtime), timeout=TIMEOUT
    )

    assert response.status_code == 202, response.text
    answer = response.json()
    sent = [json.loads(raw, parse_float=Decimal) for raw in raws]
    rejected = {item["index"]: item for item in answer["rejected"]}
    refused_fields = dict(refused)
    assert sorted(sent[index]["id"] for index in rejected) == sorted(refused_fields)
    for index, item in rejected.items():
        assert item["error"]["field"] == refused_fields[sent[index]["id"]], item
    accepted = [event for index, event in enumerate(sent) if index not in rejected]
    assert answer["accepted"] == len(accepted)

    deadline = time.monotonic() + 30
    for event in accepted:
        while True:
            stored = requests.get(
                f"{runtime.api_url}/v1/events/{quote(event['id'], safe='')}",
                params={"customer_id": customer},
                headers=headers(runtime),
                timeout=TIMEOUT,
            )
            if stored.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert stored.status_code == 200, (event["id"], stored.text)
        assert stored.json()["id"] == event["id"]
    dead = client(runtime, "sqs").receive_message(
        QueueUrl=runtime.info["env"]["INGEST_DLQ_URL"], MaxNumberOfMessages=10, WaitTimeSeconds=1
    )
    assert dead.get("Messages", []) == []  # nothing accepted was then refused by the events table


def test_parallel_billing_runs_with_one_key_start_one_run_and_answer_the_same_bytes(
    runtime: RuntimeProcess,
) -> None:
    sfn = client(runtime, "stepfunctions")
    machine = runtime.info["state_machine_arn"]
    before = {execution["name"] for execution in sfn.list_executions(stateMachineArn=machine)["executions"]}

    def start(key: str) -> requests.Response:
        return requests.post(
            f"{runtime.api_url}/v1/billing-runs",
            data="{}",
            headers=headers(runtime, **{"Idempotency-Key": key}),
            timeout=TIMEOUT,
        )

    for burst in range(BURSTS):
        key = f"burst-{uuid.uuid4().hex}-{burst}"
        with ThreadPoolExecutor(PARALLEL) as pool:
            answers = list(pool.map(start, [key] * PARALLEL))

        assert {answer.status_code for answer in answers} <= {202, 409}, [a.text for a in answers]
        started = [answer for answer in answers if answer.status_code == 202]
        assert started, [answer.text for answer in answers]
        assert len({answer.content for answer in started}) == 1  # one answer, byte for byte
        for answer in answers:
            if answer.status_code == 409:
                assert answer.json()["error"]["code"] == "idempotency_key_in_progress"
                assert answer.headers["Retry-After"]
        again = start(key)
        assert (again.status_code, again.content) == (202, started[0].content)
        assert again.headers["Idempotent-Replayed"] == "true"

    after = {execution["name"] for execution in sfn.list_executions(stateMachineArn=machine)["executions"]}
    assert len(after - before) == BURSTS  # one execution per key, however many requests raced
