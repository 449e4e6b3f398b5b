"""create_resources builds infra/template.json's tables and queues in moto."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from infra.local.resources import (
    DEFAULT_TEMPLATE_PATH,
    create_resources,
    dynamodb_event_source_table,
    load_template,
    queue_url_for_event_source,
    sqs_event_source_queue,
)

pytestmark = pytest.mark.integration

REGION = "us-east-1"
PREFIX = "bulk-test"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


def _dynamodb() -> Any:
    return boto3.client("dynamodb", region_name=REGION)


def _sqs() -> Any:
    return boto3.client("sqs", region_name=REGION)


def test_creates_every_table_of_the_template(aws: None) -> None:
    create_resources(prefix=PREFIX)

    tables = set(_dynamodb().list_tables()["TableNames"])
    assert tables == {f"{PREFIX}-MainTable", f"{PREFIX}-DeliveriesTable", f"{PREFIX}-IdempotencyTable"}


def test_deliveries_table_has_its_index_and_stream(aws: None) -> None:
    create_resources(prefix=PREFIX)

    table = _dynamodb().describe_table(TableName=f"{PREFIX}-DeliveriesTable")["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    assert table["LatestStreamArn"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]] == [
        ("pk", "HASH"),
        ("sk", "RANGE"),
    ]
    (index,) = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "due"
    assert [(k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]] == [
        ("pk", "HASH"),
        ("due_at", "RANGE"),
    ]
    assert index["Projection"] == {"ProjectionType": "ALL"}


def test_main_table_has_the_active_index_and_no_stream(aws: None) -> None:
    create_resources(prefix=PREFIX)

    table = _dynamodb().describe_table(TableName=f"{PREFIX}-MainTable")["Table"]
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["active"]
    assert "LatestStreamArn" not in table


def test_idempotency_table_expires_items(aws: None) -> None:
    create_resources(prefix=PREFIX)

    ttl = _dynamodb().describe_time_to_live(TableName=f"{PREFIX}-IdempotencyTable")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expiration"}


ALL_QUEUES = sorted(
    [
        "DispatchDeadLetterQueue",
        "DispatchParkedQueue",
        "DispatchQueue",
        "ReleaseDeadLetterQueue",
        "ReleaseQueue",
        "StatsFailureQueue",
        "IngestDeadLetterQueue",
        "IngestQueue",
        "ExportDeadLetterQueue",
        "ExportQueue",
        "ListPurgeDeadLetterQueue",
        "ListPurgeQueue",
        "ErasureDeadLetterQueue",
        "ErasureQueue",
        "WebhookDeadLetterQueue",
        "WebhookQueue",
        "EventsFailureQueue",
        "EmailEventsFailureQueue",
    ]
)


def test_dispatch_queue_redrives_to_its_dead_letter_queue(aws: None) -> None:
    create_resources(prefix=PREFIX)

    sqs = _sqs()
    dlq_url = sqs.get_queue_url(QueueName=f"{PREFIX}-DispatchDeadLetterQueue")["QueueUrl"]
    dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
    queue_url = sqs.get_queue_url(QueueName=f"{PREFIX}-DispatchQueue")["QueueUrl"]
    queue = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert json.loads(queue["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq["QueueArn"],
        "maxReceiveCount": 8,
    }
    assert queue["VisibilityTimeout"] == "540"
    assert dlq["MessageRetentionPeriod"] == "1209600"


def test_only_tables_and_queues_are_created(aws: None) -> None:
    create_resources(prefix=PREFIX)

    names = sorted(url.rsplit("-", 1)[-1] for url in _sqs().list_queues()["QueueUrls"])
    assert names == ALL_QUEUES
    assert boto3.client("cloudwatch", region_name=REGION).describe_alarms()["MetricAlarms"] == []


def test_env_vars_resolve_to_the_created_resources(aws: None) -> None:
    env = create_resources(prefix=PREFIX)

    assert env == {
        "MAIN_TABLE": f"{PREFIX}-MainTable",
        "DELIVERIES_TABLE": f"{PREFIX}-DeliveriesTable",
        "IDEMPOTENCY_TABLE": f"{PREFIX}-IdempotencyTable",
        "DISPATCH_QUEUE_URL": _sqs().get_queue_url(QueueName=f"{PREFIX}-DispatchQueue")["QueueUrl"],
        "RELEASE_QUEUE_URL": _sqs().get_queue_url(QueueName=f"{PREFIX}-ReleaseQueue")["QueueUrl"],
        "UPLOADS_BUCKET": f"{PREFIX}-uploadsbucket",
        "INGEST_QUEUE_URL": _sqs().get_queue_url(QueueName=f"{PREFIX}-IngestQueue")["QueueUrl"],
        "EXPORT_QUEUE_URL": _sqs().get_queue_url(QueueName=f"{PREFIX}-ExportQueue")["QueueUrl"],
        "LIST_PURGE_QUEUE_URL": _sqs().get_queue_url(QueueName=f"{PREFIX}-ListPurgeQueue")["QueueUrl"],
        "ERASURE_QUEUE_URL": _sqs().get_queue_url(QueueName=f"{PREFIX}-ErasureQueue")["QueueUrl"],
        "SCHEDULE_GROUP": f"{PREFIX}-CampaignSchedules",
        "SCHEDULER_ROLE_ARN": f"arn:aws:iam::123456789012:role/{PREFIX}-SchedulerRole",
        "RELEASE_QUEUE_ARN": f"arn:aws:sqs:us-east-1:123456789012:{PREFIX}-ReleaseQueue",
        "WEBHOOK_QUEUE_URL": _sqs().get_queue_url(QueueName=f"{PREFIX}-WebhookQueue")["QueueUrl"],
        "WEBHOOK_DEAD_LETTER_QUEUE_URL": _sqs().get_queue_url(QueueName=f"{PREFIX}-WebhookDeadLetterQueue")["QueueUrl"],
        "SES_EVENT_BUS_ARN": "arn:aws:events:us-east-1:123456789012:event-bus/default",  # Fn::Sub, pseudo params
    }
    scheduler = boto3.client("scheduler", region_name="us-east-1")
    assert scheduler.get_schedule_group(Name=env["SCHEDULE_GROUP"])["State"] == "ACTIVE"
    _sqs().send_message(QueueUrl=env["DISPATCH_QUEUE_URL"], MessageBody="{}")
    _dynamodb().put_item(TableName=env["MAIN_TABLE"], Item={"pk": {"S": "a"}, "sk": {"S": "b"}})


def test_creating_twice_is_harmless(aws: None) -> None:
    first = create_resources(prefix=PREFIX)
    _sqs().send_message(QueueUrl=first["DISPATCH_QUEUE_URL"], MessageBody="kept")

    second = create_resources(prefix=PREFIX)

    assert second == first
    assert len(_dynamodb().list_tables()["TableNames"]) == 3
    names = sorted(url.rsplit("-", 1)[-1] for url in _sqs().list_queues()["QueueUrls"])
    assert names == ALL_QUEUES
    messages = _sqs().receive_message(QueueUrl=second["DISPATCH_QUEUE_URL"])["Messages"]
    assert [m["Body"] for m in messages] == ["kept"]


def test_event_source_overrides_name_the_queue_and_the_stream_table(aws: None) -> None:
    template = load_template(DEFAULT_TEMPLATE_PATH)
    env = create_resources(prefix=PREFIX)

    assert sqs_event_source_queue(template, "dispatch") == "DispatchQueue"
    assert dynamodb_event_source_table(template, "stats") == "DeliveriesTable"
    assert sqs_event_source_queue(template, "release") == "ReleaseQueue"
    assert sqs_event_source_queue(template, "dead_letters") == "DispatchDeadLetterQueue"
    assert sqs_event_source_queue(template, "release_tick") is None
    url = queue_url_for_event_source(template, "Dispatch", "DispatchSqsEventSource", prefix=PREFIX)
    assert url == env["DISPATCH_QUEUE_URL"]
