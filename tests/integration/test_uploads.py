"""List uploads through S3 (issue 7): presigned upload -> S3 notification -> ingest queue -> ingest worker.

In mock_aws the file is put with boto3 at the presigned URL's key (an HTTP PUT to the URL would not reach
mock_aws); moto delivers the bucket's notification to the ingest queue, and the tests hand the queue's
messages to the `ingest` handler as Lambda's event source mapping would. The last test runs the real
presigned URL through the local stack, where the event runner does that.
"""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any
from urllib.parse import unquote, urlparse

import boto3
import pytest

from chalicelib.domain.uploads import dropped_upload_id
from chalicelib.operations import ingest as ingest_operation
from chalicelib.store import lists
from chalicelib.store import uploads as upload_store
from tests.utils import Api, LambdaContext, receive_all, sqs_event, valid_phone

pytestmark = pytest.mark.integration


# --- helpers -------------------------------------------------------------------------------------


def new_list(tenant: Api) -> str:
    return str(tenant.ok("POST", "/v1/lists", {"name": "uploads"}, status=201)["id"])


def start_upload(tenant: Api, list_id: str, filename: str = "people.csv", size: int = 1000, **body: Any) -> Any:
    return tenant.ok(
        "POST", f"/v1/lists/{list_id}/uploads", {"filename": filename, "size_bytes": size, **body}, status=201
    )


def key_of(url: str, bucket: str) -> str:
    """The object key a presigned URL names (virtual-host or path style)."""
    parsed = urlparse(url)
    path = unquote(parsed.path.lstrip("/"))
    return path if parsed.hostname and parsed.hostname.startswith(bucket) else path.split("/", 1)[1]


def put_file(env: dict[str, str], key: str, data: bytes) -> None:
    boto3.client("s3", region_name="us-east-1").put_object(Bucket=env["UPLOADS_BUCKET"], Key=key, Body=data)


def upload_file(tenant: Api, env: dict[str, str], list_id: str, data: bytes, filename: str = "people.csv") -> str:
    created = start_upload(tenant, list_id, filename, size=len(data))
    put_file(env, key_of(created["upload_url"], env["UPLOADS_BUCKET"]), data)
    return str(created["id"])


def run_ingest(chalice_app: Any, env: dict[str, str], remaining_ms: int = 290_000) -> list[dict[str, Any]]:
    """Hand every message of the ingest queue to the handler, one per invocation (batch size 1), until the
    queue is empty (continuations included); the messages handled."""
    handled: list[dict[str, Any]] = []
    for _ in range(200):
        messages = receive_all(env["INGEST_QUEUE_URL"])
        if not messages:
            return handled
        for message in messages:
            answer = chalice_app.ingest(sqs_event([message]), LambdaContext(remaining_ms))
            assert answer == {"batchItemFailures": []}, answer
            handled.append(message)
    raise AssertionError("the ingest queue never drained")


def crash_on_call(monkeypatch: pytest.MonkeyPatch, module: Any, name: str, crash_at: int) -> None:
    """`module.name` raises on its `crash_at`-th call (the worker dies there), and works before and after."""
    real = getattr(module, name)
    calls = {"n": 0}

    def crash(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == crash_at:
            raise RuntimeError(f"injected crash in {name}")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, crash)


def get_upload(tenant: Api, list_id: str, upload_id: str) -> Any:
    return tenant.ok("GET", f"/v1/lists/{list_id}/uploads/{upload_id}")


def rejected_rows(env: dict[str, str], upload: dict[str, Any]) -> list[list[str]]:
    key = key_of(upload["rejected_rows_url"], env["UPLOADS_BUCKET"])
    body = boto3.client("s3", region_name="us-east-1").get_object(Bucket=env["UPLOADS_BUCKET"], Key=key)["Body"]
    return list(csv.reader(io.StringIO(body.read().decode("utf-8"))))


def listed(tenant: Api, list_id: str) -> list[dict[str, Any]]:
    return list(tenant.ok("GET", f"/v1/lists/{list_id}/recipients?limit=1000")["items"])


def recipient_count(tenant: Api, list_id: str) -> int:
    return int(tenant.ok("GET", f"/v1/lists/{list_id}")["recipient_count"])


def phones_csv(rows: int, start: int = 0) -> bytes:
    lines = ["phone,first_name"] + [f"{valid_phone(start + i)},R{start + i}" for i in range(rows)]
    return ("\n".join(lines) + "\n").encode()


def counts(upload: dict[str, Any]) -> tuple[int, int, int, int]:
    return upload["rows_read"], upload["accepted"], upload["invalid"], upload["duplicates"]


# --- the happy path and bad rows -----------------------------------------------------------------


def test_a_csv_with_several_destinations_per_row_and_bad_rows(
    chalice_app: Any, aws_env: dict[str, str], tenant: Api
) -> None:
    list_id = new_list(tenant)
    data = (
        "id,phone,email,whatsapp,first_name,plan\n"
        f"c1,{valid_phone(1)},one@example.com,{valid_phone(2)},Ann,gold\n"
        f"c2,{valid_phone(3)},,,Bob,silver\n"
        "c3,not-a-number,,,Cid,gold\n"  # line 4: bad phone
        "c4,,,,Dee,gold\n"  # line 5: no destination
        f"c5,{valid_phone(5)},five@example.com\n"  # line 6: ragged
        f"c1,{valid_phone(6)},,,Ann again,gold\n"  # line 7: the id c1 again
        f'c6,{valid_phone(7)},"six@example.com",,"=HYPERLINK(""x"")",gold\n'
        "c7,,bad@@example,,Eve,gold\n"  # line 9: bad email
    ).encode()
    upload_id = upload_file(tenant, aws_env, list_id, data)
    assert get_upload(tenant, list_id, upload_id)["state"] == "awaiting_file"

    run_ingest(chalice_app, aws_env)

    upload = get_upload(tenant, list_id, upload_id)
    assert upload["state"] == "completed" and upload["error"] is None
    assert counts(upload) == (8, 3, 4, 1)
    assert upload["finished_at"] and upload["created_at"]
    rows = rejected_rows(aws_env, upload)
    assert rows[0] == ["line", "reason", "field", "detail"]
    assert [(r[0], r[1], r[2]) for r in rows[1:]] == [
        ("4", "invalid_phone", "phone"),  # the file's column
        ("5", "invalid_row", "destinations"),
        ("6", "invalid_row", "row"),
        ("9", "invalid_email", "email"),  # the first non-empty destination, named by its column
    ]
    assert rows[4][3].startswith("email: not a valid email address")
    items = {item["id"]: item for item in listed(tenant, list_id)}
    assert set(items) == {"c1", "c2", "c6"}
    assert [d["type"] for d in items["c1"]["destinations"]] == ["phone", "email", "whatsapp"]
    assert items["c1"]["attributes"] == {"first_name": "Ann", "plan": "gold"}
    assert items["c6"]["attributes"]["first_name"] == '=HYPERLINK("x")'  # data is kept as written
    assert recipient_count(tenant, list_id) == 3


def test_the_rejected_rows_file_neutralises_formulas(chalice_app: Any, aws_env: dict[str, str], tenant: Api) -> None:
    list_id = new_list(tenant)
    data = b"id,phone\n=cmd|calc,not-a-phone\n"
    upload_id = upload_file(tenant, aws_env, list_id, data)
    run_ingest(chalice_app, aws_env)
    upload = get_upload(tenant, list_id, upload_id)
    assert counts(upload) == (1, 0, 1, 0)
    rows = rejected_rows(aws_env, upload)
    assert rows[1][0] == "2" and not any(cell.startswith(("=", "+", "-", "@")) for cell in rows[1])


def test_an_s3_test_event_and_a_key_outside_uploads_are_ignored(
    chalice_app: Any, aws_env: dict[str, str], tenant: Api
) -> None:
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": aws_env["UPLOADS_BUCKET"]}
    assert ingest_operation.handle_message(test_event, LambdaContext()) == ["ignored: test event"]
    assert ingest_operation.ingest_object("elsewhere/x.csv", "abc", LambdaContext()).startswith("skipped")
    assert ingest_operation.ingest_object("uploads/acc_nobody/lst_none/x.csv", "abc", None).startswith("skipped")


# --- exactly once ---------------------------------------------------------------------------------


def test_a_second_notification_of_the_same_object_changes_nothing(
    chalice_app: Any, aws_env: dict[str, str], tenant: Api
) -> None:
    list_id = new_list(tenant)
    upload_id = upload_file(tenant, aws_env, list_id, phones_csv(30))
    handled = run_ingest(chalice_app, aws_env)
    first = get_upload(tenant, list_id, upload_id)
    assert counts(first) == (30, 30, 0, 0)

    notifications = [m for m in handled if "Records" in json.loads(m["Body"])]
    assert len(notifications) == 1
    sqs = boto3.client("sqs", region_name="us-east-1")
    for _ in range(2):
        sqs.send_message(QueueUrl=aws_env["INGEST_QUEUE_URL"], MessageBody=notifications[0]["Body"])
    run_ingest(chalice_app, aws_env)

    again = get_upload(tenant, list_id, upload_id)
    assert counts(again) == counts(first) and again["finished_at"] == first["finished_at"]
    assert recipient_count(tenant, list_id) == 30 and len(listed(tenant, list_id)) == 30


def test_the_same_key_with_new_content_is_a_new_ingest(chalice_app: Any, aws_env: dict[str, str], tenant: Api) -> None:
    list_id = new_list(tenant)
    created = start_upload(tenant, list_id)
    key = key_of(created["upload_url"], aws_env["UPLOADS_BUCKET"])
    put_file(aws_env, key, phones_csv(10))
    run_ingest(chalice_app, aws_env)
    put_file(aws_env, key, phones_csv(10, start=5))  # 5 already listed, 5 new
    run_ingest(chalice_app, aws_env)
    upload = get_upload(tenant, list_id, created["id"])
    assert upload["state"] == "completed" and counts(upload) == (10, 5, 0, 5)
    assert recipient_count(tenant, list_id) == 15


def test_a_file_spreads_over_invocations_when_time_runs_short(
    chalice_app: Any, aws_env: dict[str, str], tenant: Api
) -> None:
    list_id = new_list(tenant)
    rows = 2 * ingest_operation.BATCH_ROWS + 123
    upload_id = upload_file(tenant, aws_env, list_id, phones_csv(rows))

    # Under a minute left: each invocation does one batch, then queues a continuation and returns.
    handled = run_ingest(chalice_app, aws_env, remaining_ms=30_000)

    continuations = [json.loads(m["Body"]) for m in handled if "ingest" in json.loads(m["Body"])]
    batch = ingest_operation.BATCH_ROWS  # the header is line 1
    assert [c["ingest"]["line"] for c in continuations] == [batch + 2, 2 * batch + 2]
    upload = get_upload(tenant, list_id, upload_id)
    assert upload["state"] == "completed" and counts(upload) == (rows, rows, 0, 0)
    assert recipient_count(tenant, list_id) == rows


@pytest.mark.parametrize("crash_in", ["checkpoint", "count", "writes"])
def test_a_crash_anywhere_in_a_batch_loses_and_doubles_nothing(
    chalice_app: Any, aws_env: dict[str, str], tenant: Api, monkeypatch: pytest.MonkeyPatch, crash_in: str
) -> None:
    """The worker dies in the second batch: after its list writes and before its checkpoint, between its
    writes and the list's count, or halfway through its writes."""
    batch = ingest_operation.BATCH_ROWS
    rows = 2 * batch + 50
    lines = ["phone,first_name"]
    for i in range(rows):
        # some rows invalid, some repeating an earlier row (duplicates across batches)
        if i % 97 == 0:
            lines.append(f"bad-{i},x")
        elif i % 89 == 0:
            lines.append(f"{valid_phone(i - 600 if i > 600 else 1)},again")
        else:
            lines.append(f"{valid_phone(i)},R{i}")
    data = ("\n".join(lines) + "\n").encode()

    # The reference: the same file ingested without a crash, into another list.
    other = new_list(tenant)
    reference_id = upload_file(tenant, aws_env, other, data)
    run_ingest(chalice_app, aws_env)
    reference = get_upload(tenant, other, reference_id)
    messages = receive_all(aws_env["INGEST_QUEUE_URL"])
    assert not messages

    # Now the crash, in the second batch.
    list_id2 = new_list(tenant)
    crashed_id = upload_file(tenant, aws_env, list_id2, data)
    module, name, crash_at = {
        "checkpoint": (upload_store, "checkpoint", 2),
        "count": (lists, "_add_to_count", 2),
        "writes": (lists, "item_fields", batch + 200),  # a row of the second batch, after some were written
    }[crash_in]
    crash_on_call(monkeypatch, module, name, crash_at)
    notification = receive_all(aws_env["INGEST_QUEUE_URL"])
    assert len(notification) == 1
    answer = chalice_app.ingest(sqs_event(notification), LambdaContext(290_000))
    assert answer == {"batchItemFailures": [{"itemIdentifier": notification[0]["MessageId"]}]}
    half = get_upload(tenant, list_id2, crashed_id)
    assert half["state"] == "ingesting" and half["rows_read"] == batch

    # SQS redelivers the message after its visibility timeout.
    boto3.client("sqs", region_name="us-east-1").send_message(
        QueueUrl=aws_env["INGEST_QUEUE_URL"], MessageBody=notification[0]["Body"]
    )
    run_ingest(chalice_app, aws_env)

    upload = get_upload(tenant, list_id2, crashed_id)
    assert upload["state"] == "completed"
    assert counts(upload) == counts(reference)
    assert upload["rows_read"] == rows and upload["duplicates"] > 0 and upload["invalid"] > 0
    assert recipient_count(tenant, list_id2) == recipient_count(tenant, other) == upload["accepted"]
    assert len(rejected_rows(aws_env, upload)) - 1 == upload["invalid"]


def test_records_spanning_ranged_reads_and_xlsx_resumed_by_row(
    chalice_app: Any, aws_env: dict[str, str], tenant: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.store import objects

    monkeypatch.setattr(objects, "STREAM_WINDOW", 97)
    monkeypatch.setattr(objects, "STREAM_PIECE", 13)
    monkeypatch.setattr(objects, "BLOCK_BYTES", 512)
    monkeypatch.setattr(ingest_operation, "BATCH_ROWS", 7)
    list_id = new_list(tenant)
    csv_id = upload_file(tenant, aws_env, list_id, phones_csv(40))
    rows = [["phone", "name"]] + [[valid_phone(100 + i), f"X{i}"] for i in range(20)]
    xlsx_id = upload_file(tenant, aws_env, list_id, xlsx_bytes(rows), "more.xlsx")
    handled = run_ingest(chalice_app, aws_env, remaining_ms=30_000)
    assert sum("ingest" in json.loads(m["Body"]) for m in handled) == 40 // 7 + 20 // 7
    assert counts(get_upload(tenant, list_id, csv_id)) == (40, 40, 0, 0)
    assert counts(get_upload(tenant, list_id, xlsx_id)) == (20, 20, 0, 0)
    assert recipient_count(tenant, list_id) == 60


# --- files refused as a whole ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filename", "data", "code"),
    [
        ("empty.csv", b"", "empty"),
        ("blank.csv", b"\n\n  \n", "empty"),
        ("noheader.csv", f"{valid_phone(1)},Ann\n{valid_phone(2)},Bob\n".encode(), "no_header"),
        ("latin1.csv", "téléphone,prénom\n+447700900123,José\n".encode("latin-1"), "not_utf8"),
        ("archive.csv", b"PK\x03\x04" + bytes(range(256)) * 8, "not_text"),
        ("nodestination.csv", b"name,plan\nAnn,gold\n", "bad_mapping"),
    ],
)
def test_a_file_that_cannot_be_read_fails_the_upload_with_a_reason(
    chalice_app: Any, aws_env: dict[str, str], tenant: Api, filename: str, data: bytes, code: str
) -> None:
    list_id = new_list(tenant)
    upload_id = upload_file(tenant, aws_env, list_id, data, filename)
    run_ingest(chalice_app, aws_env)
    upload = get_upload(tenant, list_id, upload_id)
    assert upload["state"] == "failed", upload
    assert upload["error"]["code"] == code and upload["error"]["detail"]
    assert upload["rows_read"] == 0 and upload["finished_at"] and upload["rejected_rows_url"] is None


def test_a_mapping_naming_a_missing_column_fails_the_upload(
    chalice_app: Any, aws_env: dict[str, str], tenant: Api
) -> None:
    list_id = new_list(tenant)
    data = phones_csv(3)
    mapping = {"destinations": [{"column": "mobile", "type": "phone"}]}
    created = start_upload(tenant, list_id, "people.csv", size=len(data), mapping=mapping)
    put_file(aws_env, key_of(created["upload_url"], aws_env["UPLOADS_BUCKET"]), data)
    run_ingest(chalice_app, aws_env)
    upload = get_upload(tenant, list_id, created["id"])
    assert upload["state"] == "failed" and upload["error"]["code"] == "bad_mapping"
    assert "mobile" in upload["error"]["detail"]


def test_a_file_over_the_size_limit_fails(
    chalice_app: Any, aws_env: dict[str, str], tenant: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest_operation, "MAX_UPLOAD_BYTES", 100)
    list_id = new_list(tenant)
    upload_id = upload_file(tenant, aws_env, list_id, phones_csv(20))
    run_ingest(chalice_app, aws_env)
    upload = get_upload(tenant, list_id, upload_id)
    assert upload["state"] == "failed" and upload["error"]["code"] == "too_large"


def test_ragged_rows_a_huge_field_and_latin1_rows_are_rejected_and_the_rest_ingested(
    chalice_app: Any, aws_env: dict[str, str], tenant: Api
) -> None:
    list_id = new_list(tenant)
    data = (
        b"phone,first_name\n"
        + f"{valid_phone(1)},Ann\n".encode()
        + f"{valid_phone(2)},Bob,extra\n".encode()  # line 3: ragged
        + f"{valid_phone(3)},".encode()
        + b"x" * (2 * 1024 * 1024)  # line 4: a 2 MB field
        + b"\n"
        + valid_phone(4).encode()
        + b",Jos\xe9\n"  # line 5: latin-1 bytes
        + f"{valid_phone(5)}\n".encode()  # line 6: too few fields
        + f'{valid_phone(6)},"multi\nline"\n'.encode()  # lines 7-8: one record
        + f"{valid_phone(7)},Zed".encode()  # line 9, no final newline
    )
    upload_id = upload_file(tenant, aws_env, list_id, data)
    run_ingest(chalice_app, aws_env)
    upload = get_upload(tenant, list_id, upload_id)
    assert upload["state"] == "completed" and counts(upload) == (7, 3, 4, 0)
    assert [r[0] for r in rejected_rows(aws_env, upload)[1:]] == ["3", "4", "5", "6"]
    names = sorted(item["attributes"]["first_name"] for item in listed(tenant, list_id))
    assert names == ["Ann", "Zed", "multi\nline"]


# --- XLSX, dropped files, multipart, tenancy ------------------------------------------------------


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def test_an_xlsx_file_is_ingested(chalice_app: Any, aws_env: dict[str, str], tenant: Api) -> None:
    list_id = new_list(tenant)
    data = xlsx_bytes(
        [
            ["Phone", "Email", "First name", "Visits"],
            [valid_phone(1), "a@example.com", "Ann", 3],
            [valid_phone(2), None, "Bob", 4],
            ["12", None, "Bad", 1],
            [None, None, None, None],
            [valid_phone(3), "c@example.com", "Cid", 5],
        ]
    )
    upload_id = upload_file(tenant, aws_env, list_id, data, "people.xlsx")
    run_ingest(chalice_app, aws_env)
    upload = get_upload(tenant, list_id, upload_id)
    assert upload["state"] == "completed" and counts(upload) == (4, 3, 1, 0)
    assert [r[0] for r in rejected_rows(aws_env, upload)[1:]] == ["4"]
    items = {item["attributes"]["First name"]: item for item in listed(tenant, list_id)}
    assert items["Ann"]["attributes"]["Visits"] == "3"
    assert len(items["Ann"]["destinations"]) == 2


def test_a_broken_xlsx_file_fails(chalice_app: Any, aws_env: dict[str, str], tenant: Api) -> None:
    list_id = new_list(tenant)
    upload_id = upload_file(tenant, aws_env, list_id, b"PK\x03\x04 not really a zip", "people.xlsx")
    run_ingest(chalice_app, aws_env)
    upload = get_upload(tenant, list_id, upload_id)
    assert upload["state"] == "failed" and upload["error"]["code"] == "bad_xlsx"


def test_a_file_dropped_straight_into_the_bucket_is_ingested(
    chalice_app: Any, aws_env: dict[str, str], tenant: Api
) -> None:
    list_id = new_list(tenant)
    account = _account_of(tenant, aws_env, list_id)
    key = f"uploads/{account}/{list_id}/from the crm.csv"
    put_file(aws_env, key, phones_csv(12))
    run_ingest(chalice_app, aws_env)
    upload = get_upload(tenant, list_id, dropped_upload_id(key))
    assert upload["state"] == "completed" and counts(upload) == (12, 12, 0, 0)
    assert upload["filename"] == "from the crm.csv"
    assert recipient_count(tenant, list_id) == 12


def _account_of(tenant: Api, env: dict[str, str], list_id: str) -> str:
    """The account id, from the key of an upload's presigned URL."""
    created = start_upload(tenant, list_id)
    return key_of(created["upload_url"], env["UPLOADS_BUCKET"]).split("/")[1]


def test_a_large_file_is_uploaded_in_parts(chalice_app: Any, aws_env: dict[str, str], tenant: Api) -> None:
    list_id = new_list(tenant)
    created = start_upload(tenant, list_id, "big.csv", size=250 * 1000**2)
    multipart = created["multipart"]
    assert created["upload_url"] is None and multipart["part_size"] == 64 * 1024**2
    assert len(multipart["part_urls"]) == 4
    key = key_of(multipart["part_urls"][0], aws_env["UPLOADS_BUCKET"])

    s3 = boto3.client("s3", region_name="us-east-1")
    part = s3.upload_part(
        Bucket=aws_env["UPLOADS_BUCKET"], Key=key, UploadId=multipart["upload_id"], PartNumber=1, Body=phones_csv(40)
    )
    complete = f"/v1/lists/{list_id}/uploads/{created['id']}/complete"
    assert multipart["complete_url"] == complete
    bad = tenant.call("POST", complete, {"parts": [{"part_number": 1, "etag": '"nope"'}]})
    assert bad.status_code == 422
    tenant.ok("POST", complete, {"parts": [{"part_number": 1, "etag": part["ETag"]}]})
    run_ingest(chalice_app, aws_env)
    upload = get_upload(tenant, list_id, created["id"])
    assert upload["state"] == "completed" and counts(upload) == (40, 40, 0, 0)


def test_upload_requests_are_checked(tenant: Api, api: Api) -> None:
    list_id = new_list(tenant)
    too_big = tenant.call("POST", f"/v1/lists/{list_id}/uploads", {"filename": "a.csv", "size_bytes": 11 * 1024**3})
    assert too_big.status_code == 422
    assert json.loads(too_big.body)["errors"][0]["field"] == "size_bytes"
    unknown = tenant.call("POST", f"/v1/lists/{list_id}/uploads", {"filename": "a.pdf", "size_bytes": 10})
    assert unknown.status_code == 422 and json.loads(unknown.body)["errors"][0]["field"] == "format"
    as_xlsx = start_upload(tenant, list_id, "export.dat", format="xlsx")
    assert as_xlsx["state"] == "awaiting_file" and as_xlsx["upload_url"]
    missing_list = tenant.call("POST", "/v1/lists/lst_nope/uploads", {"filename": "a.csv", "size_bytes": 10})
    assert missing_list.status_code == 404


def test_another_accounts_upload_is_not_found(tenant: Api, api: Api) -> None:
    list_id = new_list(tenant)
    created = start_upload(tenant, list_id)
    other = api.new_account("other")
    assert other.call("GET", f"/v1/lists/{list_id}/uploads/{created['id']}").status_code == 404
    other_list = new_list(other)
    assert other.call("GET", f"/v1/lists/{other_list}/uploads/{created['id']}").status_code == 404
    assert tenant.call("GET", f"/v1/lists/{list_id}/uploads/upl_0000").status_code == 404


# --- the local stack: a real presigned PUT, moto's notification, the event runner -----------------


@pytest.mark.timeout(180)
def test_a_presigned_put_is_ingested_on_the_local_stack() -> None:
    import httpx

    from infra.local.stack import LocalStack

    with LocalStack(provider_rate_limit=1000, provider_transient_failure_rate=0.0) as stack:
        admin = httpx.Client(base_url=stack.api_url, timeout=30)
        account = admin.post(
            "/v1/accounts", json={"name": "up"}, headers={"Authorization": f"Bearer {stack.admin_token}"}
        ).json()
        client = httpx.Client(
            base_url=stack.api_url, timeout=30, headers={"Authorization": f"Bearer {account['api_key']}"}
        )
        list_id = client.post("/v1/lists", json={"name": "local"}).json()["id"]
        data = phones_csv(25)
        created = client.post(f"/v1/lists/{list_id}/uploads", json={"filename": "p.csv", "size_bytes": len(data)})
        assert created.status_code == 201, created.text
        put = httpx.put(created.json()["upload_url"], content=data, timeout=30)
        assert put.status_code == 200, put.text

        deadline = time.monotonic() + 120
        upload: dict[str, Any] = {}
        while time.monotonic() < deadline:
            upload = client.get(f"/v1/lists/{list_id}/uploads/{created.json()['id']}").json()
            if upload["state"] in ("completed", "failed"):
                break
            time.sleep(0.5)
        assert upload["state"] == "completed", upload
        assert counts(upload) == (25, 25, 0, 0)
        assert client.get(f"/v1/lists/{list_id}").json()["recipient_count"] == 25


# --- a large CSV in segments, ingested in parallel -------------------------------------------------------

SEGMENT_BYTES = 4096


def repeated_list_csv(rows: int = 300) -> bytes:
    """A list written twice over (every valid id of the second half is a duplicate of the first), with quoted
    notes spanning lines and holding delimiters, and some invalid rows."""
    lines = []
    for i in range(rows):
        phone = f"bad-{i}" if i % 53 == 0 else valid_phone(i)
        note = f'"line one\nline two, with a comma {i}"' if i % 7 == 0 else f"note {i}"
        lines.append(f"{phone},R{i},{note}")
    return ("phone,first_name,note\n" + "\n".join(lines + lines) + "\n").encode()


def ingest_reference(chalice_app: Any, env: dict[str, str], tenant: Api, data: bytes) -> tuple[dict[str, Any], int]:
    """The same file ingested in one piece (no segments) into another list: its upload and the list's count."""
    other = new_list(tenant)
    upload_id = upload_file(tenant, env, other, data)
    run_ingest(chalice_app, env)
    reference = get_upload(tenant, other, upload_id)
    assert reference["segments"] is None and reference["state"] == "completed"
    return reference, recipient_count(tenant, other)


def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    from chalicelib.settings import get_settings

    monkeypatch.setenv("INGEST_SEGMENT_BYTES", str(SEGMENT_BYTES))
    get_settings.cache_clear()


def segmented_upload(
    chalice_app: Any, env: dict[str, str], tenant: Api, monkeypatch: pytest.MonkeyPatch
) -> tuple[bytes, dict[str, Any], int, str, str]:
    """The repeated list ingested in one piece (the reference upload and its list's count), then uploaded
    again, into a new list, to be cut into SEGMENT_BYTES segments: the file, the reference, its count, the
    new list and upload ids."""
    data = repeated_list_csv()
    reference, reference_count = ingest_reference(chalice_app, env, tenant, data)
    small_segments(monkeypatch)
    list_id = new_list(tenant)
    return data, reference, reference_count, list_id, upload_file(tenant, env, list_id, data)


def message_kind(message: dict[str, Any]) -> str:
    body = json.loads(message["Body"])
    return "segment" if "segment" in body.get("ingest", {}) else "plan"


def test_a_large_csv_is_ingested_in_segments_in_any_order_as_if_in_one_piece(
    chalice_app: Any, aws_env: dict[str, str], tenant: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    import random

    data, reference, reference_count, list_id, upload_id = segmented_upload(chalice_app, aws_env, tenant, monkeypatch)

    # The notification: the planner cuts the file, queueing each segment as it goes; with under a minute
    # left it queues one segment per invocation and hands the rest of the plan to a continuation.
    planner = receive_all(aws_env["INGEST_QUEUE_URL"])
    assert chalice_app.ingest(sqs_event(planner), LambdaContext(30_000)) == {"batchItemFailures": []}
    pending = receive_all(aws_env["INGEST_QUEUE_URL"])
    assert sorted(message_kind(m) for m in pending) == ["plan", "segment"]
    early = get_upload(tenant, list_id, upload_id)
    assert (early["state"], early["segments"], early["segments_done"], early["rows_read"]) == ("ingesting", 1, 0, 0)

    rng = random.Random(7)
    handled = 0
    while pending:
        rng.shuffle(pending)  # segments and the plan's continuations in any order
        for message in pending:
            assert chalice_app.ingest(sqs_event([message]), LambdaContext(30_000)) == {"batchItemFailures": []}
            handled += 1
            if handled == 6:  # midway: the counts so far are the segments' sums
                midway = get_upload(tenant, list_id, upload_id)
                assert midway["state"] == "ingesting" and 0 < midway["rows_read"] < reference["rows_read"]
                assert 0 < midway["segments_done"] < midway["segments"]
        pending = receive_all(aws_env["INGEST_QUEUE_URL"])

    upload = get_upload(tenant, list_id, upload_id)
    assert upload["state"] == "completed"
    assert upload["segments"] == upload["segments_done"] >= len(data) // SEGMENT_BYTES
    assert counts(upload) == counts(reference)
    assert upload["duplicates"] >= 300 - upload["invalid"]  # the second copy of every valid row
    assert recipient_count(tenant, list_id) == reference_count == upload["accepted"]
    assert rejected_rows(aws_env, upload) == rejected_rows(aws_env, reference)  # the same line numbers
    notes = {
        r["id"]: r["attributes"]["note"]
        for r in tenant.ok("GET", f"/v1/lists/{list_id}/recipients?limit=1000")["items"]
    }
    assert notes[valid_phone(7)] == "line one\nline two, with a comma 7"


def test_segments_ingested_at_the_same_time_count_a_repeated_list_once(
    chalice_app: Any, aws_env: dict[str, str], tenant: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every segment of the file at once, one thread each (moto made atomic as on the local stack): the two
    copies of each id are written at the same moment, and each is still counted once."""
    from concurrent.futures import ThreadPoolExecutor

    from infra.local.moto_server import patched_moto

    _data, reference, reference_count, list_id, upload_id = segmented_upload(chalice_app, aws_env, tenant, monkeypatch)
    run_plan = receive_all(aws_env["INGEST_QUEUE_URL"])
    assert chalice_app.ingest(sqs_event(run_plan), LambdaContext(290_000)) == {"batchItemFailures": []}
    segments = receive_all(aws_env["INGEST_QUEUE_URL"])
    assert len(segments) == get_upload(tenant, list_id, upload_id)["segments"] > 4
    assert {message_kind(m) for m in segments} == {"segment"}

    with patched_moto(), ThreadPoolExecutor(max_workers=len(segments)) as pool:
        answers = list(pool.map(lambda m: chalice_app.ingest(sqs_event([m]), LambdaContext(290_000)), segments))
    assert answers == [{"batchItemFailures": []}] * len(segments)
    assert not receive_all(aws_env["INGEST_QUEUE_URL"])

    upload = get_upload(tenant, list_id, upload_id)
    assert upload["state"] == "completed" and counts(upload) == counts(reference)
    assert recipient_count(tenant, list_id) == reference_count == upload["accepted"]


@pytest.mark.parametrize("crash_in", ["checkpoint", "writes", "plan"])
def test_a_crash_in_a_segment_or_the_plan_loses_and_doubles_nothing(
    chalice_app: Any, aws_env: dict[str, str], tenant: Api, monkeypatch: pytest.MonkeyPatch, crash_in: str
) -> None:
    _data, reference, reference_count, list_id, upload_id = segmented_upload(chalice_app, aws_env, tenant, monkeypatch)
    module, name, crash_at = {
        "checkpoint": (upload_store, "segment_checkpoint", 3),  # after the third segment's rows are written
        "writes": (lists, "item_fields", 250),  # halfway through a segment's writes
        "plan": (upload_store, "plan_segment", 4),  # the fourth segment put and queued, not counted
    }[crash_in]
    crash_on_call(monkeypatch, module, name, crash_at)
    failed = 0
    for _ in range(100):
        messages = receive_all(aws_env["INGEST_QUEUE_URL"])
        if not messages:
            break
        for message in messages:
            answer = chalice_app.ingest(sqs_event([message]), LambdaContext(290_000))
            if answer["batchItemFailures"]:  # SQS redelivers it after its visibility timeout
                failed += 1
                boto3.client("sqs", region_name="us-east-1").send_message(
                    QueueUrl=aws_env["INGEST_QUEUE_URL"], MessageBody=message["Body"]
                )
    assert failed == 1

    upload = get_upload(tenant, list_id, upload_id)
    assert upload["state"] == "completed" and upload["segments"] == upload["segments_done"] > 4
    assert counts(upload) == counts(reference)
    assert recipient_count(tenant, list_id) == reference_count == upload["accepted"]
    assert rejected_rows(aws_env, upload) == rejected_rows(aws_env, reference)
