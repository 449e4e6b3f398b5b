"""Counters from the deliveries stream: each change counted once, replays ignored, buckets (and the
shards they live on) applied in any order, completion, and a recount that finds no drift."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import boto3
import pytest

from tests.utils import Api, campaign_body, recipient_rows

pytestmark = pytest.mark.integration

ZERO = {"in_flight": 0, "succeeded": 0, "failed": 0, "unknown": 0, "skipped": 0, "skipped_by_reason": {}, "expired": 0}
ZERO |= {"delivered": 0, "read": 0, "undelivered": 0}
ZERO |= {"clicked": 0, "clicks": 0, "converted": 0, "conversions": 0, "replied": 0}
ZERO["not_included"] = 0


def change(pk: str, phone: str, old: str | None, new: str, sequence: int, buckets: int = 1) -> dict[str, Any]:
    """A stream record of the delivery of `phone` in campaign `pk`, as Lambda hands it over."""
    from chalicelib.store import deliveries

    key = {"pk": {"S": deliveries.pk_for(pk, buckets, phone)}, "sk": {"S": phone}}
    dynamodb: dict[str, Any] = {
        "ApproximateCreationDateTime": 1_700_000_000,
        "Keys": key,
        "NewImage": {**key, "state": {"S": new}},
        "SequenceNumber": str(sequence),
        "SizeBytes": 100,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if old:
        dynamodb["OldImage"] = {**key, "state": {"S": old}}
    return {
        "eventID": f"{sequence}",
        "eventName": "MODIFY" if old else "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "us-east-1",
        "dynamodb": dynamodb,
        "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/deliveries/stream/x",
    }


def stream_records() -> list[dict[str, Any]]:
    """Every record of the deliveries table's stream so far (moto's), shaped as Lambda sends them.

    Reading from the start each time is what a replay looks like: the counters must not move for it.
    """
    from chalicelib.settings import get_settings

    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    streams = boto3.client("dynamodbstreams", region_name="us-east-1")
    arn = dynamodb.describe_table(TableName=get_settings().deliveries_table)["Table"]["LatestStreamArn"]
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            answer = streams.get_records(ShardIterator=iterator)
            for record in answer["Records"]:
                when = record["dynamodb"].get("ApproximateCreationDateTime")
                if isinstance(when, datetime):
                    record["dynamodb"]["ApproximateCreationDateTime"] = int(when.timestamp())
                records.append(record)
            iterator = answer.get("NextShardIterator") if answer["Records"] else None
    return records


def start_campaign(tenant: Api, recipients: int, **overrides: Any) -> dict[str, Any]:
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": recipient_rows(recipients)})
    campaign = tenant.ok("POST", "/v1/campaigns", campaign_body(listed["id"], **overrides), status=201)
    return dict(tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/start"))


@pytest.fixture
def running(tenant: Api) -> dict[str, Any]:
    return start_campaign(tenant, 3)


def pk_of(tenant: Api, campaign: dict[str, Any]) -> str:
    from chalicelib.store import accounts, keys

    account = accounts.account_for_api_key(str(tenant.api_key))
    return keys.campaign_pk(str(account), campaign["id"])


def mark_exhausted(pk: str) -> None:
    """What the pacer records once it released the whole list."""
    from chalicelib.settings import get_settings
    from chalicelib.store import aws

    aws.dynamodb().update_item(
        TableName=get_settings().main_table,
        Key=aws.to_item({"pk": pk, "sk": "META"}),
        UpdateExpression="SET release_exhausted = :t, released = #total",
        ExpressionAttributeNames={"#total": "total"},
        ExpressionAttributeValues={":t": {"BOOL": True}},
    )


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
    assert counters == {"total": 3, "queued": 1, **ZERO, "in_flight": 2}


def test_a_batch_replayed_with_more_changes_after_it_counts_only_the_new_ones(
    tenant: Api, running: dict[str, Any], chalice_app: Any
) -> None:
    """Lambda delivers a batch again after a failure, not cut as before: a runner killed after counting a
    batch but before its checkpoint reads the same changes and the ones after them into its next batch.
    (A guard on the batch's last number alone counted the first ones twice: in_flight went to -26.)"""
    pk = pk_of(tenant, running)
    first = [change(pk, f"+1202555000{i}", None, "in_flight", 101 + i) for i in range(3)]
    then = [change(pk, f"+1202555000{i}", "in_flight", "succeeded", 104 + i) for i in range(3)]
    for record in first + then:  # now, so the campaign's timeline (its range from the start) shows them
        record["dynamodb"]["ApproximateCreationDateTime"] = int(time.time())
    for consumer in (chalice_app.stats, chalice_app.events):  # the counters, and the timeline by minute
        consumer({"Records": first + then[:1]}, None)
        consumer({"Records": first + then}, None)  # the same changes again, and two more
        consumer({"Records": then[1:]}, None)  # and those again on their own
    counters = tenant.ok("GET", f"/v1/campaigns/{running['id']}")["counters"]
    assert counters == {"total": 3, "queued": 0, **ZERO, "succeeded": 3}
    series = tenant.ok("GET", f"/v1/campaigns/{running['id']}/stats?granularity=day")["series"]
    assert [point["sent"] for point in series] == [3]


def test_deliveries_removed_by_their_retention_ttl_leave_the_counters_as_they_were(
    tenant: Api, running: dict[str, Any], chalice_app: Any
) -> None:
    pk = pk_of(tenant, running)
    sent = [
        change(pk, "+12025550000", None, "in_flight", 101),
        change(pk, "+12025550000", "in_flight", "succeeded", 102),
    ]
    chalice_app.stats({"Records": sent}, None)
    expired = change(pk, "+12025550000", "succeeded", "succeeded", 103)
    expired["eventName"] = "REMOVE"  # DynamoDB's TTL deleting the item 90 days on: an old image only
    expired["dynamodb"].pop("NewImage")
    expired["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    chalice_app.stats({"Records": [expired]}, None)
    counters = tenant.ok("GET", f"/v1/campaigns/{running['id']}")["counters"]
    assert counters == {"total": 3, "queued": 2, **ZERO, "succeeded": 1}


def test_batches_from_two_shards_apply_in_any_order_and_replays_of_either_are_skipped(
    tenant: Api, chalice_app: Any
) -> None:
    from chalicelib.store import keys

    campaign = start_campaign(tenant, 40, rate_per_second=1000)  # 7 buckets
    pk = pk_of(tenant, campaign)
    buckets = keys.bucket_count(1000)
    phones = [r["phone"] for r in recipient_rows(40)]
    by_bucket: dict[int, list[str]] = {}
    for phone in phones:
        by_bucket.setdefault(keys.bucket_of(phone, buckets), []).append(phone)
    a, b = sorted(by_bucket, key=lambda k: -len(by_bucket[k]))[:2]
    # Shard A carries bucket a, shard B bucket b; B's sequence numbers are all higher than A's.
    shard_a = [change(pk, p, None, "in_flight", 100 + i, buckets) for i, p in enumerate(by_bucket[a])]
    shard_a += [change(pk, p, "in_flight", "succeeded", 200 + i, buckets) for i, p in enumerate(by_bucket[a])]
    shard_b = [change(pk, p, None, "in_flight", 900 + i, buckets) for i, p in enumerate(by_bucket[b])]
    shard_b += [change(pk, p, "in_flight", "failed", 950 + i, buckets) for i, p in enumerate(by_bucket[b])]
    chalice_app.stats({"Records": shard_b}, None)  # the later shard's batch arrives first
    chalice_app.stats({"Records": shard_a}, None)
    chalice_app.stats({"Records": shard_b[: len(shard_b) // 2]}, None)  # bisected replay of B
    chalice_app.stats({"Records": shard_a}, None)  # replay of A
    counters = tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")["counters"]
    assert counters == {
        "total": 40,
        "queued": 40 - len(by_bucket[a]) - len(by_bucket[b]),
        **ZERO,
        "succeeded": len(by_bucket[a]),
        "failed": len(by_bucket[b]),
    }


def test_the_campaign_completes_when_every_recipient_has_a_final_outcome(
    tenant: Api, running: dict[str, Any], chalice_app: Any
) -> None:
    pk = pk_of(tenant, running)
    mark_exhausted(pk)
    phones = ["+12025550000", "+12025550001", "+12025550002"]
    chalice_app.stats({"Records": [change(pk, p, None, "in_flight", 10 + i) for i, p in enumerate(phones)]}, None)
    chalice_app.stats(
        {
            "Records": [
                change(pk, phones[0], "in_flight", "succeeded", 20),
                change(pk, phones[1], "in_flight", "queued", 21),  # a transient failure, retry scheduled
                change(pk, phones[2], "in_flight", "unknown", 22),
            ]
        },
        None,
    )
    midway = tenant.ok("GET", f"/v1/campaigns/{running['id']}")
    assert midway["status"] == "running"
    assert midway["counters"] == {"total": 3, "queued": 1, **ZERO, "succeeded": 1, "unknown": 1}
    chalice_app.stats(
        {
            "Records": [
                change(pk, phones[1], "queued", "in_flight", 30),
                change(pk, phones[1], "in_flight", "failed", 31),
            ]
        },
        None,
    )
    final = tenant.ok("GET", f"/v1/campaigns/{running['id']}")
    assert final["status"] == "completed"
    assert final["finished_at"]
    assert final["counters"] == {"total": 3, "queued": 0, **ZERO, "succeeded": 1, "failed": 1, "unknown": 1}


def test_a_recount_after_the_deliveries_expired_is_refused_rather_than_zeroing_the_counters(
    tenant: Api, running: dict[str, Any]
) -> None:
    from chalicelib.store import aws

    pk = pk_of(tenant, running)
    aws.dynamodb().update_item(
        TableName=get_main_table(),
        Key=aws.to_item({"pk": pk, "sk": "META"}),
        UpdateExpression="SET finished_at = :long_ago, succeeded = :n",
        ExpressionAttributeValues=aws.to_values({":long_ago": 1_000_000_000, ":n": 3}),
    )
    answer = tenant.call("POST", f"/v1/campaigns/{running['id']}/recount")
    assert answer.status_code == 409
    assert "90 days" in answer.json_body["detail"]
    assert tenant.ok("GET", f"/v1/campaigns/{running['id']}")["counters"]["succeeded"] == 3


def get_main_table() -> str:
    from chalicelib.settings import get_settings

    return get_settings().main_table


def test_clicks_and_conversions_count_per_campaign_and_segment_once_each(tenant: Api, chalice_app: Any) -> None:
    vip_segment = {"name": "vip", "conditions": [{"field": "attributes.tier", "op": "eq", "value": "gold"}]}
    campaign = start_campaign(tenant, 3, segments=[vip_segment])
    pk = pk_of(tenant, campaign)

    def engaged(phone: str, old: dict[str, int], new: dict[str, int], sequence: int) -> dict[str, Any]:
        record = change(pk, phone, "succeeded", "succeeded", sequence)
        for image, numbers in (("OldImage", old), ("NewImage", new)):
            record["dynamodb"][image]["segment"] = {"S": "vip"}
            record["dynamodb"][image].update({name: {"N": str(n)} for name, n in numbers.items()})
        return record

    batch = [
        engaged("+12025550000", {}, {"clicks": 1}, 11),
        engaged("+12025550000", {"clicks": 1}, {"clicks": 2}, 12),
        engaged("+12025550001", {}, {"clicks": 1}, 13),
        engaged("+12025550001", {"clicks": 1}, {"clicks": 1, "conversions": 1}, 14),
    ]
    chalice_app.stats({"Records": batch}, None)
    chalice_app.stats({"Records": batch}, None)  # a replay
    current = tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")
    counters = current["counters"]
    assert (counters["clicked"], counters["clicks"], counters["converted"], counters["conversions"]) == (2, 3, 1, 1)
    vip = current["segment_counters"]["vip"]
    assert (vip["clicked"], vip["clicks"], vip["converted"], vip["conversions"]) == (2, 3, 1, 1)
