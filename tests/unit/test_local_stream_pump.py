"""The pure parts of the local DynamoDB Streams event source mapping: the filter matcher, the Lambda record
built from a GetRecords record, how a ReportBatchItemFailures answer is read, the on-failure record; and
the batching, retry and give-up rules, driven with a fake stream."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from billing import resources
from local.stream_pump import (
    StreamPump,
    check_pattern,
    failed_from,
    failure_record,
    lambda_record,
    matches,
)
from tests.conftest import load_event

STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/billing-main/stream/2026-12-01T00:00:00.000"
SHARD = "shardId-00000001541626099285-f35f62ef"
FILTER = resources.OUTBOX_STREAM_FILTER


def outbox_record(event_name: str = "INSERT", entity: str = "outbox_event") -> dict[str, Any]:
    record: dict[str, Any] = load_event("dynamodb_outbox_stream.json")["Records"][0]
    record["eventName"] = event_name
    record["dynamodb"]["NewImage"]["entity"] = {"S": entity}
    return record


# ---- the filter matcher ------------------------------------------------------------------------------------


def test_the_outbox_filter_lets_an_outbox_insert_through() -> None:
    assert matches(FILTER, outbox_record())


@pytest.mark.parametrize(
    "record",
    [
        outbox_record(event_name="MODIFY"),
        outbox_record(event_name="REMOVE"),
        outbox_record(entity="customer"),
        outbox_record(entity="outbox_head"),
        outbox_record(entity="outbox_event_id"),
    ],
    ids=["modify", "remove", "customer", "head", "claim"],
)
def test_the_outbox_filter_keeps_everything_else_away(record: dict[str, Any]) -> None:
    assert not matches(FILTER, record)


def test_a_missing_key_is_no_match() -> None:
    no_image = outbox_record()
    del no_image["dynamodb"]["NewImage"]  # a REMOVE of a NEW_IMAGE stream has no image
    no_entity = outbox_record()
    del no_entity["dynamodb"]["NewImage"]["entity"]

    assert not matches(FILTER, no_image)
    assert not matches(FILTER, no_entity)
    assert not matches({"eventName": ["INSERT"]}, {})


def test_an_attribute_of_another_type_is_no_match() -> None:
    record = outbox_record()
    record["dynamodb"]["NewImage"]["entity"] = {"N": "1"}

    assert not matches(FILTER, record)


@pytest.mark.parametrize(
    ("pattern", "event", "expected"),
    [
        ({"a": ["x", "y"]}, {"a": "y"}, True),  # a list: one of these values
        ({"a": ["x"]}, {"a": "X"}, False),  # exact, case-sensitive
        ({"a": ["x"]}, {"a": ["z", "x"]}, True),  # an array in the event: any of its values
        ({"a": ["x"]}, {"a": []}, False),
        ({"a": [1]}, {"a": 1.0}, True),  # numbers compare by value
        ({"a": [1]}, {"a": "1"}, False),  # a string is not a number
        ({"a": [1]}, {"a": True}, False),  # nor is a boolean
        ({"a": [True]}, {"a": True}, True),
        ({"a": [None]}, {"a": None}, True),
        ({"a": [None]}, {}, False),
        ({"a": ["x"]}, {"a": {"S": "x"}}, False),  # an object is never one of the values
        ({"a": {"b": ["x"]}}, {"a": "x"}, False),  # a nested pattern needs an object
        ({"a": {"b": ["x"]}}, {"a": {"b": "x", "c": 1}, "d": 2}, True),  # other keys do not matter
        ({"a": ["x"], "b": ["y"]}, {"a": "x", "b": "z"}, False),  # every key must match
    ],
)
def test_the_matcher_follows_lambda_event_filtering(pattern: Any, event: Any, expected: bool) -> None:
    check_pattern(pattern)

    assert matches(pattern, event) is expected


@pytest.mark.parametrize(
    "pattern",
    [{}, {"a": []}, {"a": "x"}, {"a": [{"prefix": "x"}]}, {"a": [{"anything-but": ["x"]}]}, {"a": {}}],
)
def test_a_pattern_beyond_the_implemented_language_is_refused(pattern: Any) -> None:
    with pytest.raises(ValueError, match="filter pattern"):
        check_pattern(pattern)


def test_the_outbox_filter_is_within_the_implemented_language() -> None:
    check_pattern(FILTER)


# ---- records -----------------------------------------------------------------------------------------------


def a_moto_record(sequence: int = 1100000000017454423009, **image: Any) -> dict[str, Any]:
    """A GetRecords record as boto3 returns moto's: a datetime, bytes for binaries, no eventSourceARN."""
    new_image = {
        "pk": {"S": "T#acme#OUTBOX#cus_42"},
        "sk": {"S": "EVENT#000000000001"},
        "entity": {"S": "outbox_event"},
        **image,
    }
    return {
        "eventID": "b010b058f32547e28b3526f03c47c046",
        "eventName": "INSERT",
        "eventVersion": "1.0",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": {
            "StreamViewType": "NEW_IMAGE",
            "ApproximateCreationDateTime": datetime(2026, 12, 2, 16, 27, 23, 320000, tzinfo=UTC),
            "SequenceNumber": str(sequence),
            "SizeBytes": 417,
            "Keys": {"pk": new_image["pk"], "sk": new_image["sk"]},
            "NewImage": new_image,
        },
    }


def test_a_record_has_the_shape_lambda_hands_to_the_function() -> None:
    record = lambda_record(a_moto_record(), stream_arn=STREAM_ARN, region="eu-west-1")

    assert list(record) == [
        "eventID", "eventName", "eventVersion", "eventSource", "awsRegion", "dynamodb", "eventSourceARN",
    ]  # fmt: skip
    assert list(record["dynamodb"]) == [
        "ApproximateCreationDateTime", "Keys", "NewImage", "SequenceNumber", "SizeBytes", "StreamViewType",
    ]  # fmt: skip
    assert record["eventSourceARN"] == STREAM_ARN
    assert record["awsRegion"] == "eu-west-1"
    assert record["eventSource"] == "aws:dynamodb"
    assert record["dynamodb"]["ApproximateCreationDateTime"] == 1796228843  # epoch seconds, as Lambda's
    assert record["dynamodb"]["SequenceNumber"] == "1100000000017454423009"
    assert record["dynamodb"]["Keys"] == {
        "pk": {"S": "T#acme#OUTBOX#cus_42"},
        "sk": {"S": "EVENT#000000000001"},
    }
    json.dumps(record)  # JSON all the way down: it crosses to the worker process as JSON


def test_binary_values_are_base64_at_any_depth() -> None:
    raw = a_moto_record(
        blob={"B": b"\x00\x01"},
        blobs={"BS": [b"\xff", b"ab"]},
        nested={"M": {"inner": {"L": [{"B": b"\x02"}, {"S": "s"}, {"N": "1"}]}}},
        flag={"BOOL": False},
        nothing={"NULL": True},
    )

    image = lambda_record(raw, stream_arn=STREAM_ARN, region="us-east-1")["dynamodb"]["NewImage"]

    assert image["blob"] == {"B": "AAE="}
    assert image["blobs"] == {"BS": ["/w==", "YWI="]}
    assert image["nested"] == {"M": {"inner": {"L": [{"B": "Ag=="}, {"S": "s"}, {"N": "1"}]}}}
    assert image["flag"] == {"BOOL": False}
    assert image["nothing"] == {"NULL": True}


def test_a_remove_record_has_no_new_image() -> None:
    raw = a_moto_record()
    raw["eventName"] = "REMOVE"
    del raw["dynamodb"]["NewImage"]

    record = lambda_record(raw, stream_arn=STREAM_ARN, region="us-east-1")

    assert "NewImage" not in record["dynamodb"]
    assert not matches(FILTER, record)


@pytest.mark.parametrize(
    ("result", "expected"),
    [
        ({"batchItemFailures": []}, None),
        (None, None),
        ({}, None),
        ({"batchItemFailures": [{"itemIdentifier": "3"}]}, 2),
        ({"batchItemFailures": [{"itemIdentifier": "3"}, {"itemIdentifier": "2"}]}, 1),  # the lowest
        ({"batchItemFailures": [{"itemIdentifier": "9"}]}, 0),  # not in the batch: all of it
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, 0),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, 0),
        ({"batchItemFailures": "2"}, 0),
        ("junk", 0),
    ],
)
def test_batch_item_failures_are_read_as_aws_reads_them_for_streams(
    result: Any, expected: int | None
) -> None:
    assert failed_from(result, ["1", "2", "3"]) == expected


def test_the_on_failure_record_describes_the_batch_as_lambda_does() -> None:
    batch = [
        lambda_record(a_moto_record(sequence), stream_arn=STREAM_ARN, region="us-east-1")
        for sequence in (11, 12, 13)
    ]

    record = failure_record(
        batch,
        shard_id=SHARD,
        stream_arn=STREAM_ARN,
        function_arn="arn:aws:lambda:us-east-1:123456789012:function:billing-outbox-dispatcher",
        invoke_count=11,
        function_error=True,
    )

    assert record["DDBStreamBatchInfo"] == {
        "shardId": SHARD,
        "startSequenceNumber": "11",
        "endSequenceNumber": "13",
        "approximateArrivalOfFirstRecord": "2026-12-02T16:27:23Z",
        "approximateArrivalOfLastRecord": "2026-12-02T16:27:23Z",
        "batchSize": 3,
        "streamArn": STREAM_ARN,
    }
    assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 11
    assert record["requestContext"]["functionArn"].endswith(":function:billing-outbox-dispatcher")
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["version"] == "1.0"


# ---- the pump, against a fake stream -----------------------------------------------------------------------


class FakeStreams:
    """One shard; `put` appends a record; GetRecords returns what follows the iterator's position."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.issued = 0

    def put(self, entity: str = "outbox_event", event_name: str = "INSERT") -> str:
        sequence = 1000 + len(self.records)
        record = a_moto_record(sequence, entity={"S": entity})
        record["eventName"] = event_name
        self.records.append(record)
        return str(sequence)

    def describe_table(self, TableName: str) -> dict[str, Any]:
        return {"Table": {"TableName": TableName, "LatestStreamArn": STREAM_ARN}}

    def describe_stream(self, StreamArn: str, **_: Any) -> dict[str, Any]:
        return {"StreamDescription": {"Shards": [{"ShardId": SHARD}]}}

    def get_shard_iterator(self, **_: Any) -> dict[str, Any]:
        return {"ShardIterator": "0"}

    def get_records(self, ShardIterator: str, Limit: int) -> dict[str, Any]:
        position = int(ShardIterator)
        records = self.records[position : position + Limit]
        return {"Records": records, "NextShardIterator": str(position + len(records))}


class FakeSqs:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_message(self, **kwargs: Any) -> None:
        self.sent.append(kwargs)


class Dispatcher:
    """Fails the records whose sequence is in `fail` (`raise_times` times by raising first)."""

    def __init__(self, fail: set[str] | None = None, raise_times: int = 0) -> None:
        self.fail = fail or set()
        self.raise_times = raise_times
        self.batches: list[list[str]] = []

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        numbers = [record["dynamodb"]["SequenceNumber"] for record in event["Records"]]
        self.batches.append(numbers)
        if self.raise_times:
            self.raise_times -= 1
            raise RuntimeError("the dispatcher crashed")
        return {"batchItemFailures": [{"itemIdentifier": n} for n in numbers if n in self.fail]}


def a_pump(
    streams: FakeStreams, function: Dispatcher, sqs: FakeSqs, *, batch_size: int = 3, retry_attempts: int = 2
) -> StreamPump:
    return StreamPump(
        streams,
        streams,
        table_name="billing-main",
        function=function,
        function_name="billing-outbox-dispatcher",
        filter_pattern=FILTER,
        batch_size=batch_size,
        retry_attempts=retry_attempts,
        retry_delay_seconds=0,
        sqs=sqs,
        on_failure_queue_url="https://queue/failures",
    )


def run(pump: StreamPump, cycles: int = 30) -> None:
    for _ in range(cycles):
        pump.poll_once()


def test_only_matching_records_reach_the_function_in_order_and_in_batches() -> None:
    streams, sqs, function = FakeStreams(), FakeSqs(), Dispatcher()
    wanted = []
    for index in range(8):
        streams.put(entity="customer")  # filtered out
        wanted.append(streams.put())
        if index % 3 == 0:
            streams.put(event_name="MODIFY")  # filtered out
    pump = a_pump(streams, function, sqs)

    run(pump)

    assert function.batches == [wanted[0:3], wanted[3:6], wanted[6:8]]
    assert pump.stats.records_filtered_out == 8 + 3
    assert sqs.sent == []


def test_a_partial_failure_retries_from_the_lowest_failed_record() -> None:
    streams, sqs = FakeStreams(), FakeSqs()
    numbers = [streams.put() for _ in range(5)]
    function = Dispatcher()
    function.fail = {numbers[1]}
    pump = a_pump(streams, function, sqs, retry_attempts=5)

    pump.poll_once()
    function.fail = set()
    run(pump)

    assert function.batches == [numbers[0:3], numbers[1:4], numbers[4:5]]
    assert sqs.sent == []


def test_a_function_error_bisects_the_batch_and_retries_it() -> None:
    streams, sqs = FakeStreams(), FakeSqs()
    numbers = [streams.put() for _ in range(3)]
    function = Dispatcher(raise_times=2)
    pump = a_pump(streams, function, sqs, retry_attempts=5)

    run(pump)

    assert function.batches == [numbers, numbers[0:2], numbers[0:1], numbers[1:3]]
    assert pump.stats.function_errors == 2
    assert sqs.sent == []


def test_a_record_that_always_fails_is_described_on_the_failure_queue_after_the_retries() -> None:
    streams, sqs = FakeStreams(), FakeSqs()
    numbers = [streams.put() for _ in range(4)]
    function = Dispatcher(fail={numbers[1]})
    pump = a_pump(streams, function, sqs, retry_attempts=2)

    run(pump)

    # The first try (records 0-2) and two retries from record 1, then the shard moves past the batch.
    assert function.batches == [numbers[0:3], numbers[1:4], numbers[1:4]]
    [message] = sqs.sent
    info = json.loads(message["MessageBody"])["DDBStreamBatchInfo"]
    assert (info["startSequenceNumber"], info["endSequenceNumber"], info["batchSize"]) == (
        numbers[1],
        numbers[3],
        3,
    )
    assert info["shardId"] == SHARD
    assert message["QueueUrl"] == "https://queue/failures"
    assert "batch item failures" in message["MessageAttributes"]["error"]["StringValue"]
    assert pump.stats.batches_given_up == 1


def test_a_crashing_function_ends_with_the_poison_record_alone_on_the_failure_queue() -> None:
    streams, sqs = FakeStreams(), FakeSqs()
    numbers = [streams.put() for _ in range(4)]

    class Poisoned(Dispatcher):
        def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
            batch = [record["dynamodb"]["SequenceNumber"] for record in event["Records"]]
            self.batches.append(batch)
            if numbers[0] in batch:
                raise RuntimeError("cannot read this record")
            return {"batchItemFailures": []}

    function = Poisoned()
    pump = a_pump(streams, function, sqs, batch_size=4, retry_attempts=4)

    run(pump)

    # Halved on each error down to the poison record alone, which then uses up the retries.
    assert function.batches[:5] == [numbers, numbers[0:2], numbers[0:1], numbers[0:1], numbers[0:1]]
    assert function.batches[5:] == [numbers[1:4]]
    [message] = sqs.sent
    body = json.loads(message["MessageBody"])
    assert body["DDBStreamBatchInfo"]["batchSize"] == 1
    assert body["DDBStreamBatchInfo"]["startSequenceNumber"] == numbers[0]
    assert body["responseContext"]["functionError"] == "Unhandled"
    assert "cannot read this record" in message["MessageAttributes"]["error"]["StringValue"]


def test_records_written_later_are_read_from_where_the_pump_left_off() -> None:
    streams, sqs, function = FakeStreams(), FakeSqs(), Dispatcher()
    first = streams.put()
    pump = a_pump(streams, function, sqs)
    run(pump, 3)
    second = streams.put()

    run(pump, 3)

    assert function.batches == [[first], [second]]


def test_a_table_without_a_stream_is_refused() -> None:
    streams = FakeStreams()
    streams.describe_table = lambda TableName: {"Table": {"TableName": TableName}}  # type: ignore[method-assign]

    with pytest.raises(ValueError, match="has no stream"):
        a_pump(streams, Dispatcher(), FakeSqs())


def test_an_expired_iterator_is_replaced_from_the_last_record_read() -> None:
    from botocore.exceptions import ClientError

    streams, sqs, function = FakeStreams(), FakeSqs(), Dispatcher()
    first = streams.put()
    pump = a_pump(streams, function, sqs)
    run(pump, 2)
    second = streams.put()
    asked: list[dict[str, Any]] = []
    real_get_records = streams.get_records

    def expire_once(ShardIterator: str, Limit: int) -> dict[str, Any]:
        if not asked:
            asked.append({})
            raise ClientError({"Error": {"Code": "ExpiredIteratorException"}}, "GetRecords")
        return real_get_records(ShardIterator, Limit)

    def new_iterator(**kwargs: Any) -> dict[str, Any]:
        asked.append(kwargs)
        return {"ShardIterator": str(int(kwargs["SequenceNumber"]) - 1000 + 1)}

    streams.get_records = expire_once  # type: ignore[method-assign]
    streams.get_shard_iterator = new_iterator  # type: ignore[method-assign]

    run(pump, 3)

    assert asked[1]["ShardIteratorType"] == "AFTER_SEQUENCE_NUMBER"
    assert asked[1]["SequenceNumber"] == first
    assert function.batches == [[first], [second]]
