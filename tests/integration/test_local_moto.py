"""The local AWS keeps DynamoDB's guarantees under concurrent writers, as the event runner has them."""

from __future__ import annotations

import contextlib
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from infra.local.resources import create_resources
from infra.local.stack import free_port, start_moto

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def deliveries() -> Iterator[tuple[Any, Any, str]]:
    port = free_port()
    process = start_moto(Path(tempfile.mkdtemp(prefix="moto-test-")), port)
    url = f"http://127.0.0.1:{port}"
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AWS_ACCESS_KEY_ID", "testing")
            env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            env.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
            names = create_resources(prefix="conc", endpoint_url=url)
            config = Config(max_pool_connections=32)
            dynamodb = boto3.client("dynamodb", endpoint_url=url, config=config, region_name="us-east-1")
            streams = boto3.client("dynamodbstreams", endpoint_url=url, region_name="us-east-1")
            yield dynamodb, streams, names["DELIVERIES_TABLE"]
    finally:
        process.stop()  # also when setting up failed


def test_only_one_of_many_concurrent_conditional_claims_wins(deliveries: tuple[Any, Any, str]) -> None:
    dynamodb, _, table = deliveries

    def claim(worker: int) -> bool:
        try:
            dynamodb.put_item(
                TableName=table,
                Item={"pk": {"S": "c"}, "sk": {"S": "+12025550000"}, "by": {"N": str(worker)}},
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError:
            return False
        return True

    with ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(claim, range(64))) == 1


def test_concurrent_writes_get_distinct_stream_sequence_numbers(deliveries: tuple[Any, Any, str]) -> None:
    dynamodb, streams, table = deliveries

    def write(n: int) -> None:
        dynamodb.put_item(TableName=table, Item={"pk": {"S": "s"}, "sk": {"S": f"+1202555{n:04d}"}})

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(write, range(400)))
    arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    keys: list[str] = []
    sequences: list[str] = []
    while iterator:
        answer = streams.get_records(ShardIterator=iterator, Limit=100)
        if not answer["Records"]:
            break
        keys += [r["dynamodb"]["Keys"]["sk"]["S"] for r in answer["Records"] if r["dynamodb"]["Keys"]["pk"]["S"] == "s"]
        sequences += [r["dynamodb"]["SequenceNumber"] for r in answer["Records"]]
        iterator = answer.get("NextShardIterator")
    assert len(keys) == len(set(keys)) == 400, "a stream reader must see each change once"
    assert len(sequences) == len(set(sequences))


def test_queries_on_a_sparse_index_race_no_writer_into_a_5xx(deliveries: tuple[Any, Any, str]) -> None:
    """Readers query the sparse `due` index while writers add and remove its range key (was a KeyError, a 500)."""
    dynamodb, _, table = deliveries
    url = dynamodb.meta.endpoint_url
    # No retries: a 500 must surface, not be retried away.
    client = boto3.client(
        "dynamodb",
        endpoint_url=url,
        region_name="us-east-1",
        config=Config(max_pool_connections=32, retries={"mode": "standard", "max_attempts": 1}),
    )
    count = 1000
    for start in range(0, count, 25):
        client.batch_write_item(
            RequestItems={
                table: [
                    {"PutRequest": {"Item": {"pk": {"S": "race"}, "sk": {"S": f"r{n:04d}"}, "due_at": {"N": str(n)}}}}
                    for n in range(start, start + 25)
                ]
            }
        )
    errors: list[str] = []
    pages: list[list[dict[str, Any]]] = []

    def write(worker: int) -> None:
        for n in range(120):
            key = {"pk": {"S": "race"}, "sk": {"S": f"r{(worker * 251 + n * 7) % count:04d}"}}
            try:
                if n % 2:
                    client.update_item(TableName=table, Key=key, UpdateExpression="REMOVE due_at")
                else:
                    client.update_item(
                        TableName=table,
                        Key=key,
                        UpdateExpression="SET due_at = :d, n = :d",
                        ExpressionAttributeValues={":d": {"N": str(n)}},
                    )
            except ClientError as exc:
                errors.append(repr(exc))

    def read(worker: int) -> None:
        for n in range(60):
            try:
                pages.append(
                    client.query(
                        TableName=table,
                        IndexName="due",
                        Limit=20,
                        ScanIndexForward=bool(n % 2),
                        KeyConditionExpression="pk = :p AND due_at <= :d",
                        ExpressionAttributeValues={":p": {"S": "race"}, ":d": {"N": "100000"}},
                    )["Items"]
                )
                client.get_item(TableName=table, Key={"pk": {"S": "race"}, "sk": {"S": f"r{n * 13 % count:04d}"}})
            except ClientError as exc:
                errors.append(repr(exc))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=read, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(pages) == 240
    for page in pages:
        assert len(page) == 20 and all("due_at" in item for item in page)
        due = [float(item["due_at"]["N"]) for item in page]
        assert due in (sorted(due), sorted(due, reverse=True))


def _every_attribute_type(binary: bool) -> dict[str, Any]:
    """An item with a value of every attribute type (binary only when asked)."""
    item: dict[str, Any] = {
        "pk": {"S": "p"},
        "n": {"N": "1.5"},
        "m": {"M": {"l": {"L": [{"S": "x"}, {"N": "2"}, {"BOOL": True}, {"NULL": True}]}}},
        "ss": {"SS": ["a", "b"]},
        "ns": {"NS": ["1", "2"]},
    }
    if binary:
        item["b"] = {"B": b"\x00\x01"}
    return item


@contextlib.contextmanager
def _mocked_aws() -> Iterator[None]:
    """moto in this process (as released, unless patched_moto() is also entered), with test credentials."""
    from moto import mock_aws

    with pytest.MonkeyPatch.context() as env, mock_aws():
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.setenv(name, "testing")
        env.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
        yield


def _stream_pages(dynamodb: Any, streams: Any, table: str) -> list[dict[str, Any]]:
    arn = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
        "ShardIterator"
    ]
    pages: list[dict[str, Any]] = []
    while iterator:
        answer = streams.get_records(ShardIterator=iterator, Limit=3)
        if not answer["Records"]:
            return pages
        pages.append({key: value for key, value in answer.items() if key != "ResponseMetadata"})
        iterator = answer.get("NextShardIterator")
    return pages


@pytest.mark.parametrize("binary", [False, True], ids=["plain", "with a binary attribute"])
def test_get_records_answers_what_motos_own_serializer_answers(binary: bool) -> None:
    """The plain-JSON GetRecords of the patched server against moto's own, record for record, with every
    attribute type, timestamps included (a page holding a binary value goes through moto's code)."""

    from infra.local.moto_server import patched_moto

    item = _every_attribute_type(binary)
    with _mocked_aws():
        table = create_resources(prefix="records")["DELIVERIES_TABLE"]
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        streams = boto3.client("dynamodbstreams", region_name="us-east-1")
        for n in range(7):
            dynamodb.put_item(TableName=table, Item={**item, "sk": {"S": f"r{n}"}})
            dynamodb.update_item(
                TableName=table,
                Key={"pk": {"S": "p"}, "sk": {"S": f"r{n}"}},
                UpdateExpression="SET n = :n",
                ExpressionAttributeValues={":n": {"N": str(n)}},
            )
        with patched_moto():
            patched = _stream_pages(dynamodb, streams, table)
        own = _stream_pages(dynamodb, streams, table)
    assert len(patched) == 5  # 14 records, 3 per page
    assert [page["Records"] for page in patched] == [page["Records"] for page in own]
    stamps = [r["dynamodb"]["ApproximateCreationDateTime"] for page in patched for r in page["Records"]]
    assert all(isinstance(stamp, datetime) for stamp in stamps)


def _item_operations(dynamodb: Any, table: str, item: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """Each item operation once, with what it returns: (operation, raw JSON body, content type)."""
    answers: list[tuple[str, Any, str]] = []

    def keep(http_response: Any, operation_name: str, **_: Any) -> None:
        answers.append((operation_name, json.loads(http_response.content), http_response.headers["Content-Type"]))

    dynamodb.meta.events.register("after-call.dynamodb", lambda **kw: keep(kw["http_response"], kw["model"].name))
    key = {"pk": item["pk"], "sk": {"S": "r0"}}
    dynamodb.put_item(TableName=table, Item={**item, "sk": {"S": "r0"}}, ReturnValues="ALL_OLD")
    dynamodb.put_item(TableName=table, Item={**item, "sk": {"S": "r0"}}, ReturnValues="ALL_OLD")
    dynamodb.get_item(TableName=table, Key=key, ReturnConsumedCapacity="TOTAL")
    dynamodb.get_item(TableName=table, Key={"pk": item["pk"], "sk": {"S": "absent"}})
    for n in range(1, 4):
        dynamodb.put_item(TableName=table, Item={**item, "sk": {"S": f"r{n}"}})
    dynamodb.update_item(
        TableName=table, Key=key, UpdateExpression="SET n = :n", ExpressionAttributeValues={":n": {"N": "7"}},
        ReturnValues="ALL_NEW",
    )  # fmt: skip
    dynamodb.update_item(
        TableName=table, Key=key, UpdateExpression="SET n = :n", ExpressionAttributeValues={":n": {"N": "8"}}
    )
    for answer in ("ALL_OLD", "UPDATED_OLD", "UPDATED_NEW"):  # answers that need the item before the update
        dynamodb.update_item(
            TableName=table, Key=key, UpdateExpression="SET n = n + :one, m = :m", ReturnValues=answer,
            ExpressionAttributeValues={":one": {"N": "1"}, ":m": {"S": answer}},
        )  # fmt: skip
    with contextlib.suppress(ClientError):  # its error answer is compared too
        dynamodb.update_item(
            TableName=table, Key=key, UpdateExpression="SET n = :n", ConditionExpression="n = :n",
            ExpressionAttributeValues={":n": {"N": "9"}}, ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )  # fmt: skip
    condition = {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": item["pk"]}}
    dynamodb.query(TableName=table, Limit=2, ReturnConsumedCapacity="TOTAL", **condition)
    dynamodb.query(TableName=table, FilterExpression="n = :pk", **condition)
    dynamodb.scan(TableName=table, Limit=3)
    dynamodb.batch_get_item(RequestItems={table: {"Keys": [key, {"pk": item["pk"], "sk": {"S": "r1"}}]}})
    dynamodb.delete_item(TableName=table, Key=key, ReturnValues="ALL_OLD")
    return answers


@pytest.mark.parametrize("binary", [False, True], ids=["plain", "with a binary attribute"])
def test_item_operations_answer_what_motos_own_serializer_answers(binary: bool) -> None:
    """The plain-JSON answers of the patched server against moto's own, byte for byte once parsed, for
    every item operation the product uses and every attribute type (binary goes through moto's code)."""

    from infra.local.moto_server import STATS, patched_moto

    item = _every_attribute_type(binary)
    answers = []
    for patched in (True, False):
        with _mocked_aws(), patched_moto() if patched else contextlib.nullcontext():
            STATS.reset()
            table = create_resources(prefix="items")["DELIVERIES_TABLE"]
            answers.append(_item_operations(boto3.client("dynamodb", region_name="us-east-1"), table, item))
            if patched:  # the patched server answered: its Query path, and plain JSON but for the
                # error and, with a binary attribute, the 9 answers that hold an item
                assert (STATS.fast, STATS.plain) == (2, 9 if binary else 17)
    patched_answers, own = answers
    assert len(own) == 18
    assert patched_answers == own


def _queue_session(sqs: Any) -> list[Any]:
    """What a client sees of one queue through the calls the runner and the product make: sends (some
    delayed), attribute counts, receives, deletes (twice, with a stale handle, with a bad one), a message
    made visible again, and the delayed ones arriving. Ids and handles (random) are left out."""
    seen: list[Any] = []
    url = sqs.create_queue(QueueName="depth", Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    counts = [f"ApproximateNumberOfMessages{kind}" for kind in ("", "NotVisible", "Delayed")]

    def attributes(names: list[str]) -> dict[str, str]:
        answer = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return {k: v for k, v in answer.items() if not k.endswith("Timestamp")}

    def receive() -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        seen.append(sorted(m["Body"] for m in messages))
        return messages

    def delete(handles: list[str]) -> None:
        entries = [{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(handles)]
        answer = sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        seen.append(([s["Id"] for s in answer.get("Successful", [])], [f["Code"] for f in answer.get("Failed", [])]))

    sqs.send_message_batch(
        QueueUrl=url,
        Entries=[{"Id": str(i), "MessageBody": f"m{i}", **({"DelaySeconds": 1} if i >= 3 else {})} for i in range(5)],
    )
    seen.append(attributes(counts))
    first = receive()
    seen.append(attributes(counts))
    delete([first[0]["ReceiptHandle"], "not-a-handle"])
    delete([first[0]["ReceiptHandle"]])  # deleted again: succeeds
    seen.append(attributes(counts))
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=first[1]["ReceiptHandle"], VisibilityTimeout=0)
    again = receive()
    seen.append(attributes(counts))
    delete([first[1]["ReceiptHandle"]])  # the handle of its first receipt still deletes it
    seen.append(attributes(["All"]))
    seen.append(attributes(["MessageRetentionPeriod", "VisibilityTimeout"]))
    with pytest.raises(ClientError) as refused:
        attributes(["NoSuchAttribute"])
    seen.append(refused.value.response["Error"]["Code"])
    time.sleep(1.1)
    later = receive()
    delete([m["ReceiptHandle"] for m in [first[2], *later]])
    seen.append(attributes(counts))
    seen.append(len(again))
    return seen


def test_queues_answer_what_motos_own_queues_answer() -> None:
    """Part 7 changes how moto walks a queue, not what a client sees."""
    from infra.local.moto_server import patched_moto

    sessions = []
    for patched in (True, False):
        with _mocked_aws(), patched_moto() if patched else contextlib.nullcontext():
            sessions.append(_queue_session(boto3.client("sqs", region_name="us-east-1")))
    patched_session, own = sessions
    assert own[1] == ["m0", "m1", "m2"]  # the delayed two are not received yet
    assert own[-4] == ["m3", "m4"]
    assert patched_session == own


def test_retention_is_read_as_moto_reads_it() -> None:
    from moto.sqs.models import Message, SQSBackend

    from infra.local.moto_server import _original, patched_moto

    with _mocked_aws(), patched_moto():
        sqs = boto3.client("sqs", region_name="us-east-1")
        sqs.create_queue(QueueName="kept", Attributes={"MessageRetentionPeriod": "60"})
        from moto.sqs.models import sqs_backends

        backend = sqs_backends["123456789012"]["us-east-1"]
        own = _original(SQSBackend, "is_message_valid_based_on_retention_period")
        for age_seconds in (0, 59, 61, 3600):
            message = Message("id", "body")
            message.sent_timestamp = int((time.time() - age_seconds) * 1000)  # type: ignore[assignment]
            assert backend.is_message_valid_based_on_retention_period("kept", message) == own(
                backend, "kept", message
            ), age_seconds
