"""The event runner as its own process: killed with SIGKILL mid-batch and started again, it resumes polling,
the message it held comes back after its visibility timeout, and the stream resumes at its checkpoint."""

from __future__ import annotations

import json
import os
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from infra.local.resources import create_resources
from infra.local.stack import ManagedProcess, free_port, runner_process_status, spawn_runner, start_moto

pytestmark = pytest.mark.integration

REGION = "us-east-1"
PREFIX = "runner-process"

# `consume` writes each body to the events table and hangs on the first delivery of a "hang" message
# (the runner is killed while it hangs); `changes` counts the deliveries of each stream record.
APP_SOURCE = textwrap.dedent(
    """
    import os
    import time

    import boto3
    from chalice import Chalice

    app = Chalice(app_name="processtest")
    dynamodb = boto3.client("dynamodb")


    @app.on_sqs_message(queue="work", batch_size=1)
    def consume(event):
        for record in event:
            attributes = record.to_dict()["attributes"]
            if record.body.startswith("hang") and attributes["ApproximateReceiveCount"] == "1":
                time.sleep(3600)
            dynamodb.put_item(TableName=os.environ["EVENTS_TABLE"], Item={"pk": {"S": record.body}})


    @app.on_dynamodb_record(stream_arn="arn:aws:dynamodb:us-east-1:1:table/x/stream/p", batch_size=10)
    def changes(event):
        for record in event:
            dynamodb.update_item(
                TableName=os.environ["SEEN_TABLE"],
                Key={"pk": {"S": record.sequence_number}},
                UpdateExpression="ADD deliveries :one SET body = :body",
                ExpressionAttributeValues={":one": {"N": "1"}, ":body": {"S": record.keys["pk"]["S"]}},
            )
    """
)

TABLE = {
    "BillingMode": "PAY_PER_REQUEST",
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
}
TEMPLATE = {
    "Globals": {
        "Function": {
            "Environment": {"Variables": {"EVENTS_TABLE": {"Ref": "EventsTable"}, "SEEN_TABLE": {"Ref": "SeenTable"}}}
        }
    },
    "Resources": {
        "EventsTable": {
            "Type": "AWS::DynamoDB::Table",
            "Properties": {**TABLE, "StreamSpecification": {"StreamViewType": "KEYS_ONLY"}},
        },
        "SeenTable": {"Type": "AWS::DynamoDB::Table", "Properties": TABLE},
        "WorkQueue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 2}},
        "Consume": {
            "Properties": {
                "Events": {"ConsumeSqsEventSource": {"Properties": {"Queue": {"Fn::GetAtt": ["WorkQueue", "Arn"]}}}}
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
CONFIG = {"version": "2.0", "app_name": "processtest", "stages": {"local": {}}}
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
}


@pytest.fixture
def moto_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    for name, value in AWS.items():
        monkeypatch.setenv(name, value)
    port = free_port()
    process = start_moto(tmp_path, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


def _wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def _scan(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = dynamodb.scan(TableName=table, ConsistentRead=True)["Items"]
    return items


def test_a_runner_killed_with_sigkill_and_started_again_resumes(moto_url: str, tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "process_test_app.py").write_text(APP_SOURCE)
    (tmp_path / "template.json").write_text(json.dumps(TEMPLATE))
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    tables_and_queues = create_resources(tmp_path / "template.json", PREFIX, endpoint_url=moto_url, region=REGION)
    function_env = {**tables_and_queues, **AWS, "AWS_ENDPOINT_URL": moto_url}
    log_dir = tmp_path / "logs"
    log_dir.mkdir()

    def start() -> ManagedProcess:
        return spawn_runner(
            log_dir,
            {**os.environ, **AWS},
            function_env,
            moto_url,
            app_dir=app_dir,
            app_module="process_test_app",
            template_path=tmp_path / "template.json",
            config_path=tmp_path / "config.json",
            prefix=PREFIX,
        )

    sqs = boto3.client("sqs", endpoint_url=moto_url, region_name=REGION)
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_url, region_name=REGION)
    queue = sqs.get_queue_url(QueueName=f"{PREFIX}-WorkQueue")["QueueUrl"]
    events, seen = tables_and_queues["EVENTS_TABLE"], tables_and_queues["SEEN_TABLE"]

    def bodies() -> set[str]:
        return {item["pk"]["S"] for item in _scan(dynamodb, events)}

    first = start()
    try:
        for body in ("a", "b"):
            sqs.send_message(QueueUrl=queue, MessageBody=body)
        assert _wait_for(lambda: bodies() == {"a", "b"} and len(_scan(dynamodb, seen)) == 2)
        assert _wait_for(lambda: (log_dir / "runner.checkpoints.json").exists())
        sqs.send_message(QueueUrl=queue, MessageBody="hang")
        # The runner holds the message (in flight) with its handler hanging, when it is killed.
        assert _wait_for(
            lambda: (runner_process_status(first, log_dir) or {}).get("invocations", {}).get("consume") == 3
        )
    finally:
        first.kill()
    assert not first.alive
    with pytest.raises(ProcessLookupError):
        os.killpg(first.popen.pid, 0)  # the whole group is gone, the hanging handler's thread with it
    sqs.send_message(QueueUrl=queue, MessageBody="sent while no runner runs")

    second = start()
    try:
        assert second.popen.pid != first.popen.pid
        sqs.send_message(QueueUrl=queue, MessageBody="sent after the restart")
        expected = {"a", "b", "hang", "sent while no runner runs", "sent after the restart"}
        assert _wait_for(lambda: bodies() == expected)  # "hang" came back after its visibility timeout
        assert _wait_for(lambda: len(_scan(dynamodb, seen)) == len(expected))
        status = runner_process_status(second, log_dir)
        assert status is not None and status["errors"] == {}
    finally:
        second.stop()
    # The stream resumed after its checkpoint: no change was delivered twice.
    deliveries = {item["body"]["S"]: item["deliveries"]["N"] for item in _scan(dynamodb, seen)}
    assert deliveries == dict.fromkeys(expected, "1")
