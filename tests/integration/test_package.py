"""`chalice package --merge-template infra/template.json` gives a template CloudFormation accepts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("package")
    chalice = Path(sys.executable).with_name("chalice")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}
    subprocess.run(
        [str(chalice), "package", "--stage", "dev", "--merge-template", "infra/template.json", str(out)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return out / "sam.json"


def test_dispatch_reports_partial_batch_failures_from_the_template_queue(packaged: Path) -> None:
    template = json.loads(packaged.read_text())
    source = template["Resources"]["Dispatch"]["Properties"]["Events"]["DispatchSqsEventSource"]["Properties"]
    assert source["Queue"] == {"Fn::GetAtt": ["DispatchQueue", "Arn"]}
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["ScalingConfig"] == {"MaximumConcurrency": 10}
    assert source["BatchSize"] == 4  # 4 chunks of up to 50 at 50 sends at once: ~40 s with a 10 s provider
    stream = template["Resources"]["Stats"]["Properties"]["Events"]["StatsDynamodbEventSource"]["Properties"]
    assert stream["Stream"] == {"Fn::GetAtt": ["DeliveriesTable", "StreamArn"]}
    assert template["Resources"]["Dispatch"]["Properties"]["ReservedConcurrentExecutions"] == 10


def test_every_queue_has_a_dead_letter_queue_and_a_long_enough_visibility_timeout(packaged: Path) -> None:
    template = json.loads(packaged.read_text())
    queues = {k: v for k, v in template["Resources"].items() if v["Type"] == "AWS::SQS::Queue"}
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    timeouts = {name: f["lambda_timeout"] for name, f in config["stages"]["dev"]["lambda_functions"].items()}
    consumers = {
        event["Properties"]["Queue"]["Fn::GetAtt"][0]: logical_id
        for logical_id, resource in template["Resources"].items()
        for event in resource.get("Properties", {}).get("Events", {}).values()
        if event.get("Type") == "SQS"
    }
    assert consumers == {
        "ReleaseQueue": "Release",
        "DispatchQueue": "Dispatch",
        "DispatchDeadLetterQueue": "DeadLetters",
        "IngestQueue": "Ingest",
        "ExportQueue": "Export",
        "ListPurgeQueue": "ListPurge",
        "ErasureQueue": "Erasure",
        "WebhookQueue": "Webhooks",
    }
    function_of = {
        "Release": "release",
        "Dispatch": "dispatch",
        "DeadLetters": "dead_letters",
        "Ingest": "ingest",
        "Export": "export",
        "ListPurge": "list_purge",
        "Erasure": "erasure",
        "Webhooks": "webhooks",
    }
    for name, consumer in consumers.items():
        properties = queues[name]["Properties"]
        assert properties["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0] in queues, name
        assert properties["VisibilityTimeout"] >= 6 * timeouts[function_of[consumer]], name
        source = next(iter(template["Resources"][consumer]["Properties"]["Events"].values()))["Properties"]
        assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"], name


def test_counter_batches_that_keep_failing_go_to_a_failure_queue_instead_of_blocking_the_stream(
    packaged: Path,
) -> None:
    template = json.loads(packaged.read_text())
    stream = template["Resources"]["Stats"]["Properties"]["Events"]["StatsDynamodbEventSource"]["Properties"]
    assert stream["BisectBatchOnFunctionError"] is True
    assert stream["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["StatsFailureQueue", "Arn"]}
    assert template["Resources"]["StatsFailureQueue"]["Type"] == "AWS::SQS::Queue"


def test_the_packaged_template_passes_cfn_lint(packaged: Path) -> None:
    lint = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), str(packaged)], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_ses_email_events_reach_their_function_and_failed_ones_a_failure_queue(packaged: Path) -> None:
    template = json.loads(packaged.read_text())
    function = template["Resources"]["EmailEvents"]["Properties"]
    pattern = function["Events"]["EmailEventsEvent"]["Properties"]["Pattern"]
    assert pattern["source"] == ["aws.ses"] and "Email Bounced" in pattern["detail-type"]
    assert "Email Complaint Received" in pattern["detail-type"] and "Email Opened" in pattern["detail-type"]
    invoke = function["EventInvokeConfig"]
    assert invoke["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": ["EmailEventsFailureQueue", "Arn"]}
    assert invoke["MaximumRetryAttempts"] == 2
    globals_env = template["Globals"]["Function"]["Environment"]["Variables"]
    assert globals_env["SES_EVENT_BUS_ARN"]["Fn::Sub"].endswith(":event-bus/default")
