"""Erasure of a person (decision 42), played on a whole account: the person is on two lists, was sent to by
a campaign whose events were logged, sent to a customer's webhook and exported, and replied STOP; then
`DELETE /v1/recipients?destination=` is carried out by its job, and every DynamoDB table and every S3 object
of the local AWS is read back: the number is nowhere, in E.164 or digits only, while the counters, the
recount and the lists' counts still add up, the suppression still skips them, a second erasure or a
redelivered job changes nothing, bad input is a 422 naming the field, and another account keeps its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import boto3
import pytest

from infra.local.fake_endpoint import FakeEndpoint
from infra.local.fake_provider import FakeProvider
from infra.local.fake_voice import sign
from tests.faults.harness import Harness
from tests.faults.webhooks import NUMBER, SIGNATURE_SECRET, EventBridge
from tests.integration.test_uploads import run_ingest, upload_file
from tests.utils import Api, LambdaContext, campaign_body, recipient_rows, sqs_event, valid_phone

PERSON = valid_phone(3)
REGION = "us-east-1"


@pytest.fixture
def bridge(webhooks: EventBridge, monkeypatch: pytest.MonkeyPatch) -> EventBridge:
    """The provider's signed callbacks (tests/faults/conftest.py), and webhook retries at once."""
    monkeypatch.setenv("WEBHOOK_FIRST_RETRY_SECONDS", "0")
    from chalicelib.settings import get_settings

    get_settings.cache_clear()
    return webhooks


@pytest.fixture
def hook() -> Iterator[FakeEndpoint]:
    with FakeEndpoint() as endpoint:
        yield endpoint


def problem(answer: Any, status: int = 422) -> dict[str, Any]:
    assert answer.status_code == status, answer.body
    assert answer.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = json.loads(answer.body)
    return body


def run_jobs(harness: Harness, url: str, handler: str) -> list[dict[str, Any]]:
    """Hand every queued job of `url` to the function; the messages handed."""
    handed: list[dict[str, Any]] = []
    for _ in range(20):
        messages = harness._receive(url)
        if not messages:
            return handed
        handed += messages
        answer = getattr(harness.app, handler)(sqs_event(messages), LambdaContext(remaining_ms=300_000))
        harness._settle_messages(url, messages, answer)
    raise AssertionError("the jobs kept coming")


def everything() -> dict[str, tuple[str, str]]:
    """Every item of every DynamoDB table and every object of every bucket: where -> (whose, as text)."""
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    s3 = boto3.client("s3", region_name=REGION)
    found: dict[str, tuple[str, str]] = {}
    for table in dynamodb.list_tables()["TableNames"]:
        for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            for item in page["Items"]:
                key = "|".join(str(next(iter(item[name].values()))) for name in ("pk", "sk", "id") if name in item)
                found[f"{table} {key}"] = (key.split("#")[0], json.dumps(item, sort_keys=True))
    for bucket in s3.list_buckets()["Buckets"]:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket["Name"]):
            for item in page.get("Contents", []):
                body = s3.get_object(Bucket=bucket["Name"], Key=item["Key"])["Body"].read()
                text = item["Key"] + "\n" + body.decode("utf-8", "replace")
                found[f"{bucket['Name']}/{item['Key']}"] = (item["Key"].split("/")[1], text)
    return found


def traces(found: dict[str, tuple[str, str]], *, other: str) -> dict[str, str]:
    """Where the person's number is, in E.164 or digits only (another account's own things aside)."""
    return {
        where: text
        for where, (whose, text) in found.items()
        if whose != other and (PERSON in text or PERSON[1:] in text)
    }


def test_erasure_leaves_no_trace_of_the_number_in_any_table_or_object_and_keeps_the_counts(
    harness: Harness, bridge: EventBridge, provider: FakeProvider, hook: FakeEndpoint, api: Api
) -> None:
    tenant = harness.tenant
    harness.with_events = True
    tenant.ok("POST", "/v1/numbers", {"number": NUMBER, "help_text": "Acme: reply STOP to end."}, status=201)
    tenant.ok("POST", "/v1/webhooks", {"url": f"{hook.base_url}/hooks"}, status=201)
    # Another account has the same person on a list of its own, and suppressed.
    other = api.new_account("other")
    others = other.ok("POST", "/v1/lists", {"name": "theirs"}, status=201)
    other.ok("POST", f"/v1/lists/{others['id']}/recipients", {"recipients": [{"phone": PERSON}]})
    other.ok("POST", "/v1/suppressions", {"destination": PERSON, "channel": "sms"}, status=201)
    # The person on a second list of this account, with an attribute of their own.
    second = tenant.ok("POST", "/v1/lists", {"name": "second"}, status=201)
    # From a file uploaded to it (where they are twice)...
    upload = f"phone,first_name\n{PERSON},Ada\n{valid_phone(30)},Bo\n{PERSON},Ada\n".encode()
    upload_file(tenant, harness.env, second["id"], upload)
    run_ingest(harness.app, harness.env)
    # ... and through the API.
    rows = [{"phone": PERSON, "params": {"first_name": "Ada"}}, *recipient_rows(2, start=20)]
    tenant.ok("POST", f"/v1/lists/{second['id']}/recipients", {"recipients": rows})

    count = 8
    campaign = harness.campaign(
        count, sender=NUMBER, retry_policy=None, frequency_cap={"max_messages": 5, "period_days": 7}
    )
    final = harness.run(campaign["id"], on_round=lambda _: bridge.deliver(tenant))
    harness.settle(final, count)
    # The person replies STOP after the campaign; a receipt naming their message and no delivery is kept.
    provider.inbound(PERSON, NUMBER, "STOP")
    bridge.deliver(tenant)
    sent = next(m for m in provider.messages() if m["to"] == PERSON[1:])
    late = {"message_uuid": sent["message_uuid"], "status": "delivered", "to": PERSON[1:], "channel": "sms"}
    body = json.dumps({**late, "client_ref": "cmp_0000000000000000ffff:x:1"}).encode()
    signed = {"Content-Type": "application/json", "Authorization": f"Bearer {sign(body, SIGNATURE_SECRET)}"}
    kept = tenant.client.http.request("POST", "/v1/webhooks/vonage/status", headers=signed, body=body)
    assert json.loads(kept.body)["result"] == "kept"
    harness.stream()
    harness.webhooks()
    # The outcomes and the second list exported.
    exported = tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/exports", status=202)
    tenant.ok("POST", f"/v1/lists/{second['id']}/exports", status=202)
    run_jobs(harness, harness.env["EXPORT_QUEUE_URL"], "export")
    assert tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/exports/{exported['id']}")["state"] == "completed"

    before = everything()
    other_id = next(whose for where, (whose, _) in before.items() if f"#L#{others['id']}" in where)
    mentioned = traces(before, other=other_id)
    for kind in (
        "#L#",
        "#C#",
        "#SUP#",
        "#CAP#",
        "#WHD#",
        "RECEIPT#",
        "events/",
        "exports/",
        "uploads/",
    ):
        assert any(kind in where for where in mentioned), f"the test should put the number in {kind}: {mentioned}"
    counters = tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")["counters"]
    list_ids = [campaign["list_id"], second["id"]]
    sizes = {i: tenant.ok("GET", f"/v1/lists/{i}")["recipient_count"] for i in list_ids}
    events_before = tenant.ok("GET", "/v1/events?limit=100")["items"]

    # Bad input: a 422 naming the field, and nothing asked.
    for query, field in (
        ("", "destination"),
        ("?destination=12", "destination"),
        ("?destination=not-a-number", "destination"),
        (f"?destination={quote(PERSON)}&recipient_id={quote(PERSON)}", "recipient_id"),
        (f"?destination={quote(PERSON)}&suppress=maybe", "suppress"),
        (f"?destination={quote(PERSON)}&channel=fax", "channel"),
        (f"?destination={quote(PERSON)}&channel=email", "channel"),
    ):
        refused = problem(tenant.call("DELETE", f"/v1/recipients{query}"))
        assert [e["field"] for e in refused["errors"]] == [field], (query, refused)
    assert tenant.ok("GET", "/v1/erasures")["items"] == []
    assert harness._receive(harness.env["ERASURE_QUEUE_URL"]) == []

    # The erasure: accepted at once, carried out by its job.
    asked = tenant.ok("DELETE", f"/v1/recipients?destination={quote(PERSON)}", status=202)
    assert asked["status"] == "pending" and asked["scope"] == {"by": "destination", "channel": "all", "suppress": True}
    jobs = run_jobs(harness, harness.env["ERASURE_QUEUE_URL"], "erasure")
    harness.stream()
    harness.webhooks()
    done = tenant.ok("GET", f"/v1/erasures/{asked['id']}")
    assert done["status"] == "completed", done
    assert done["counts"]["list_items"] == 2 and done["counts"]["deliveries"] == 1, done
    assert done["counts"]["suppressions_anonymised"] == 1 and done["counts"]["caps"] == 1, done
    assert done["counts"]["receipts"] == 1 and done["counts"]["webhook_deliveries"] >= 2, done
    assert done["counts"]["upload_objects_removed"] == 1, done
    assert harness._receive(harness.env["INGEST_QUEUE_URL"]) == []  # nothing new to ingest
    assert done["counts"]["event_objects"] >= 2 and done["counts"]["export_objects"] == 2, done
    assert tenant.ok("GET", "/v1/erasures")["items"] == [done]

    after = everything()
    assert traces(after, other=other_id) == {}

    # The counts: the campaign's counters and its recount as before, each list one recipient fewer.
    assert tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")["counters"] == counters
    recount = tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/recount")
    assert recount["drift"] == {} and recount["after"] == counters, recount
    for list_id in list_ids:
        listed = tenant.ok("GET", f"/v1/lists/{list_id}/recipients?limit=100")["items"]
        assert tenant.ok("GET", f"/v1/lists/{list_id}")["recipient_count"] == sizes[list_id] - 1 == len(listed)
    outcomes = harness.outcomes(campaign["id"])
    erased = [o for o in outcomes if o["recipient_id"].startswith("erased_")]
    assert len(outcomes) == count and len(erased) == 1 and erased[0]["state"] == "succeeded"
    one = tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/recipients/{erased[0]['recipient_id']}")
    assert (one["state"], one["receipt"]) == ("succeeded", "delivered"), one
    problem(tenant.call("GET", f"/v1/campaigns/{campaign['id']}/recipients/{quote(PERSON)}"), 404)
    # The events are all still there (no new one for the erasure's own writes), the person's anonymised.
    events_after = tenant.ok("GET", "/v1/events?limit=100")["items"]
    assert [e["id"] for e in events_after] == [e["id"] for e in events_before]

    # A redelivered job and a second erasure change nothing more.
    harness.app.erasure(sqs_event(jobs), LambdaContext(remaining_ms=300_000))
    again = tenant.ok("DELETE", f"/v1/recipients?destination={quote(PERSON)}", status=202)
    run_jobs(harness, harness.env["ERASURE_QUEUE_URL"], "erasure")
    harness.stream()
    second_done = tenant.ok("GET", f"/v1/erasures/{again['id']}")
    assert second_done["status"] == "completed" and second_done["counts"] == {}, second_done
    assert tenant.ok("GET", f"/v1/erasures/{asked['id']}")["counts"] == done["counts"]
    unchanged = {where: text for where, text in everything().items() if "#ERASURES" not in where}
    assert unchanged == {where: text for where, text in after.items() if "#ERASURES" not in where}

    # Another account's person and suppression are as they were.
    assert other.ok("GET", f"/v1/lists/{others['id']}")["recipient_count"] == 1
    assert [s["destination"] for s in other.ok("GET", f"/v1/suppressions?destination={quote(PERSON)}")["items"]] == [
        PERSON
    ]
    assert other.ok("GET", "/v1/erasures")["items"] == []

    # The suppressions hold without the number: listed without it, and a new campaign to it skips them.
    kept = tenant.ok("GET", f"/v1/suppressions?destination={quote(PERSON)}")["items"]
    assert {s["destination"] for s in kept} == {None} and {s["source"] for s in kept} == {"inbound", "erasure"}
    fresh = tenant.ok("POST", "/v1/lists", {"name": "later"}, status=201)
    tenant.ok(
        "POST",
        f"/v1/lists/{fresh['id']}/recipients",
        {"recipients": [{"phone": PERSON, "params": {"first_name": "A"}}, *recipient_rows(1, 40)]},
    )
    later = tenant.ok("POST", "/v1/campaigns", campaign_body(fresh["id"], retry_policy=None), status=201)
    tenant.ok("POST", f"/v1/campaigns/{later['id']}/start")
    ended = harness.run(later["id"])
    skipped = {o["recipient_id"]: o for o in harness.outcomes(later["id"])}[PERSON]
    assert ended["status"] == "completed" and (skipped["state"], skipped["skip_reason"]) == ("skipped", "opted_out")


def test_erasure_by_recipient_id_takes_every_address_of_theirs_and_suppress_false_adds_no_suppression(
    harness: Harness,
) -> None:
    tenant = harness.tenant
    listed = tenant.ok("POST", "/v1/lists", {"name": "crm"}, status=201)
    ada = {
        "id": "crm-ada",
        "destinations": [{"type": "phone", "address": PERSON}, {"type": "email", "address": "Ada@Example.com"}],
    }
    added = tenant.ok(
        "POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": [ada, *recipient_rows(2, start=50)]}
    )
    assert added["accepted"] == 3, added

    asked = tenant.ok("DELETE", "/v1/recipients?recipient_id=crm-ada&suppress=false", status=202)
    assert asked["scope"] == {"by": "recipient_id", "channel": "all", "suppress": False}
    run_jobs(harness, harness.env["ERASURE_QUEUE_URL"], "erasure")

    done = tenant.ok("GET", f"/v1/erasures/{asked['id']}")
    assert (done["status"], done["counts"]) == ("completed", {"list_items": 1}), done
    assert tenant.ok("GET", f"/v1/lists/{listed['id']}")["recipient_count"] == 2
    assert tenant.ok("GET", "/v1/suppressions")["items"] == []
    found = traces(everything(), other="-")
    assert {w: t for w, t in found.items() if "crm-ada" in t or "ada@example.com" in t.lower()} == {} and found == {}
    assert "crm-ada" not in json.dumps(done) and PERSON not in json.dumps(done)


def test_an_erasure_while_a_campaign_runs_waits_for_it_then_leaves_no_trace(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ERASURE_WAIT_SECONDS", "0")
    from chalicelib.settings import get_settings

    get_settings.cache_clear()
    tenant = harness.tenant
    rows = recipient_rows(6)
    campaign = harness.campaign(rows, rate_per_second=2, retry_policy=None)
    harness.release()
    harness.dispatch()  # some of the list sent to, the rest still to come
    asked = tenant.ok("DELETE", f"/v1/recipients?destination={quote(PERSON)}", status=202)
    url = harness.env["ERASURE_QUEUE_URL"]
    first = harness._receive(url)
    harness._settle_messages(url, first, harness.app.erasure(sqs_event(first), LambdaContext(remaining_ms=300_000)))
    waiting = tenant.ok("GET", f"/v1/erasures/{asked['id']}")
    assert waiting["status"] == "waiting" and waiting["sending"] is True, waiting

    final = harness.run(campaign["id"])
    run_jobs(harness, url, "erasure")
    done = tenant.ok("GET", f"/v1/erasures/{asked['id']}")
    assert done["status"] == "completed" and done["sending"] is False, done
    # The redelivered first message is of a pass a later one followed: it changes nothing.
    harness.app.erasure(sqs_event(first), LambdaContext(remaining_ms=300_000))
    assert tenant.ok("GET", f"/v1/erasures/{asked['id']}")["counts"] == done["counts"]
    assert traces(everything(), other="-") == {}
    counters = tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")["counters"]
    assert final["status"] == "completed" and counters["total"] == sum(
        counters[k] for k in ("succeeded", "failed", "unknown", "skipped", "expired")
    ), counters
    recount = tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/recount")
    assert recount["drift"] == {}, recount


def test_a_job_stopped_by_its_time_budget_carries_on_where_it_stopped_and_the_counts_add_up_once(
    harness: Harness,
) -> None:
    from chalicelib.operations import erasure

    tenant = harness.tenant
    phone = valid_phone(9)
    ada = {
        "id": "crm-ada",
        "destinations": [{"type": "email", "address": "Ada@Example.com"}, {"type": "phone", "address": phone}],
    }
    rows = [{"phone": valid_phone(i), "params": {"first_name": "R"}} for i in range(3)]
    campaign = harness.campaign([{**ada, "attributes": {"first_name": "Ada"}}, *rows], channel="sms", retry_policy=None)
    harness.settle(harness.run(campaign["id"]), 4)
    asked = tenant.ok("DELETE", "/v1/recipients?destination=ADA%40example.com", status=202)
    url = harness.env["ERASURE_QUEUE_URL"]
    [message] = harness._receive(url)
    harness.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    budget = iter([100.0, 100.0, 1.0])  # time for two steps, then the deadline is near
    assert erasure.run(json.loads(message["Body"]), lambda: next(budget, 1.0)) == "continued"
    stopped = tenant.ok("GET", f"/v1/erasures/{asked['id']}")
    assert (stopped["status"], stopped["counts"]) == ("running", {"list_items": 1, "deliveries": 1}), stopped
    [carried] = harness._receive(url)
    assert json.loads(carried["Body"])["step"] == 2 and "crm-ada" in json.loads(carried["Body"])["ids"]
    harness._settle_messages(url, [carried], harness.app.erasure(sqs_event([carried]), LambdaContext(300_000)))
    done = tenant.ok("GET", f"/v1/erasures/{asked['id']}")
    assert done["status"] == "completed" and done["runs"] == 2, done
    # Named by their email in other letters, found, and erased with every address of theirs: the phone in its 6
    # scopes, the email as stored and as asked in the email scope.
    assert done["counts"] == {"list_items": 1, "deliveries": 1, "suppressions_added": 8}, done
    found = everything().items()
    leftover = {w: t for w, (_, t) in found if any(x in t.lower() for x in ("ada@example.com", "crm-ada", phone[1:]))}
    assert leftover == {}, leftover
    kept = tenant.ok("GET", "/v1/suppressions")["items"]
    assert len(kept) == 8 and {(s["destination"], s["source"]) for s in kept} == {(None, "erasure")}
