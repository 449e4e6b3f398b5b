"""Suppression imports through the uploads path (decision 44): POST /v1/suppressions/imports hands out a
presigned URL; the file's S3 notification reaches the ingest worker, which suppresses each good row in batches
and reports each bad one by line; GET /v1/suppressions/imports/{id} shows progress and the result."""

from __future__ import annotations

from typing import Any

import boto3
import pytest

from tests.integration.test_uploads import key_of, put_file, rejected_rows, run_ingest
from tests.utils import Api, receive_all, valid_phone

pytestmark = pytest.mark.integration


def start_import(tenant: Api, data: bytes, **body: Any) -> dict[str, Any]:
    return dict(
        tenant.ok(
            "POST", "/v1/suppressions/imports", {"filename": "stops.csv", "size_bytes": len(data), **body}, status=201
        )
    )


def listed(tenant: Api, channel: str) -> dict[str, dict[str, Any]]:
    page = tenant.ok("GET", f"/v1/suppressions?channel={channel}&limit=100")
    return {f"{item['scope']} {item['destination']}": item for item in page["items"]}


def test_good_rows_are_suppressed_bad_ones_reported_by_line_and_a_second_notification_changes_nothing(
    chalice_app: Any, aws_env: dict[str, str], tenant: Api
) -> None:
    tenant.ok("POST", "/v1/suppressions", {"destination": "Before@Example.com", "channel": "email"}, status=201)
    data = (
        "Destination,channel,note\n"
        "ann@example.com,,from the old tool\n"  # line 2: the import's channel (email)
        f"{valid_phone(1)},sms,\n"  # line 3
        "not an address,,\n"  # line 4: bad email
        f"{valid_phone(2)},fax,\n"  # line 5: no such channel
        ",sms,\n"  # line 6: no destination
        "ann@example.com,email,\n"  # line 7: again in the file
        "Before@EXAMPLE.com,,\n"  # line 8: suppressed before, through the API (the same address)
        f"{valid_phone(3)},all,\n"  # line 9: every scope
        "12345,sms,\n"  # line 10: not a number
    ).encode()
    created = start_import(tenant, data, channel="email")
    assert created["state"] == "awaiting_file" and created["upload_url"]
    key = key_of(created["upload_url"], aws_env["UPLOADS_BUCKET"])
    put_file(aws_env, key, data)

    notifications = [m for m in receive_all(aws_env["INGEST_QUEUE_URL"]) if '"Records"' in m["Body"]]
    assert len(notifications) == 1  # (S3's test event aside)
    sqs = boto3.client("sqs", region_name="us-east-1")
    sqs.send_message(QueueUrl=aws_env["INGEST_QUEUE_URL"], MessageBody=notifications[0]["Body"])  # S3 again, later
    sqs.send_message(QueueUrl=aws_env["INGEST_QUEUE_URL"], MessageBody=notifications[0]["Body"])
    run_ingest(chalice_app, aws_env)

    report = tenant.ok("GET", f"/v1/suppressions/imports/{created['id']}")
    assert report["state"] == "completed" and report["channel"] == "email" and report["error"] is None
    assert (report["rows_read"], report["accepted"], report["invalid"], report["duplicates"]) == (9, 3, 4, 2)
    rows = rejected_rows(aws_env, report)
    assert rows[0] == ["line", "reason", "field", "detail"]
    assert [(line, reason, field) for line, reason, field, _ in rows[1:]] == [
        ("4", "invalid_email", "Destination"),
        ("5", "invalid_channel", "channel"),
        ("6", "invalid_row", "Destination"),
        ("10", "invalid_phone", "Destination"),
    ]
    emails = listed(tenant, "email")
    assert sorted(emails) == [f"email {valid_phone(3)}", "email Before@example.com", "email ann@example.com"]
    assert emails["email ann@example.com"]["source"] == "import"
    assert emails["email Before@example.com"]["source"] == "api"
    assert "line 2" in emails["email ann@example.com"]["reason"]
    assert sorted(listed(tenant, "sms")) == [f"sms {valid_phone(1)}", f"sms {valid_phone(3)}"]
    assert f"voice {valid_phone(3)}" in listed(tenant, "all")

    # The notification once more, after the import completed: nothing changes.
    everything = listed(tenant, "all")
    sqs.send_message(QueueUrl=aws_env["INGEST_QUEUE_URL"], MessageBody=notifications[0]["Body"])
    run_ingest(chalice_app, aws_env)
    again = tenant.ok("GET", f"/v1/suppressions/imports/{created['id']}")
    assert {**again, "rejected_rows_url": None} == {**report, "rejected_rows_url": None}
    assert listed(tenant, "all") == everything


def test_a_file_without_a_destination_column_fails_whole_and_bad_requests_change_nothing(
    chalice_app: Any, aws_env: dict[str, str], tenant: Api
) -> None:
    data = b"name,number_of_cats\nAnn,3\n"
    created = start_import(tenant, data, channel="sms")
    put_file(aws_env, key_of(created["upload_url"], aws_env["UPLOADS_BUCKET"]), data)
    run_ingest(chalice_app, aws_env)
    failed = tenant.ok("GET", f"/v1/suppressions/imports/{created['id']}")
    assert failed["state"] == "failed" and failed["error"]["code"] == "bad_mapping"
    assert "destination" in failed["error"]["detail"]

    refused = tenant.call("POST", "/v1/suppressions/imports", {"filename": "x.csv", "size_bytes": 10, "channel": "fax"})
    assert refused.status_code == 422 and b"channel" in refused.body
    too_big = tenant.call("POST", "/v1/suppressions/imports", {"filename": "x.csv", "size_bytes": 200_000_000})
    assert too_big.status_code == 422 and b"size_bytes" in too_big.body
    odd = tenant.call("POST", "/v1/suppressions/imports", {"filename": "x.pdf", "size_bytes": 10})
    assert odd.status_code == 422 and b"format" in odd.body
    assert tenant.call("GET", "/v1/suppressions/imports/upl_00000000000000000000").status_code == 404
    assert listed(tenant, "all") == {}


def test_an_object_dropped_under_the_suppressions_prefix_without_an_import_is_left(
    chalice_app: Any, aws_env: dict[str, str], tenant: Api
) -> None:
    from chalicelib.store.accounts import account_for_api_key

    account = account_for_api_key(str(tenant.api_key))
    data = b"destination,channel\nann@example.com,email\n"
    put_file(aws_env, f"uploads/{account}/suppressions/stops.csv", data)  # no import made it: no channel, no report
    put_file(aws_env, f"uploads/{account}/suppressions/upl_00000000000000000000/stops.csv", data)
    run_ingest(chalice_app, aws_env)
    assert listed(tenant, "email") == {}


@pytest.mark.parametrize("crash_in", ["checkpoint", "writes"])
def test_a_crash_in_a_batch_loses_and_doubles_nothing(
    chalice_app: Any, aws_env: dict[str, str], api: Api, monkeypatch: pytest.MonkeyPatch, crash_in: str
) -> None:
    """The worker dies in the second batch, after its suppressions are written and before its checkpoint, or
    between two of its BatchWriteItems; the redelivered notification finishes it with the counts of a run
    without a crash."""
    from chalicelib.operations import ingest as ingest_operation
    from chalicelib.store import aws as aws_store
    from chalicelib.store import uploads as upload_store
    from tests.integration.test_uploads import crash_on_call
    from tests.utils import LambdaContext, sqs_event

    monkeypatch.setattr(ingest_operation, "BATCH_ROWS", 40)
    monkeypatch.setattr(aws_store, "BATCH_WRITE_ITEMS", 10)
    lines = ["destination"]
    for i in range(100):
        lines.append("bad" if i % 13 == 0 else valid_phone(i % 70))  # rows 70..99 repeat earlier ones
    data = ("\n".join(lines) + "\n").encode()

    def imported(tenant: Api) -> str:
        created = start_import(tenant, data, channel="sms")
        put_file(aws_env, key_of(created["upload_url"], aws_env["UPLOADS_BUCKET"]), data)
        return str(created["id"])

    reference_tenant = api.new_account("reference")
    reference_id = imported(reference_tenant)
    run_ingest(chalice_app, aws_env)
    reference = reference_tenant.ok("GET", f"/v1/suppressions/imports/{reference_id}")

    tenant = api.new_account("crashed")
    crashed_id = imported(tenant)
    notification = [m for m in receive_all(aws_env["INGEST_QUEUE_URL"]) if '"Records"' in m["Body"]]
    if crash_in == "checkpoint":
        crash_on_call(monkeypatch, upload_store, "checkpoint", 2)
    else:  # the second batch's first BatchWriteItems go through, then the worker dies
        real_put, calls = aws_store.batch_put, {"n": 0}

        def half_then_crash(table: str, items: list[dict[str, Any]]) -> None:
            calls["n"] += "#SUP#" in str(items[0]["pk"]) if items else 0  # the suppressions' writes, not the report's
            if calls["n"] == 2 and "#SUP#" in str(items[0]["pk"]):
                real_put(table, items[: len(items) // 2])
                raise RuntimeError("injected crash between BatchWriteItems")
            real_put(table, items)

        monkeypatch.setattr(aws_store, "batch_put", half_then_crash)
    answer = chalice_app.ingest(sqs_event(notification), LambdaContext(290_000))
    assert answer == {"batchItemFailures": [{"itemIdentifier": notification[0]["MessageId"]}]}
    half = tenant.ok("GET", f"/v1/suppressions/imports/{crashed_id}")
    assert half["state"] == "ingesting" and half["rows_read"] == 40

    boto3.client("sqs", region_name="us-east-1").send_message(
        QueueUrl=aws_env["INGEST_QUEUE_URL"], MessageBody=notification[0]["Body"]
    )
    run_ingest(chalice_app, aws_env)

    done = tenant.ok("GET", f"/v1/suppressions/imports/{crashed_id}")
    assert done["state"] == "completed"
    counted = ("rows_read", "accepted", "invalid", "duplicates")
    assert [done[n] for n in counted] == [reference[n] for n in counted] == [100, 67, 8, 25]
    assert len(listed(tenant, "sms")) == len(listed(reference_tenant, "sms")) == 67
