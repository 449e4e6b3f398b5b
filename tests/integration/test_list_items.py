"""Recipients with an id and several destinations, through the API to the provider: the channel's
destination is chosen per recipient, outcomes follow the id, and exclusion lists skip recipients."""

from __future__ import annotations

from typing import Any

import pytest

from infra.local.fake_provider import FakeProvider
from tests.utils import Api, LambdaContext, campaign_body, receive_all, run_release_jobs, sqs_event

pytestmark = pytest.mark.integration


def item(rid: str, *destinations: tuple[str, str], **attributes: Any) -> dict[str, Any]:
    return {
        "id": rid,
        "destinations": [{"type": t, "address": a} for t, a in destinations],
        "attributes": {"first_name": rid.upper(), **attributes},
    }


def run(tenant: Api, aws_env: dict[str, str], chalice_app: Any, list_id: str, **overrides: Any) -> dict[str, Any]:
    campaign = tenant.ok("POST", "/v1/campaigns", campaign_body(list_id, **overrides), status=201)
    tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/start")
    run_release_jobs(chalice_app, aws_env["RELEASE_QUEUE_URL"])
    chalice_app.dispatch(sqs_event(receive_all(aws_env["DISPATCH_QUEUE_URL"])), LambdaContext())
    return dict(campaign)


def test_items_with_several_destinations_are_sent_to_the_channels_destination_and_reported_by_id(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider
) -> None:
    listed = tenant.ok("POST", "/v1/lists", {"name": "customers"}, status=201)
    rows = [
        item("crm-1", ("email", "one@example.com"), ("phone", "07911 123456")),  # the number is national (GB)
        item("crm-2", ("phone", "+14155550102"), ("phone", "+14155550103")),
        item("crm-3", ("email", "three@example.com")),  # nothing an SMS can reach
        {"phone": "+14155550104", "params": {"first_name": "SHORT"}},  # the first API version's shorthand
        item("crm-1", ("phone", "+14155550105")),  # the same id again
        item("crm-6", ("phone", "+1 800 FLOWERS")),  # letters are not keypad digits
    ]
    report = tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows, "default_region": "GB"})
    assert (report["accepted"], report["duplicates"], report["invalid"]) == (4, 1, 1)
    assert [(r["index"], r["reason"], r["field"], r["id"]) for r in report["rejected"]] == [
        (4, "duplicate", "id", "crm-1"),
        (5, "invalid_phone", "destinations[0].address", "crm-6"),
    ]
    listed_items = {i["id"]: i for i in tenant.ok("GET", f"/v1/lists/{listed['id']}/recipients")["items"]}
    assert listed_items["crm-1"]["destinations"] == [
        {"type": "email", "address": "one@example.com"},
        {"type": "phone", "address": "+447911123456"},
    ]
    assert listed_items["+14155550104"]["attributes"] == {"first_name": "SHORT"}

    campaign = run(tenant, aws_env, chalice_app, listed["id"])

    texts = {m["to"]: m["text"] for m in provider.messages()}
    assert texts == {
        "447911123456": "Hi CRM-1, 20% off today.",
        "14155550102": "Hi CRM-2, 20% off today.",
        "14155550104": "Hi SHORT, 20% off today.",
    }
    page = tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/recipients")["items"]
    outcomes = {o["recipient_id"]: o for o in page}
    assert {rid: (o["state"], o["destination_index"], o["destination"]) for rid, o in outcomes.items()} == {
        "crm-1": ("succeeded", 1, "+447911123456"),
        "crm-2": ("succeeded", 0, "+14155550102"),
        "crm-3": ("failed", None, None),
        "+14155550104": ("succeeded", 0, "+14155550104"),
    }
    assert outcomes["crm-3"]["last_error"].startswith("no_destination")


def test_recipients_in_an_exclusion_list_by_id_or_destination_are_skipped_as_excluded(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider
) -> None:
    audience = tenant.ok("POST", "/v1/lists", {"name": "audience"}, status=201)
    rows = [item(f"crm-{n}", ("phone", f"+1415555{n:04d}")) for n in range(10)]
    tenant.ok("POST", f"/v1/lists/{audience['id']}/recipients", {"recipients": rows})
    by_id = tenant.ok("POST", "/v1/lists", {"name": "churned"}, status=201)
    tenant.ok(
        "POST",
        f"/v1/lists/{by_id['id']}/recipients",
        {"recipients": [item("crm-1", ("email", "x@example.com")), item("crm-404", ("phone", "+14155550404"))]},
    )
    by_number = tenant.ok("POST", "/v1/lists", {"name": "do not text"}, status=201)
    tenant.ok("POST", f"/v1/lists/{by_number['id']}/recipients", {"recipients": [{"phone": "+14155550007"}]})

    missing = tenant.call(
        "POST", "/v1/campaigns", campaign_body(audience["id"], exclusion_list_ids=[by_id["id"], "lst_nope"])
    )
    assert missing.status_code == 422
    assert missing.json_body["errors"][0]["field"] == "exclusion_list_ids[1]"

    campaign = run(tenant, aws_env, chalice_app, audience["id"], exclusion_list_ids=[by_id["id"], by_number["id"]])

    sent_to = sorted(m["to"] for m in provider.messages())
    assert sent_to == sorted(f"1415555{n:04d}" for n in range(10) if n not in (1, 7))
    outcomes = {o["recipient_id"]: o for o in tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/recipients")["items"]}
    assert {rid for rid, o in outcomes.items() if o["state"] == "skipped"} == {"crm-1", "crm-7"}
    assert {o["skip_reason"] for o in outcomes.values() if o["state"] == "skipped"} == {"excluded"}
