"""A user's path through S3 on the whole local stack: a CSV with several destinations per row PUT to a
presigned URL, ingested by the worker through S3's notification, a campaign run over it, each
recipient's outcome checked against its own id, and the outcomes exported as CSV."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.local.client import CampaignApi
from infra.local.stack import LocalStack

pytestmark = pytest.mark.e2e

# id, email, mobile, mobile 2, first name, plan: the mapping comes from the header names.
ROWS = [
    ["customer_id", "email", "mobile", "mobile_2", "first_name", "plan"],
    ["c-001", "ada@example.com", "+14155550101", "", "Ada", "pro"],
    ["c-002", "grace@example.com", "", "+14155550102", "Grace", "free"],  # only the second number
    ["c-003", "alan@example.com", "", "", "Alan", "team"],  # no number: SMS cannot reach him
    ["c-004", "not-an-email", "+14155550104", "", "Edsger", "pro"],  # line 5: bad email
    ["c-005", "", "+1 415 555 0105", "", "Barbara", "=HYPERLINK(1)"],  # the attribute is exported neutralised
    ["c-001", "", "+14155550199", "", "Dup", "pro"],  # line 7: the same id again
    ["c-007", "", "+1415555", "", "Short", "pro"],  # line 8: not a valid number
    ["c-008", "", "+14155550108", "", "Ken"],  # line 9: ragged
    ["c-009", "", "+14155550109", "+14155550119", "Linus", "team"],
]


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(provider_rate_limit=0, provider_transient_failure_rate=0, seed=5) as running:
        yield running


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[CampaignApi]:
    client = CampaignApi.for_new_account(stack.api_url, stack.admin_token, name="e2e uploads")
    yield client
    client.close()


def written_csv(tmp_path: Path) -> Path:
    path = tmp_path / "customers.csv"
    with path.open("w", newline="", encoding="utf-8-sig") as f:  # with a BOM, as spreadsheets write it
        csv.writer(f).writerows(ROWS)
    return path


def wait_completed(api: CampaignApi, campaign_id: str, limit: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while (campaign := api.campaign(campaign_id))["status"] != "completed":
        assert time.monotonic() < deadline, campaign
        time.sleep(0.5)
    return campaign


def test_a_csv_uploaded_through_s3_is_ingested_sent_and_reported_per_recipient_id(
    stack: LocalStack, api: CampaignApi, tmp_path: Path
) -> None:
    listed = api.create_list("customers")
    created = api.upload_file(listed["id"], written_csv(tmp_path))
    assert created["state"] == "awaiting_file" and created["upload_url"]
    upload = api.wait_upload(listed["id"], created["id"], timeout=120)

    assert (upload["state"], upload["rows_read"], upload["accepted"]) == ("completed", 9, 5)
    assert (upload["invalid"], upload["duplicates"]) == (3, 1)
    rejected = list(csv.DictReader(io.StringIO(httpx.get(upload["rejected_rows_url"], timeout=30).text)))
    assert [(r["line"], r["reason"], r["field"]) for r in rejected] == [
        ("5", "invalid_email", "email"),  # the file's column, not the row's destination index
        ("8", "invalid_phone", "mobile"),
        ("9", "invalid_row", "row"),
    ]
    assert api.call("GET", f"/v1/lists/{listed['id']}")["recipient_count"] == 5

    campaign = api.create_campaign(
        {
            "name": "upload e2e",
            "list_id": listed["id"],
            "sender": "Acme",
            "template": "Hi {{ first_name }}, your {{ plan }} plan",
            "rate_per_second": 50,
        }
    )
    api.act(campaign["id"], "start")
    final = wait_completed(api, campaign["id"])
    assert final["counters"] | {"queued": 0} == {
        "total": 5, "queued": 0, "in_flight": 0, "succeeded": 4, "failed": 1, "unknown": 0, "skipped": 0, "expired": 0,
        "skipped_by_reason": {}, "not_included": 0, "delivered": 0, "read": 0, "undelivered": 0,
        "clicked": 0, "clicks": 0, "converted": 0, "conversions": 0, "replied": 0,
    }  # fmt: skip

    outcomes = {o["recipient_id"]: o for o in api.outcomes(campaign["id"])}
    assert {rid: (o["state"], o["destination_index"], o["destination"]) for rid, o in outcomes.items()} == {
        "c-001": ("succeeded", 1, "+14155550101"),  # destination 0 is the email
        "c-002": ("succeeded", 1, "+14155550102"),  # the empty first number is left out
        "c-003": ("failed", None, None),
        "c-005": ("succeeded", 0, "+14155550105"),
        "c-009": ("succeeded", 0, "+14155550109"),  # no email: the first number is destination 0
    }
    assert outcomes["c-003"]["last_error"].startswith("no_destination")
    sent = httpx.get(f"{stack.provider_url}/_fake/messages", timeout=30).json()["messages"]
    assert sorted((m["to"], m["text"]) for m in sent) == [
        ("14155550101", "Hi Ada, your pro plan"),
        ("14155550102", "Hi Grace, your free plan"),
        ("14155550105", "Hi Barbara, your =HYPERLINK(1) plan"),
        ("14155550109", "Hi Linus, your team plan"),
    ]

    export = api.call("POST", f"/v1/campaigns/{campaign['id']}/exports")
    deadline = time.monotonic() + 60
    while (export := api.call("GET", f"/v1/campaigns/{campaign['id']}/exports/{export['id']}"))["state"] != "completed":
        assert time.monotonic() < deadline, export
        time.sleep(0.5)
    exported = list(csv.DictReader(io.StringIO(httpx.get(export["download_url"], timeout=30).text)))
    assert {r["recipient_id"]: (r["state"], r["destination"]) for r in exported} == {
        "c-001": ("succeeded", "'+14155550101"),  # a cell starting with + is neutralised in every export
        "c-002": ("succeeded", "'+14155550102"),
        "c-003": ("failed", ""),
        "c-005": ("succeeded", "'+14155550105"),
        "c-009": ("succeeded", "'+14155550109"),
    }

    list_export = api.call("POST", f"/v1/lists/{listed['id']}/exports")
    deadline = time.monotonic() + 60
    while (list_export := api.call("GET", f"/v1/lists/{listed['id']}/exports/{list_export['id']}"))[
        "state"
    ] != "completed":
        assert time.monotonic() < deadline, list_export
        time.sleep(0.5)
    text = httpx.get(list_export["download_url"], timeout=30).text
    assert "'=HYPERLINK(1)" in text and ",=HYPERLINK" not in text


def test_a_suppression_file_put_to_its_presigned_url_is_ingested_and_its_bad_rows_reported(
    stack: LocalStack, api: CampaignApi
) -> None:
    data = b"destination,channel\nada@example.com,email\n+14155550101,sms\nnot-a-number,sms\n+14155550102,\n"
    created = api.call(
        "POST", "/v1/suppressions/imports", {"filename": "stops.csv", "size_bytes": len(data), "channel": "sms"}
    )
    put = httpx.put(created["upload_url"], content=data, timeout=30)  # S3's notification starts the ingest
    assert put.status_code == 200, put.text
    deadline = time.monotonic() + 120
    while (done := api.call("GET", f"/v1/suppressions/imports/{created['id']}"))["state"] != "completed":
        assert time.monotonic() < deadline and done["state"] != "failed", done
        time.sleep(0.5)

    assert (done["rows_read"], done["accepted"], done["invalid"], done["duplicates"]) == (4, 3, 1, 0)
    rejected = list(csv.DictReader(io.StringIO(httpx.get(done["rejected_rows_url"], timeout=30).text)))
    assert [(r["line"], r["reason"], r["field"]) for r in rejected] == [("4", "invalid_phone", "destination")]
    listed = api.call("GET", "/v1/suppressions?channel=all&limit=100")["items"]
    assert sorted((s["scope"], s["destination"], s["source"]) for s in listed) == [
        ("email", "ada@example.com", "import"),
        ("sms", "+14155550101", "import"),
        ("sms", "+14155550102", "import"),
    ]
