"""Ingest benchmark on the local runtime: events/s at the API, time until stored, SQS sends per event.

Starts `LocalRuntime` in this process (moto server, HTTP API, pump), posts N events in batches with some
duplicates and some invalid events, waits until the ingest queue is drained, then checks that every valid
unique event is stored exactly once. Run: `.venv/bin/python bench/ingest_bench.py --events 10000`.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import requests
from moto.sqs.responses import SQSResponse

from local.runtime import LocalRuntime


@dataclass
class SqsSends:
    """SendMessage/SendMessageBatch requests and messages that reached moto, per queue name."""

    requests: Counter[str] = field(default_factory=Counter)
    messages: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def counting_sqs_sends() -> Iterator[SqsSends]:
    """Count sends at moto's SQS front door (moto server runs in this process, so its classes are ours)."""
    sends = SqsSends()
    originals: dict[str, Callable[..., Any]] = {
        "send_message": SQSResponse.send_message,
        "send_message_batch": SQSResponse.send_message_batch,
    }

    def wrap(name: str) -> Callable[..., Any]:
        original = originals[name]

        def counted(self: SQSResponse) -> Any:
            queue = self._get_queue_name()
            size = len(self._get_param("Entries", [])) if name == "send_message_batch" else 1
            with sends.lock:
                sends.requests[queue] += 1
                sends.messages[queue] += size
            return original(self)

        return counted

    for name in originals:
        setattr(SQSResponse, name, wrap(name))
    try:
        yield sends
    finally:
        for name, original in originals.items():
            setattr(SQSResponse, name, original)


@dataclass(frozen=True)
class Workload:
    batches: list[list[dict[str, Any]]]
    valid_unique: set[tuple[str, str]]  # (customer_id, event id)
    duplicates: int
    invalid: int

    @property
    def total(self) -> int:
        return sum(len(batch) for batch in self.batches)


def build_workload(
    events: int, batch_size: int, duplicate_rate: float, invalid_rate: float, customers: int, seed: int
) -> Workload:
    """N events: mostly valid and unique, some re-sent (same id, same content; within a batch and across
    batches), some invalid (older than the 35-day limit)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    flat: list[dict[str, Any]] = []
    originals: list[dict[str, Any]] = []
    valid_unique: set[tuple[str, str]] = set()
    duplicates = invalid = 0
    for index in range(events):
        roll = rng.random()
        customer = f"cus_{rng.randrange(customers):04d}"
        if originals and roll < duplicate_rate:
            event = dict(rng.choice(originals[-2 * batch_size :]))
            duplicates += 1
        elif roll < duplicate_rate + invalid_rate:
            too_old = now - timedelta(days=400)
            event = {
                "id": f"bad_{index:07d}",
                "customer_id": customer,
                "type": "api.call",
                "timestamp": _ts(too_old),
            }
            invalid += 1
        else:
            event = {
                "id": f"evt_{index:07d}",
                "customer_id": customer,
                "type": "api.call",
                "timestamp": _ts(now - timedelta(seconds=rng.randrange(3600))),
                "properties": {"tokens": rng.randrange(1, 5000), "region": rng.choice(["eu", "us"])},
            }
            originals.append(event)
            valid_unique.add((customer, event["id"]))
        flat.append(event)
    return Workload(
        batches=[flat[i : i + batch_size] for i in range(0, len(flat), batch_size)],
        valid_unique=valid_unique,
        duplicates=duplicates,
        invalid=invalid,
    )


def _ts(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Sent:
    accepted: int = 0
    rejected: int = 0
    statuses: Counter[int] = field(default_factory=Counter)


def send_all(api_url: str, key: str, batches: list[list[dict[str, Any]]], concurrency: int) -> Sent:
    sent = Sent()
    lock = threading.Lock()
    session_local = threading.local()

    def post(batch: list[dict[str, Any]]) -> None:
        session = getattr(session_local, "session", None)
        if session is None:
            session = session_local.session = requests.Session()
        for _attempt in range(20):
            response = session.post(
                f"{api_url}/v1/events",
                json={"events": batch},
                headers={"Authorization": f"Bearer {key}"},
                timeout=120,
            )
            if response.status_code != 429:
                break
            time.sleep(float(response.headers.get("Retry-After", "1")))
        with lock:
            sent.statuses[response.status_code] += 1
            if response.status_code == 202:
                body = response.json()
                sent.accepted += body["accepted"]
                sent.rejected += len(body["rejected"])

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(post, batches))
    return sent


def stored_events(endpoint_url: str, table: str, tenant_id: str) -> Counter[tuple[str, str]]:
    """Every stored (customer_id, event id) of the tenant, with how many items hold it."""
    # The runtime has pointed this process's AWS environment (fake credentials) at moto.
    client = boto3.client("dynamodb", endpoint_url=endpoint_url, region_name="us-east-1")
    stored: Counter[tuple[str, str]] = Counter()
    for page in client.get_paginator("scan").paginate(
        TableName=table,
        FilterExpression="tenant_id = :t",
        ExpressionAttributeValues={":t": {"S": tenant_id}},
        ProjectionExpression="customer_id, event_id",
    ):
        for item in page["Items"]:
            stored[(item["customer_id"]["S"], item["event_id"]["S"])] += 1
    return stored


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument(
        "--duplicates", type=float, default=0.05, help="share of re-sent events (default 0.05)"
    )
    parser.add_argument("--invalid", type=float, default=0.02, help="share of invalid events (default 0.02)")
    parser.add_argument("--customers", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=4, help="parallel HTTP clients (default 4)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    args = parser.parse_args(argv)

    workload = build_workload(
        args.events, args.batch_size, args.duplicates, args.invalid, args.customers, args.seed
    )
    print(
        f"workload: {workload.total} events in {len(workload.batches)} batches of up to "
        f"{args.batch_size}; {workload.duplicates} re-sent, {workload.invalid} invalid, "
        f"{len(workload.valid_unique)} valid unique"
    )
    with counting_sqs_sends() as sends:
        runtime = LocalRuntime(port=0, moto_port=0)
        started = time.perf_counter()
        runtime.start()
        print(
            f"runtime started in {time.perf_counter() - started:.2f} s "
            f"(API {runtime.api_url}, moto {runtime.endpoint_url})"
        )
        try:
            queue_name = runtime.function_env["INGEST_QUEUE_URL"].rsplit("/", 1)[1]
            t0 = time.perf_counter()
            sent = send_all(runtime.api_url, runtime.ingest_key, workload.batches, args.concurrency)
            t_api = time.perf_counter() - t0
            drained = runtime.wait_idle(args.drain_timeout)
            t_stored = time.perf_counter() - t0
            stored = stored_events(
                runtime.endpoint_url, runtime.function_env["EVENTS_TABLE_NAME"], runtime.tenant_id
            )
            pump = runtime.pump.stats if runtime.pump else None
        finally:
            runtime.stop()

    send_requests = sends.requests[queue_name]
    messages = sends.messages[queue_name]
    missing = workload.valid_unique - set(stored)
    unexpected = set(stored) - workload.valid_unique
    doubled = {key: n for key, n in stored.items() if n > 1}
    ok = (
        drained
        and not missing
        and not unexpected
        and not doubled
        and sent.accepted == workload.total - workload.invalid
        and sent.rejected == workload.invalid
    )
    print(f"HTTP statuses: {dict(sent.statuses)}; accepted {sent.accepted}, rejected {sent.rejected}")
    print(
        f"API accepted:        {workload.total / t_api:,.0f} events/s "
        f"({t_api:.2f} s for {workload.total} events)"
    )
    print(
        f"end to end:          {t_stored:.2f} s until all stored ({workload.total / t_stored:,.0f} events/s)"
    )
    print(
        f"SQS to ingest queue: {send_requests} send requests, {messages} messages = "
        f"{1000 * send_requests / workload.total:.2f} requests and {1000 * messages / workload.total:.2f} "
        "messages per 1000 events"
    )
    if pump is not None:
        print(f"pump:                {pump.batches} consumer invocations, {pump.failed} messages retried")
    print(
        f"check: {len(stored)} stored, {len(workload.valid_unique)} expected; missing {len(missing)}, "
        f"unexpected {len(unexpected)}, stored more than once {len(doubled)}, drained {drained} -> "
        + ("PASS: every valid unique event stored exactly once" if ok else "FAIL")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
