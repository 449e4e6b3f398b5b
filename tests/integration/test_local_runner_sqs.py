"""The event runner polls every SQS event source of an app, and honours a function's timeout as Lambda does."""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
import time
from collections.abc import Iterator
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
PREFIX = "runner-sqs"

# Three consumers of three queues (one of them a dead-letter queue), as the app has release, dispatch
# and dead-letter consumers; `slow` overruns its 1 s timeout on a message's first delivery.
APP_SOURCE = textwrap.dedent(
    """
    import threading
    import time

    from chalice import Chalice

    app = Chalice(app_name="sqstest")
    lock = threading.Lock()
    calls = []  # (function, body, receive count, remaining ms at the start)
    finished = []  # (function, body, receive count) when the handler returned


    def _record(name, event):
        payload = event.to_dict()
        with lock:
            for r in payload["Records"]:
                calls.append((name, r["body"], r["attributes"]["ApproximateReceiveCount"],
                              event.context.get_remaining_time_in_millis()))
        return payload["Records"]


    @app.on_sqs_message(queue="first", batch_size=10, maximum_concurrency=2)
    def first(event):
        _record("first", event)


    @app.on_sqs_message(queue="second", batch_size=10, maximum_concurrency=2)
    def second(event):
        _record("second", event)


    @app.on_sqs_message(queue="dead", batch_size=10, maximum_concurrency=2)
    def dead(event):
        _record("dead", event)


    @app.on_sqs_message(queue="slow", batch_size=1, maximum_concurrency=2)
    def slow(event):
        records = _record("slow", event)
        count = records[0]["attributes"]["ApproximateReceiveCount"]
        if count == "1":
            time.sleep(2.5)  # past the 1 s timeout: Lambda would have failed the invocation at 1 s
        with lock:
            finished.append(("slow", records[0]["body"], count))
        return {"batchItemFailures": []}
    """
)

TEMPLATE = {
    "Resources": {
        "DeadQueue": {"Type": "AWS::SQS::Queue", "Properties": {}},
        "FirstQueue": {"Type": "AWS::SQS::Queue", "Properties": {}},
        "SecondQueue": {
            "Type": "AWS::SQS::Queue",
            "Properties": {
                "RedrivePolicy": {"deadLetterTargetArn": {"Fn::GetAtt": ["DeadQueue", "Arn"]}, "maxReceiveCount": 3},
            },
        },
        "SlowQueue": {"Type": "AWS::SQS::Queue", "Properties": {"VisibilityTimeout": 2}},
        **{
            function: {
                "Properties": {
                    "Events": {
                        f"{function}SqsEventSource": {
                            "Properties": {
                                "Queue": {"Fn::GetAtt": [f"{function}Queue", "Arn"]},
                                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                            }
                        }
                    }
                }
            }
            for function in ("First", "Second", "Dead", "Slow")
        },
    },
}

CONFIG = {
    "version": "2.0",
    "app_name": "sqstest",
    "stages": {"local": {"lambda_functions": {"slow": {"lambda_timeout": 1}, "first": {"lambda_timeout": 30}}}},
}


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    process = start_moto(tmp_path_factory.mktemp("moto-logs"), port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, Path, Path]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "sqs_test_app.py").write_text(APP_SOURCE)
    (tmp_path / "template.json").write_text(json.dumps(TEMPLATE))
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    spec = importlib.util.spec_from_file_location("sqs_test_app", tmp_path / "sqs_test_app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "sqs_test_app", module)
    spec.loader.exec_module(module)
    return module, tmp_path / "template.json", tmp_path / "config.json"


def _queue_url(sqs: Any, logical_id: str) -> str:
    url: str = sqs.get_queue_url(QueueName=f"{PREFIX}-{logical_id}")["QueueUrl"]
    return url


def _left(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def test_every_sqs_event_source_is_polled_and_a_timed_out_batch_comes_back(
    moto_url: str, project: tuple[ModuleType, Path, Path]
) -> None:
    app_module, template_path, config_path = project
    create_resources(template_path, PREFIX, endpoint_url=moto_url, region=REGION)
    sqs = boto3.client("sqs", endpoint_url=moto_url, region_name=REGION)
    urls = {name: _queue_url(sqs, f"{name.capitalize()}Queue") for name in ("first", "second", "dead", "slow")}
    runner = LocalEventRunner(
        app_module, {}, moto_url, REGION, template_path=template_path, config_path=config_path, prefix=PREFIX
    )
    with runner:
        for name in ("first", "second"):
            for i in range(12):
                sqs.send_message(QueueUrl=urls[name], MessageBody=f"{name}-{i}")
        sqs.send_message(QueueUrl=urls["dead"], MessageBody="dead-0")
        sqs.send_message(QueueUrl=urls["slow"], MessageBody="slow-0")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and ("slow", "slow-0", "2") not in app_module.finished:
            time.sleep(0.1)
        assert runner.wait_idle(timeout=30)
        invocations, errors, timeouts = runner.invocations, runner.errors, runner.timeouts

    calls = app_module.calls
    for name in ("first", "second"):
        assert sorted(body for function, body, _, _ in calls if function == name) == sorted(
            f"{name}-{i}" for i in range(12)
        )
    assert [body for function, body, _, _ in calls if function == "dead"] == ["dead-0"]

    # The first delivery ran past the 1 s timeout: failed, though the handler returned success later;
    # nothing was deleted, and the message came back after its 2 s visibility timeout.
    slow_calls = [(body, count) for function, body, count, _ in calls if function == "slow"]
    assert slow_calls == [("slow-0", "1"), ("slow-0", "2")]
    assert sorted(app_module.finished) == [("slow", "slow-0", "1"), ("slow", "slow-0", "2")]  # both ran to the end
    assert invocations["slow"] == 2 and timeouts == {"slow": 1} and errors == {"slow": 1}
    assert all(0 < remaining <= 1000 for function, _, _, remaining in calls if function == "slow")
    assert all(remaining > 1000 for function, _, _, remaining in calls if function == "first")
    for url in urls.values():
        assert _left(sqs, url) == 0
