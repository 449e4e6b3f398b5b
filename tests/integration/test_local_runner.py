"""The local event runner calls a Chalice app's handlers as Lambda would, against moto's server."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest

from infra.local.resources import create_resources
from infra.local.runner import LocalEventRunner
from infra.local.stack import free_port, start_moto

pytestmark = pytest.mark.integration

REGION = "us-east-1"
PREFIX = "runner-test"

APP_SOURCE = textwrap.dedent(
    """
    import threading
    from typing import Any

    from chalice import Chalice, Rate

    app = Chalice(app_name="runnertest")
    lock = threading.Lock()
    sqs_calls: list[tuple[dict[str, Any], Any]] = []
    stream_calls: list[dict[str, Any]] = []
    schedule_calls: list[dict[str, Any]] = []
    stream_failures_left = [1]


    @app.on_sqs_message(queue="dispatch", batch_size=10, maximum_concurrency=2)
    def consume(event):
        payload = event.to_dict()
        with lock:
            sqs_calls.append((payload, event.context))
        failed = [r["messageId"] for r in payload["Records"] if r["body"] == "fail"]
        return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}


    @app.on_dynamodb_record(stream_arn="arn:aws:dynamodb:us-east-1:1:table/x/stream/p", batch_size=50)
    def changes(event):
        with lock:
            stream_calls.append(event.to_dict())
            if stream_failures_left[0]:
                stream_failures_left[0] -= 1
                raise RuntimeError("first stream batch fails, as a test of the retry")
        for record in event:
            assert record.timestamp is not None  # what Chalice itself parses


    @app.schedule(Rate(1, unit=Rate.MINUTES))
    def tick(event):
        with lock:
            schedule_calls.append(event.to_dict())
    """
)

TEMPLATE = {
    "Globals": {
        "Function": {
            "Environment": {
                "Variables": {"EVENTS_TABLE": {"Ref": "EventsTable"}, "WORK_QUEUE_URL": {"Ref": "WorkQueue"}}
            }
        }
    },
    "Resources": {
        "EventsTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {
                "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
            },
        },
        "WorkDeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": {}},
        "WorkQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "VisibilityTimeout": 1,
                "RedrivePolicy": {
                    "deadLetterTargetArn": {"Fn::GetAtt": ["WorkDeadLetterQueue", "Arn"]},
                    "maxReceiveCount": 2,
                },
            },
        },
        "Consume": {
            "Properties": {
                "Events": {
                    "ConsumeSqsEventSource": {
                        "Properties": {
                            "Queue": {"Fn::GetAtt": ["WorkQueue", "Arn"]},
                            "FunctionResponseTypes": ["ReportBatchItemFailures"],
                        }
                    }
                }
            }
        },
        "Changes": {
            "Properties": {
                "Events": {
                    "ChangesDynamodbEventSource": {
                        "Properties": {"Stream": {"Fn::GetAtt": ["EventsTable", "StreamArn"]}}
                    }
                }
            }
        },
    },
}

CONFIG = {
    "version": "2.0",
    "app_name": "runnertest",
    "stages": {
        "local": {
            "environment_variables": {"STAGE": "local"},
            "lambda_functions": {"consume": {"lambda_timeout": 30, "lambda_memory_size": 256}},
        }
    },
}


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log_dir = tmp_path_factory.mktemp("moto-logs")
    port = free_port()
    process = start_moto(log_dir, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")


@pytest.fixture
def project(tmp_path: Path) -> tuple[ModuleType, Path, Path]:
    (tmp_path / "runner_test_app.py").write_text(APP_SOURCE)
    template_path = tmp_path / "template.json"
    template_path.write_text(json.dumps(TEMPLATE))
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(CONFIG))
    spec = importlib.util.spec_from_file_location("runner_test_app", tmp_path / "runner_test_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["runner_test_app"] = module
    spec.loader.exec_module(module)
    return module, template_path, config_path


def test_runner_delivers_lambda_shaped_events_and_honours_partial_failures(
    moto_url: str, aws_credentials: None, project: tuple[ModuleType, Path, Path]
) -> None:
    app_module, template_path, config_path = project
    env = create_resources(template_path, PREFIX, endpoint_url=moto_url, region=REGION)
    sqs = boto3.client("sqs", endpoint_url=moto_url, region_name=REGION)
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_url, region_name=REGION)
    queue_url = env["WORK_QUEUE_URL"]
    dlq_url = sqs.get_queue_url(QueueName=f"{PREFIX}-WorkDeadLetterQueue")["QueueUrl"]
    bodies = [f"ok-{i}" for i in range(14)] + ["fail"]

    runner = LocalEventRunner(
        app_module,
        env,
        moto_url,
        REGION,
        schedule_tick_seconds=0.3,
        stream_poll_seconds=0.1,
        template_path=template_path,
        config_path=config_path,
        prefix=PREFIX,
    )
    with runner:
        for body in bodies:
            sqs.send_message(QueueUrl=queue_url, MessageBody=body)
        for i in range(3):
            dynamodb.put_item(TableName=env["EVENTS_TABLE"], Item={"pk": {"S": f"item-{i}"}, "n": {"N": str(i)}})
        dynamodb.update_item(
            TableName=env["EVENTS_TABLE"],
            Key={"pk": {"S": "item-0"}},
            UpdateExpression="SET n = :n",
            ExpressionAttributeValues={":n": {"N": "10"}},
        )
        # The failed message comes back after its 1 s visibility timeout, fails again, then goes to the DLQ.
        assert _wait_for(lambda: _queue_count(sqs, dlq_url) == 1, timeout=30)
        assert runner.wait_idle(timeout=30)
        invocations, errors = runner.invocations, runner.errors

    sqs_records = [(r, ctx) for payload, ctx in app_module.sqs_calls for r in payload["Records"]]
    delivered = [r["body"] for r, _ in sqs_records]
    assert sorted(b for b in delivered if b != "fail") == sorted(bodies[:-1])  # deleted: each seen once
    assert delivered.count("fail") == 2  # not deleted: redelivered until maxReceiveCount
    first_round = [r for r, _ in sqs_records if r["attributes"]["ApproximateReceiveCount"] == "1"]
    assert len({r["messageId"] for r in first_round}) == len(bodies)
    record, context = sqs_records[0]
    assert set(record) == {
        "messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody",
        "eventSource", "eventSourceARN", "awsRegion",
    }  # fmt: skip
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(f":{PREFIX}-WorkQueue")
    assert {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    } <= set(record["attributes"])
    assert context.function_name == "runnertest-local-consume"
    assert context.memory_limit_in_mb == 256
    assert 0 < context.get_remaining_time_in_millis() <= 30_000
    assert all(len(payload["Records"]) <= 10 for payload, _ in app_module.sqs_calls)
    assert _queue_count(sqs, queue_url) == 0
    dead = sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=0)["Messages"]
    assert [m["Body"] for m in dead] == ["fail"]

    # The first stream batch raised and was delivered again, in order, with the same records.
    assert errors.get("changes") == 1
    first, retried = app_module.stream_calls[0], app_module.stream_calls[1]
    assert [r["eventID"] for r in first["Records"]] == [r["eventID"] for r in retried["Records"]]
    stream_records = [r for call in app_module.stream_calls[1:] for r in call["Records"]]
    assert [r["eventName"] for r in stream_records] == ["INSERT", "INSERT", "INSERT", "MODIFY"]
    for r in stream_records:
        assert isinstance(r["dynamodb"]["ApproximateCreationDateTime"], int | float)
        assert r["eventSource"] == "aws:dynamodb" and r["eventVersion"] == "1.1"
        assert r["eventSourceARN"] == _stream_arn(dynamodb, env["EVENTS_TABLE"])
    modify = stream_records[-1]["dynamodb"]
    assert modify["OldImage"]["n"] == {"N": "0"} and modify["NewImage"]["n"] == {"N": "10"}

    assert invocations.get("tick", 0) >= 1
    scheduled = app_module.schedule_calls[0]
    assert scheduled["detail-type"] == "Scheduled Event" and scheduled["source"] == "aws.events"
    assert scheduled["resources"] == ["arn:aws:events:us-east-1:123456789012:rule/runnertest-local-tick-event"]
    runner_threads = [t.name for t in threading.enumerate() if t.name.startswith(("sqs-", "stream-", "schedule-"))]
    assert runner_threads == []  # stop() joined them


def _queue_count(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


def _stream_arn(dynamodb: Any, table: str) -> str:
    arn: str = dynamodb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    return arn


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False
