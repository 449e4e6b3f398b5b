"""Builders shared by the tests."""

from __future__ import annotations

import itertools
import json
from typing import Any

from infra.local.client import valid_phone

__all__ = ["valid_phone"]

ADMIN_TOKEN = "test-admin-token"


def recipient_rows(count: int, start: int = 0) -> list[dict[str, Any]]:
    return [{"phone": valid_phone(start + i), "params": {"first_name": f"R{start + i}"}} for i in range(count)]


def campaign_body(list_id: str, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Spring sale",
        "list_id": list_id,
        "channel": "sms",
        "sender": "Acme",
        "template": "Hi {{ first_name }}, 20% off today.",
        "rate_per_second": 100,
        "retry_policy": {
            "max_attempts": 3,
            "initial_delay_seconds": 1,
            "backoff_multiplier": 1,
            "max_delay_seconds": 1,
        },
    }
    body.update(overrides)
    return body


class Api:
    """chalice.test.Client with the JSON and auth plumbing a real client would have."""

    def __init__(self, client: Any, api_key: str | None = None) -> None:
        self.client = client
        self.api_key = api_key

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        raw: str | None = None,
    ) -> Any:
        sent = {"Content-Type": "application/json"}
        token = key if key is not None else self.api_key
        if token:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        payload = raw if raw is not None else (json.dumps(body) if body is not None else None)
        return self.client.http.request(method, path, headers=sent, body=payload)

    def ok(self, method: str, path: str, body: Any = None, status: int = 200, **kw: Any) -> Any:
        answer = self.call(method, path, body, **kw)
        assert answer.status_code == status, answer.body
        return json.loads(answer.body)

    def new_account(self, name: str = "acme") -> Api:
        created = self.ok("POST", "/v1/accounts", {"name": name}, status=201, key=ADMIN_TOKEN)
        return Api(self.client, created["api_key"])


def sqs_event(
    messages: list[dict[str, Any]], queue_arn: str = "arn:aws:sqs:us-east-1:123456789012:dispatch"
) -> dict[str, Any]:
    """A Lambda SQS event from ReceiveMessage output, each record keeping its own messageId."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "0",
                    "SenderId": "local",
                    "ApproximateFirstReceiveTimestamp": "0",
                },
                "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
            for m in messages
        ]
    }


def receive_all(queue_url: str) -> list[dict[str, Any]]:
    """Every visible message of a queue (moto answers delayed ones too once their delay passed)."""
    import boto3

    sqs = boto3.client("sqs", region_name="us-east-1")
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", []):
        messages.extend(batch)
    return messages


def run_release_jobs(chalice_app: Any, release_queue_url: str) -> int:
    """What the release function's event source mapping does: hand the queued release jobs to it."""
    jobs = receive_all(release_queue_url)
    if jobs:
        chalice_app.release(sqs_event(jobs), None)
    return len(jobs)


class LambdaContext:
    """The attributes of Lambda's context that the handlers read; `remaining_ms` is the time left."""

    aws_request_id = "test"
    function_name = "dispatch"

    def __init__(self, remaining_ms: int = 60_000) -> None:
        import time

        self._deadline = time.monotonic() + remaining_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        import time

        return max(0, int((self._deadline - time.monotonic()) * 1000))


def record_send_times(monkeypatch: Any) -> dict[str, float]:
    """The time dispatch gives each recipient's send (its place on the pacing ledgers), by recipient id, as
    dispatch hands it to the sending thread. Pacing is asserted on these, not on when the sends happened:
    on a busy machine a stalled thread sends late, and the wall clock would test the machine."""
    from chalicelib.workers import dispatch

    planned: dict[str, float] = {}
    real = dispatch._one

    def recording(
        watch: Any, policy: Any, recipient: dict[str, Any], token: str, deadline: Any, at: float, *rest: Any
    ) -> int:
        planned[recipient["id"]] = at
        return int(real(watch, policy, recipient, token, deadline, at, *rest))

    monkeypatch.setattr(dispatch, "_one", recording)
    return planned


def spacing(times: list[float]) -> float:
    """The smallest gap between consecutive times (sorted)."""
    ordered = sorted(times)
    return min(later - earlier for earlier, later in itertools.pairwise(ordered))


def never_early(planned: dict[str, float], messages: list[dict[str, Any]]) -> None:
    """Every message the provider accepted went out no earlier than its planned time."""
    for message in messages:
        assert float(message["accepted_at"]) >= planned["+" + message["to"]] - 0.005, message


def refused_campaign(tenant: Api, list_id: str, field: str, **overrides: Any) -> str:
    """Create a campaign on `list_id` with `overrides` (None drops a field), assert a 422 naming `field` alone;
    its reason."""
    body = {k: v for k, v in campaign_body(list_id, **overrides).items() if v is not None}
    answer = tenant.call("POST", "/v1/campaigns", body)
    assert answer.status_code == 422, answer.body
    assert [e["field"] for e in answer.json_body["errors"]] == [field], answer.json_body
    return str(answer.json_body["errors"][0]["reason"])
