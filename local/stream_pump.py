"""The DynamoDB Streams event source mapping, played locally: read a table's stream, filter, invoke, settle.

What Lambda does with the billing table's stream (`OUTBOX_STREAM_FILTER`, `OUTBOX_BATCH_SIZE`,
`OUTBOX_RETRY_ATTEMPTS`, `OUTBOX_FAILURES_QUEUE`), done by a thread against moto's `dynamodbstreams` API:

- the table's `LatestStreamArn` is found with DescribeTable; every shard of the stream is read from
  TRIM_HORIZON (the mapping's starting position) by following `NextShardIterator`; DescribeStream is
  asked again now and then for new shards, and a shard whose iterator runs out (closed) is done; an
  expired iterator is replaced by one after the last record read;
- each record read is reshaped into the record of the Lambda event (`lambda_record`) and matched against
  the filter pattern (`matches`, the part of Lambda's event-filtering language the filter uses); a record
  that does not match never reaches the function, as with Lambda filtering;
- the matching records go to the function in batches of at most `batch_size`, one batch at a time per
  shard, in order. ReportBatchItemFailures: the function answers `{"batchItemFailures": [{"itemIdentifier":
  <SequenceNumber>}]}`; the records before the lowest failed one are done, and the batch is retried from it
  after `retry_delay_seconds`. A function error (or an answer that names a record not in the batch) fails
  the whole batch; with `bisect_on_error` (the CDK app's BisectBatchOnFunctionError) the retry takes the
  first half of it, halving again on each error, so that a record that always fails ends up alone. After
  `retry_attempts` retries (Lambda's MaximumRetryAttempts: the first try and that many retries; here every
  failed try of the records at the shard's checkpoint counts, halvings included) a description of the
  batch goes to the on-failure queue, shaped as Lambda's on-failure destination record
  (`DDBStreamBatchInfo`, plus an `error` message attribute), and the shard moves on past it.

How moto's GetRecords answers differ from the stream records Lambda hands to a function, and what
`lambda_record` does about it: boto3 parses `ApproximateCreationDateTime` into a datetime (Lambda sends
epoch seconds: converted back) and binary attribute values (`B`, `BS`) into bytes (Lambda sends base64:
encoded back); moto's records carry no `eventSourceARN` (added: the stream ARN, as Lambda adds it) and
always say `awsRegion` us-east-1 (replaced by the pump's region). moto keeps one shard per stream that
never closes; its sequence numbers are increasing decimal strings, as in AWS. moto keeps every shard
iterator it ever handed out; `forget_iterator` (the runtime passes one that drops it from moto's
in-process backend) keeps a long-running pump from growing moto's memory with each poll.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("billing.local.stream_pump")

FunctionCall = Callable[[dict[str, Any]], Any]

# Lambda polls each shard about four times a second.
DEFAULT_POLL_INTERVAL_SECONDS = 0.25
# How often the stream is described again to find new shards.
SHARD_DISCOVERY_SECONDS = 5.0
# Most records one GetRecords returns (the API's limit).
GET_RECORDS_LIMIT = 1000


# ---- event filtering ---------------------------------------------------------------------------------------


def check_pattern(pattern: Any, path: str = "") -> None:
    """Refuse a filter pattern that uses more of Lambda's filter language than `matches` implements.

    Implemented: nested objects, and lists of exact values (strings, numbers, booleans, null) meaning "one
    of these". Content filters (`prefix`, `numeric`, `anything-but`, `exists`, ...) are not.
    """
    if not isinstance(pattern, Mapping) or not pattern:
        raise ValueError(f"filter pattern {path or '(root)'}: expected a non-empty object")
    for key, value in pattern.items():
        where = f"{path}.{key}" if path else str(key)
        if isinstance(value, Mapping):
            check_pattern(value, where)
        elif isinstance(value, list) and value:
            for allowed in value:
                if isinstance(allowed, Mapping | list):
                    raise ValueError(f"filter pattern {where}: content filters are not supported here")
        else:
            raise ValueError(f"filter pattern {where}: expected an object or a non-empty list of values")


def _same_value(allowed: Any, actual: Any) -> bool:
    # JSON equality: a boolean is not a number, and numbers compare by value (1 == 1.0).
    if isinstance(allowed, bool) or isinstance(actual, bool):
        return isinstance(allowed, bool) and isinstance(actual, bool) and allowed is actual
    if isinstance(allowed, int | float) and isinstance(actual, int | float):
        return float(allowed) == float(actual)
    if allowed is None or actual is None:
        return allowed is None and actual is None
    return type(allowed) is type(actual) and bool(allowed == actual)


def matches(pattern: Mapping[str, Any], event: Any) -> bool:
    """Whether `event` matches the filter pattern, as Lambda event filtering decides it.

    Every key of the pattern must be in the event (a missing key is no match); an object in the pattern
    matches an object in the event recursively; a list in the pattern matches when the event's value is
    one of its values, or, for a list in the event, when any of the event's values is.
    """
    if not isinstance(event, Mapping):
        return False
    for key, expected in pattern.items():
        if key not in event:
            return False
        actual = event[key]
        if isinstance(expected, Mapping):
            if not matches(expected, actual):
                return False
        else:
            candidates = actual if isinstance(actual, list) else [actual]
            if isinstance(actual, Mapping) or not any(
                not isinstance(candidate, Mapping | list) and _same_value(allowed, candidate)
                for allowed in expected
                for candidate in candidates
            ):
                return False
    return True


# ---- records -----------------------------------------------------------------------------------------------


def _b64(data: Any) -> str:
    if isinstance(data, str):
        return data  # already base64 (a client that does not decode binaries)
    return base64.b64encode(bytes(data)).decode("ascii")


def attribute_value(value: Mapping[str, Any]) -> dict[str, Any]:
    """A DynamoDB attribute value as the Lambda event carries it: binaries base64-encoded, at any depth."""
    converted: dict[str, Any] = {}
    for kind, inner in value.items():
        if kind == "B":
            converted[kind] = _b64(inner)
        elif kind == "BS":
            converted[kind] = [_b64(item) for item in inner]
        elif kind == "M":
            converted[kind] = {name: attribute_value(item) for name, item in inner.items()}
        elif kind == "L":
            converted[kind] = [attribute_value(item) for item in inner]
        else:
            converted[kind] = inner
    return converted


def _image(image: Mapping[str, Any]) -> dict[str, Any]:
    return {name: attribute_value(value) for name, value in image.items()}


def _epoch_seconds(value: Any) -> int:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(moment.timestamp())
    return int(float(value))


def lambda_record(raw: Mapping[str, Any], *, stream_arn: str, region: str) -> dict[str, Any]:
    """One record of the DynamoDB stream event Lambda hands to a function, from a GetRecords record."""
    stream = raw["dynamodb"]
    dynamodb: dict[str, Any] = {}
    if "ApproximateCreationDateTime" in stream:
        dynamodb["ApproximateCreationDateTime"] = _epoch_seconds(stream["ApproximateCreationDateTime"])
    dynamodb["Keys"] = _image(stream.get("Keys") or {})
    if "NewImage" in stream:
        dynamodb["NewImage"] = _image(stream["NewImage"])
    if "OldImage" in stream:
        dynamodb["OldImage"] = _image(stream["OldImage"])
    dynamodb["SequenceNumber"] = str(stream["SequenceNumber"])
    dynamodb["SizeBytes"] = int(stream.get("SizeBytes", 0))
    dynamodb["StreamViewType"] = stream.get("StreamViewType", "")
    record: dict[str, Any] = {
        "eventID": raw["eventID"],
        "eventName": raw["eventName"],
        "eventVersion": raw.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }
    if "userIdentity" in raw:  # TTL deletions
        record["userIdentity"] = dict(raw["userIdentity"])
    return record


def failed_from(result: Any, sequence_numbers: list[str]) -> int | None:
    """Where to retry a batch from (an index into it), read from a ReportBatchItemFailures answer.

    As in AWS: no failures → None (all done); otherwise the lowest failed record. An answer that is not an
    object, a `batchItemFailures` that is not a list, or an identifier that is empty or not in the batch
    fails the whole batch (0).
    """
    if result is None:
        return None
    if not isinstance(result, Mapping):
        return 0
    failures = result.get("batchItemFailures")
    if failures is None:
        return None
    if not isinstance(failures, list):
        return 0
    positions = {number: index for index, number in enumerate(sequence_numbers)}
    lowest: int | None = None
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not identifier or identifier not in positions:
            return 0
        index = positions[identifier]
        lowest = index if lowest is None else min(lowest, index)
    return lowest


def _instant(epoch_seconds: Any) -> str:
    moment = datetime.fromtimestamp(int(epoch_seconds), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def failure_record(
    batch: list[dict[str, Any]],
    *,
    shard_id: str,
    stream_arn: str,
    function_arn: str,
    invoke_count: int,
    function_error: bool,
) -> dict[str, Any]:
    """What Lambda sends to a stream mapping's on-failure destination when it gives up on a batch."""
    first, last = batch[0]["dynamodb"], batch[-1]["dynamodb"]
    response: dict[str, Any] = {"statusCode": 200, "executedVersion": "$LATEST"}
    if function_error:
        response["functionError"] = "Unhandled"
    return {
        "requestContext": {
            "requestId": str(uuid.uuid4()),
            "functionArn": function_arn,
            "condition": "RetryAttemptsExhausted",
            "approximateInvokeCount": invoke_count,
        },
        "responseContext": response,
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "DDBStreamBatchInfo": {
            "shardId": shard_id,
            "startSequenceNumber": first["SequenceNumber"],
            "endSequenceNumber": last["SequenceNumber"],
            "approximateArrivalOfFirstRecord": _instant(first.get("ApproximateCreationDateTime", 0)),
            "approximateArrivalOfLastRecord": _instant(last.get("ApproximateCreationDateTime", 0)),
            "batchSize": len(batch),
            "streamArn": stream_arn,
        },
    }


# ---- the pump ----------------------------------------------------------------------------------------------


@dataclass
class StreamStats:
    records_read: int = 0
    records_filtered_out: int = 0
    batches: int = 0
    records_delivered: int = 0  # handed to the function and done (not to be retried)
    retries: int = 0
    function_errors: int = 0
    batches_given_up: int = 0
    last_error: str | None = field(default=None, repr=False)


@dataclass
class _Shard:
    shard_id: str
    iterator: str | None
    pending: list[dict[str, Any]] = field(default_factory=list)  # matching records not yet done
    last_read: str | None = None  # the sequence number of the last record read (matching or not)
    retry_at: float = 0.0
    attempts: int = 0  # failed tries of the batch that starts at pending[0]
    limit: int = 0  # the size of the next batch (0: the pump's batch size); halved by bisection
    closed: bool = False


class StreamPump:
    """A background thread that feeds a table's stream to one function, like an event source mapping."""

    def __init__(
        self,
        dynamodb: Any,
        streams: Any,
        *,
        table_name: str,
        function: FunctionCall,
        function_name: str,
        filter_pattern: Mapping[str, Any] | None,
        batch_size: int = 100,
        retry_attempts: int = 10,
        bisect_on_error: bool = True,
        retry_delay_seconds: float = 1.0,
        sqs: Any = None,
        on_failure_queue_url: str | None = None,
        poll_interval_seconds: float = DEFAULT_POLL_INTERVAL_SECONDS,
        region: str = "us-east-1",
        name: str = "outbox",
        forget_iterator: Callable[[str], None] | None = None,
    ) -> None:
        if filter_pattern is not None:
            check_pattern(filter_pattern)
        self._dynamodb = dynamodb
        self._streams = streams
        self.table_name = table_name
        self._function = function
        self.filter_pattern = filter_pattern
        self.batch_size = batch_size
        self.retry_attempts = retry_attempts
        self.bisect_on_error = bisect_on_error
        self.retry_delay_seconds = retry_delay_seconds
        self._sqs = sqs
        self.on_failure_queue_url = on_failure_queue_url
        self.poll_interval_seconds = poll_interval_seconds
        self.region = region
        self.name = name
        self._forget_iterator = forget_iterator
        table = dynamodb.describe_table(TableName=table_name)["Table"]
        stream_arn = table.get("LatestStreamArn")
        if not stream_arn:
            raise ValueError(f"table {table_name} has no stream")
        self.stream_arn: str = stream_arn
        account = self.stream_arn.split(":")[4]
        self.function_arn = f"arn:aws:lambda:{region}:{account}:function:{function_name}"
        self.stats = StreamStats()
        self._shards: dict[str, _Shard] = {}
        self._next_discovery = 0.0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._quiet = threading.Condition(self._lock)
        self._quiet_cycles = 0  # full cycles that found nothing to read and nothing pending
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------

    def start(self) -> StreamPump:
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"billing-local-stream-{self.name}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.poll_once()
            except Exception as exc:
                if self._stop.is_set():
                    return
                log.warning("stream pump %s: polling failed: %s", self.name, exc)
                self._stop.wait(1.0)
                continue
            if not worked:
                self._stop.wait(self.poll_interval_seconds)

    # -- one cycle -------------------------------------------------------------------------------------

    def discover_shards(self) -> None:
        """Describe the stream; start reading each shard not seen yet from TRIM_HORIZON."""
        description: dict[str, Any] = {}
        shards: list[dict[str, Any]] = []
        start: str | None = None
        while True:
            kwargs: dict[str, Any] = {"StreamArn": self.stream_arn}
            if start:
                kwargs["ExclusiveStartShardId"] = start
            description = self._streams.describe_stream(**kwargs)["StreamDescription"]
            shards.extend(description.get("Shards") or [])
            start = description.get("LastEvaluatedShardId")
            if not start:
                break
        known = set(self._shards)
        for shard in shards:
            # A child shard waits for its parent to be read to the end, as Lambda orders them.
            parent = shard.get("ParentShardId")
            shard_id = shard["ShardId"]
            if shard_id in known:
                continue
            if parent and parent in self._shards and not self._shards[parent].closed:
                continue
            iterator = self._streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            self._shards[shard_id] = _Shard(shard_id, iterator)

    def poll_once(self) -> bool:
        """Read every shard once and hand the function what is due; True if anything was read or sent."""
        now = time.monotonic()
        if now >= self._next_discovery:
            self.discover_shards()
            self._next_discovery = now + SHARD_DISCOVERY_SECONDS
        worked = False
        waiting = False
        for shard in list(self._shards.values()):
            if self._stop.is_set():
                return worked
            if not shard.pending and not shard.closed:
                worked |= self._read(shard)
            if shard.pending:
                if time.monotonic() >= shard.retry_at:
                    self._deliver(shard)
                    worked = True
                waiting = waiting or bool(shard.pending)
        if not worked and not waiting:
            with self._quiet:
                self._quiet_cycles += 1
                self._quiet.notify_all()
        return worked

    def _read(self, shard: _Shard) -> bool:
        assert shard.iterator is not None
        current = shard.iterator
        try:
            response = self._streams.get_records(ShardIterator=current, Limit=GET_RECORDS_LIMIT)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code != "ExpiredIteratorException":
                raise
            # Iterators expire (15 minutes in AWS): take a new one from the last record read.
            position: dict[str, Any] = (
                {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": shard.last_read}
                if shard.last_read
                else {"ShardIteratorType": "TRIM_HORIZON"}
            )
            shard.iterator = self._streams.get_shard_iterator(
                StreamArn=self.stream_arn, ShardId=shard.shard_id, **position
            )["ShardIterator"]
            return True
        records = response.get("Records") or []
        shard.iterator = response.get("NextShardIterator")
        if self._forget_iterator is not None and shard.iterator != current:
            self._forget_iterator(current)
        if shard.iterator is None:
            shard.closed = True  # the shard was split or the stream disabled: read to its end
            self._next_discovery = 0.0
        if not records:
            return False
        for raw in records:
            record = lambda_record(raw, stream_arn=self.stream_arn, region=self.region)
            shard.last_read = record["dynamodb"]["SequenceNumber"]
            self.stats.records_read += 1
            if self.filter_pattern is None or matches(self.filter_pattern, record):
                shard.pending.append(record)
            else:
                self.stats.records_filtered_out += 1
        return True

    def _deliver(self, shard: _Shard) -> None:
        batch = shard.pending[: shard.limit or self.batch_size]
        numbers = [record["dynamodb"]["SequenceNumber"] for record in batch]
        error: BaseException | None = None
        try:
            failed = failed_from(self._function({"Records": batch}), numbers)
        except Exception as exc:
            error = exc
            failed = 0
            self.stats.function_errors += 1
            self.stats.last_error = repr(exc)
            log.error(
                "stream pump %s: the function failed (%s); the batch will be retried\n%s",
                self.name,
                exc,
                getattr(exc, "stack", ""),
            )
        self.stats.batches += 1
        done = len(batch) if failed is None else failed
        self.stats.records_delivered += done
        if failed is None:
            del shard.pending[: len(batch)]
            shard.attempts, shard.limit, shard.retry_at = 0, 0, 0.0
            return
        if failed > 0:
            # Progress: the records before the lowest failure are checkpointed; a new batch starts there.
            del shard.pending[:failed]
            shard.attempts, shard.limit = 1, 0
        else:
            shard.attempts += 1
            if error is not None and self.bisect_on_error:
                shard.limit = max(1, (len(batch) + 1) // 2)
        if shard.attempts > self.retry_attempts:
            self._give_up(shard, batch[failed:], error)  # the records of the last try that failed
            return
        self.stats.retries += 1
        shard.retry_at = time.monotonic() + self.retry_delay_seconds

    def _give_up(self, shard: _Shard, batch: list[dict[str, Any]], error: BaseException | None) -> None:
        """Retries exhausted: describe the batch to the on-failure queue and move past it."""
        self.stats.batches_given_up += 1
        record = failure_record(
            batch,
            shard_id=shard.shard_id,
            stream_arn=self.stream_arn,
            function_arn=self.function_arn,
            invoke_count=shard.attempts,
            function_error=error is not None,
        )
        reason = repr(error) if error is not None else "the function reported batch item failures"
        log.error(
            "stream pump %s: gave up on records %s..%s of %s after %d tries: %s",
            self.name,
            batch[0]["dynamodb"]["SequenceNumber"],
            batch[-1]["dynamodb"]["SequenceNumber"],
            shard.shard_id,
            shard.attempts,
            reason,
        )
        if self._sqs is not None and self.on_failure_queue_url:
            self._sqs.send_message(
                QueueUrl=self.on_failure_queue_url,
                MessageBody=json.dumps(record),
                MessageAttributes={"error": {"DataType": "String", "StringValue": reason[:1000]}},
            )
        del shard.pending[: len(batch)]
        shard.attempts, shard.limit, shard.retry_at = 0, 0, 0.0

    # -- waiting ---------------------------------------------------------------------------------------

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until the stream is read to its end and every matching record is done (or given up).

        Two whole quiet cycles after the call: one that began after it, so a write made before the call
        has been read. False on timeout (or if the pump is not running).
        """
        deadline = time.monotonic() + timeout
        with self._quiet:
            target = self._quiet_cycles + 2
            while self._quiet_cycles < target:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return False
                self._quiet.wait(min(left, 0.5))
        return True
