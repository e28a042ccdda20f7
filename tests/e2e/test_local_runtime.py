"""The local runtime end to end: a real `billing-local` process, real HTTP, moto behind it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from cloudevents.core.bindings.http import to_structured_event
from cloudevents.core.v1.event import CloudEvent

from billing.domain.api_keys import key_id_for
from tests.e2e.conftest import FIXED_ADMIN_KEY, RuntimeProcess, start_runtime

pytestmark = pytest.mark.e2e

TIMEOUT = 10  # seconds, per HTTP request


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def an_event(event_id: str, customer_id: str, **overrides: Any) -> dict[str, Any]:
    event = {
        "id": event_id,
        "customer_id": customer_id,
        "type": "api.call",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "properties": {"tokens": 1200, "region": "eu"},
    }
    event.update(overrides)
    return event


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def post_events(runtime: RuntimeProcess, body: Any, **kwargs: Any) -> requests.Response:
    return requests.post(
        f"{runtime.api_url}/v1/events",
        json=body,
        headers=bearer(runtime.info["ingest_key"]),
        timeout=TIMEOUT,
        **kwargs,
    )


def get_event(
    runtime: RuntimeProcess, event_id: str, customer_id: str, key: str | None = None
) -> requests.Response:
    return requests.get(
        f"{runtime.api_url}/v1/events/{event_id}",
        params={"customer_id": customer_id},
        headers=bearer(key or runtime.info["admin_key"]),
        timeout=TIMEOUT,
    )


def wait_stored(
    runtime: RuntimeProcess, event_id: str, customer_id: str, timeout: float = 15
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        response = get_event(runtime, event_id, customer_id)
        if response.status_code == 200 or time.monotonic() > deadline:
            assert response.status_code == 200, (
                f"{event_id} not stored: {response.status_code} {response.text}"
            )
            return response.json()
        time.sleep(0.1)


def stored_copies(runtime: RuntimeProcess, customer_id: str, event_id: str) -> int:
    """How many items of the events table hold this event (whatever their shard)."""
    client = boto3.client(
        "dynamodb",
        endpoint_url=runtime.endpoint_url,
        region_name=runtime.info["region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    count = 0
    for page in client.get_paginator("scan").paginate(
        TableName=runtime.info["env"]["EVENTS_TABLE_NAME"],
        FilterExpression="customer_id = :c AND event_id = :e",
        ExpressionAttributeValues={":c": {"S": customer_id}, ":e": {"S": event_id}},
    ):
        count += page["Count"]
    return count


def error_code(response: requests.Response) -> str:
    body = response.json()
    assert set(body) == {"error"}
    assert {"code", "message", "details"} <= set(body["error"])
    return str(body["error"]["code"])


# ---- start-up ----------------------------------------------------------------------------------------------


def test_ready_line_names_the_api_moto_and_keys(runtime: RuntimeProcess) -> None:
    info = runtime.info

    assert info["api_url"].startswith("http://127.0.0.1:")
    assert info["endpoint_url"].startswith("http://127.0.0.1:")
    assert info["tenant_id"] == "default"
    assert info["admin_key"] == FIXED_ADMIN_KEY  # BILLING_LOCAL_ADMIN_KEY fixes it
    assert info["ingest_key"].startswith("bk_ingest_")
    assert info["env"]["AWS_ENDPOINT_URL"] == info["endpoint_url"]


# ---- ingest ------------------------------------------------------------------------------------------------


def test_a_single_event_is_accepted_and_stored(runtime: RuntimeProcess) -> None:
    customer, event_id = unique("cus"), unique("evt")

    response = post_events(runtime, an_event(event_id, customer))

    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1, "rejected": []}
    stored = wait_stored(runtime, event_id, customer)
    assert stored["id"] == event_id
    assert stored["customer_id"] == customer
    assert stored["status"] == "unbilled"  # stored, though no subscription covers it (yet)


def test_duplicates_within_and_across_batches_are_stored_once(runtime: RuntimeProcess) -> None:
    customer = unique("cus")
    ids = [unique("evt") for _ in range(5)]
    first = [an_event(i, customer) for i in ids] + [an_event(ids[0], customer)]  # a duplicate in the batch
    second = [an_event(ids[1], customer), an_event(ids[2], customer)]  # duplicates across batches

    responses = [post_events(runtime, {"events": first}), post_events(runtime, {"events": second})]

    assert [r.status_code for r in responses] == [202, 202], [r.text for r in responses]
    assert all(r.json()["rejected"] == [] for r in responses)
    for event_id in ids:
        assert wait_stored(runtime, event_id, customer)["status"] == "unbilled"
    time.sleep(0.5)  # let any late redelivery land before counting
    assert [stored_copies(runtime, customer, event_id) for event_id in ids] == [1] * len(ids)


def test_an_invalid_event_is_rejected_alone_and_the_others_are_accepted(runtime: RuntimeProcess) -> None:
    customer = unique("cus")
    good_a, good_b = unique("evt"), unique("evt")
    batch = [
        an_event(good_a, customer),
        an_event(unique("evt"), customer, type=""),
        an_event(good_b, customer),
    ]

    response = post_events(runtime, {"events": batch})

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 2
    assert len(body["rejected"]) == 1
    rejected = body["rejected"][0]
    assert rejected["index"] == 1
    assert rejected["id"] == batch[1]["id"]
    assert rejected["error"]["code"]
    wait_stored(runtime, good_a, customer)
    wait_stored(runtime, good_b, customer)


def test_an_unknown_event_answers_404(runtime: RuntimeProcess) -> None:
    response = get_event(runtime, unique("evt"), unique("cus"))

    assert response.status_code == 404
    error_code(response)


# ---- CloudEvents -------------------------------------------------------------------------------------------


def a_cloudevent(event_id: str, customer_id: str) -> CloudEvent:
    return CloudEvent(
        {"id": event_id, "source": "/e2e/app", "type": "api.call", "subject": customer_id},
        {"tokens": 7},
    )


def test_a_structured_cloudevent_is_accepted_and_stored(runtime: RuntimeProcess) -> None:
    customer, event_id = unique("cus"), unique("ce")
    message = to_structured_event(a_cloudevent(event_id, customer))

    response = requests.post(
        f"{runtime.api_url}/v1/events",
        data=message.body,
        headers={**message.headers, **bearer(runtime.info["ingest_key"])},
        timeout=TIMEOUT,
    )

    assert message.headers["content-type"] == "application/cloudevents+json"
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1
    assert wait_stored(runtime, event_id, customer)["type"] == "api.call"


def test_a_cloudevents_batch_is_accepted_and_stored(runtime: RuntimeProcess) -> None:
    customer = unique("cus")
    ids = [unique("ce") for _ in range(3)]
    # The batch format is a JSON array of structured events (CloudEvents JSON format, "batch" section).
    body = b"[" + b",".join(to_structured_event(a_cloudevent(i, customer)).body for i in ids) + b"]"

    response = requests.post(
        f"{runtime.api_url}/v1/events",
        data=body,
        headers={"Content-Type": "application/cloudevents-batch+json", **bearer(runtime.info["ingest_key"])},
        timeout=TIMEOUT,
    )

    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 3, "rejected": []}
    for event_id in ids:
        wait_stored(runtime, event_id, customer)


# ---- what API Gateway answers before the function ----------------------------------------------------------


def test_no_key_is_401(runtime: RuntimeProcess) -> None:
    response = requests.post(f"{runtime.api_url}/v1/events", json=an_event("e", "c"), timeout=TIMEOUT)

    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


@pytest.mark.parametrize("header", ["Bearer bk_ingest_" + "x" * 43, "Bearer nonsense", "Basic abc"])
def test_a_bad_key_is_401(runtime: RuntimeProcess, header: str) -> None:
    response = requests.post(
        f"{runtime.api_url}/v1/events",
        json=an_event("e", "c"),
        headers={"Authorization": header},
        timeout=TIMEOUT,
    )

    assert response.status_code == 401
    assert error_code(response) == "unauthorized"


def test_an_ingest_key_on_an_admin_route_is_403(runtime: RuntimeProcess) -> None:
    response = get_event(runtime, unique("evt"), unique("cus"), key=runtime.info["ingest_key"])

    assert response.status_code == 403
    assert error_code(response) == "forbidden"


def test_a_body_over_10_mb_is_413(runtime: RuntimeProcess) -> None:
    response = requests.post(
        f"{runtime.api_url}/v1/events",
        data=b"x" * (10 * 1024 * 1024 + 1),
        headers={"Content-Type": "application/json", **bearer(runtime.info["ingest_key"])},
        timeout=30,
    )

    assert response.status_code == 413
    assert error_code(response) == "payload_too_large"


def test_the_openapi_document_needs_no_key(runtime: RuntimeProcess) -> None:
    response = requests.get(f"{runtime.api_url}/v1/openapi.json", timeout=TIMEOUT)

    assert response.status_code == 200, response.text
    assert "/v1/events" in response.json()["paths"]


# ---- the queue behind the API ------------------------------------------------------------------------------


def test_an_unreadable_queue_message_ends_in_the_dead_letter_queue(runtime: RuntimeProcess) -> None:
    sqs = boto3.client(
        "sqs",
        endpoint_url=runtime.endpoint_url,
        region_name=runtime.info["region"],
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    dlq = runtime.info["env"]["INGEST_DLQ_URL"]
    marker = unique("poison")

    sqs.send_message(QueueUrl=runtime.info["env"]["INGEST_QUEUE_URL"], MessageBody=f"not json {marker}")

    deadline = time.monotonic() + 30
    bodies: list[str] = []
    while time.monotonic() < deadline and not any(marker in b for b in bodies):
        received = sqs.receive_message(
            QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1, VisibilityTimeout=0
        )
        bodies += [m["Body"] for m in received.get("Messages", [])]
    assert any(marker in body for body in bodies), bodies


# ---- the tools around it -----------------------------------------------------------------------------------


def test_billing_admin_lists_the_default_tenants_keys(runtime: RuntimeProcess) -> None:
    admin_cli = Path(sys.executable).with_name("billing-admin")
    if not admin_cli.exists():
        pytest.skip("billing-admin is not installed in this environment")

    result = subprocess.run(
        [str(admin_cli), "--endpoint-url", runtime.endpoint_url, "list-keys", "--tenant-id", "default"],
        env=runtime.aws_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert key_id_for(runtime.info["admin_key"]) in result.stdout
    assert key_id_for(runtime.info["ingest_key"]) in result.stdout
    assert runtime.info["admin_key"] not in result.stdout  # only ids, never the keys


# ---- stopping ----------------------------------------------------------------------------------------------


@pytest.fixture
def own_runtime(tmp_path: Path) -> Iterator[RuntimeProcess]:
    running = start_runtime(tmp_path)
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait()


def _port_open(url: str) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, int(port))) == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_everything_cleanly_with_exit_code_0(own_runtime: RuntimeProcess, sig: int) -> None:
    customer, event_id = unique("cus"), unique("evt")
    assert post_events(own_runtime, an_event(event_id, customer)).status_code == 202
    wait_stored(own_runtime, event_id, customer)  # the pump has been busy before the signal

    code = own_runtime.stop(sig, timeout=20)

    output = own_runtime.output()
    assert code == 0, output
    assert "Traceback" not in output
    assert not _port_open(own_runtime.api_url)
    assert not _port_open(own_runtime.endpoint_url)
