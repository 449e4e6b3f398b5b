"""Counters from the deliveries stream: each change counted once, replays ignored, completion."""

from __future__ import annotations

from typing import Any

import pytest

from tests.utils import Api, campaign_body, recipient_rows

pytestmark = pytest.mark.integration


def change(pk: str, phone: str, old: str | None, new: str, sequence: int) -> dict[str, Any]:
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": 1_700_000_000,
        "Keys": {"pk": {"S": pk}, "sk": {"S": phone}},
        "NewImage": {"pk": {"S": pk}, "sk": {"S": phone}, "state": {"S": new}},
        "SequenceNumber": str(sequence),
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old:
        dynamodb["OldImage"] = {"pk": {"S": pk}, "sk": {"S": phone}, "state": {"S": old}}
    return {
        "eventID": f"{sequence}",
        "eventName": "MODIFY" if old else "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/deliveries/stream/x",
    }


@pytest.fixture
def running(tenant: Api) -> dict[str, Any]:
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": recipient_rows(3)})
    campaign = tenant.ok("POST", "/v1/campaigns", campaign_body(listed["id"]), status=201)
    return dict(tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/start"))


def pk_of(tenant: Api, campaign: dict[str, Any]) -> str:
    from chalicelib.store import accounts, keys

    account = accounts.account_for_api_key(str(tenant.api_key))
    return keys.campaign_pk(str(account), campaign["id"])


def test_a_replayed_stream_batch_is_counted_once(tenant: Api, running: dict[str, Any], chalice_app: Any) -> None:
    pk = pk_of(tenant, running)
    batch = {
        "Records": [
            change(pk, "+12025550000", None, "in_flight", 101),
            change(pk, "+12025550001", None, "in_flight", 102),
        ]
    }
    chalice_app.stats(batch, None)
    chalice_app.stats(batch, None)  # Lambda retried the batch
    counters = tenant.ok("GET", f"/v1/campaigns/{running['id']}")["counters"]
    assert counters == {"total": 3, "queued": 1, "in_flight": 2, "succeeded": 0, "failed": 0}


def test_the_campaign_completes_when_every_recipient_has_a_terminal_outcome(
    tenant: Api, running: dict[str, Any], chalice_app: Any
) -> None:
    pk = pk_of(tenant, running)
    phones = ["+12025550000", "+12025550001", "+12025550002"]
    chalice_app.stats({"Records": [change(pk, p, None, "in_flight", 10 + i) for i, p in enumerate(phones)]}, None)
    chalice_app.stats(
        {
            "Records": [
                change(pk, phones[0], "in_flight", "succeeded", 20),
                change(pk, phones[1], "in_flight", "queued", 21),  # a transient failure, retry scheduled
                change(pk, phones[2], "in_flight", "failed", 22),
            ]
        },
        None,
    )
    midway = tenant.ok("GET", f"/v1/campaigns/{running['id']}")
    assert midway["status"] == "running"
    assert midway["counters"] == {"total": 3, "queued": 1, "in_flight": 0, "succeeded": 1, "failed": 1}
    chalice_app.stats(
        {
            "Records": [
                change(pk, phones[1], "queued", "in_flight", 30),
                change(pk, phones[1], "in_flight", "succeeded", 31),
            ]
        },
        None,
    )
    final = tenant.ok("GET", f"/v1/campaigns/{running['id']}")
    assert final["status"] == "completed"
    assert final["finished_at"]
    assert final["counters"] == {"total": 3, "queued": 0, "in_flight": 0, "succeeded": 2, "failed": 1}
