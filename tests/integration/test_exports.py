"""Exports: the request queues a job, the export worker (fed from the ExportQueue) writes the CSV to S3 in
parts, and the export then answers with a presigned download link. Every cell that a spreadsheet would
read as a formula is neutralised."""

from __future__ import annotations

import csv
import io
from typing import Any
from urllib.parse import unquote, urlparse

import boto3
import pytest

from chalicelib.settings import get_settings
from chalicelib.store import accounts
from infra.local.fake_provider import FakeProvider
from tests.utils import Api, LambdaContext, campaign_body, receive_all, run_release_jobs, sqs_event, valid_phone

pytestmark = pytest.mark.integration

FORMULA = "=cmd|' /C calc'!A0"


def run_exports(chalice_app: Any, aws_env: dict[str, str], context: Any = None) -> int:
    """What the export function's event source mapping does: hand it the queued export jobs."""
    jobs = receive_all(aws_env["EXPORT_QUEUE_URL"])
    for job in jobs:
        answer = chalice_app.export(sqs_event([job]), context or LambdaContext(remaining_ms=300_000))
        assert answer == {"batchItemFailures": []}
    return len(jobs)


def account_of(tenant: Api) -> str:
    return str(accounts.account_for_api_key(str(tenant.api_key)))


def downloaded(tenant: Api, export: dict[str, Any]) -> list[list[str]]:
    """The export's CSV, read at the key its download link is for."""
    key = f"exports/{account_of(tenant)}/{export['id']}.csv"
    url = urlparse(export["download_url"])
    assert unquote(url.path).endswith(f"/{key}")
    assert "Signature" in url.query or "X-Amz-Signature" in url.query
    body = boto3.client("s3", region_name="us-east-1").get_object(Bucket=get_settings().uploads_bucket, Key=key)
    return list(csv.reader(io.StringIO(body["Body"].read().decode("utf-8"))))


def test_a_list_export_neutralises_formulas_and_numbers_and_has_a_column_per_attribute(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any
) -> None:
    listed = tenant.ok("POST", "/v1/lists", {"name": "customers"}, status=201)
    rows = [
        {
            "id": "crm-1",
            "destinations": [
                {"type": "phone", "address": valid_phone(1)},
                {"type": "email", "address": "a@example.com"},
            ],
            "attributes": {"note": FORMULA, "tier": "gold", "visits": 3, "vip": True},
            "locale": "en-GB",
            "timezone": "Europe/London",
        },
        {"phone": valid_phone(2), "params": {"tier": "-silver", "first_name": "@bob"}},
    ]
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows})
    created = tenant.ok("POST", f"/v1/lists/{listed['id']}/exports", status=202)
    assert (created["state"], created["download_url"]) == ("pending", None)
    path = f"/v1/lists/{listed['id']}/exports/{created['id']}"
    assert tenant.ok("GET", path)["state"] == "pending"

    assert run_exports(chalice_app, aws_env) == 1
    export = tenant.ok("GET", path)
    assert (export["state"], export["rows"]) == ("completed", 2)
    header, *lines = downloaded(tenant, export)
    destinations = [f"destination_{n}_{part}" for n in range(1, 6) for part in ("type", "address")]
    attributes = ["attributes.first_name", "attributes.note", "attributes.tier", "attributes.vip", "attributes.visits"]
    assert header == ["id", *destinations, "locale", "timezone", *attributes]
    by_id = {line[0]: dict(zip(header, line, strict=True)) for line in lines}
    first = by_id["crm-1"]
    assert first["destination_1_address"] == "'" + valid_phone(1)  # an E.164 number starts with '+'
    assert (first["destination_2_type"], first["destination_2_address"]) == ("email", "a@example.com")
    assert first["attributes.note"] == "'" + FORMULA
    assert (first["attributes.visits"], first["attributes.vip"], first["timezone"]) == ("3", "true", "Europe/London")
    second = by_id["'" + valid_phone(2)]  # a derived id is the number: neutralised too
    assert (second["attributes.tier"], second["attributes.first_name"]) == ("'-silver", "'@bob")
    assert second["destination_3_type"] == second["attributes.note"] == ""
    assert not any(cell.startswith(("=", "+", "-", "@")) for line in lines for cell in line)


def test_a_campaigns_outcomes_are_exported_after_it_ran(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider
) -> None:
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    rows = [{"phone": valid_phone(i), "params": {"first_name": f"R{i}"}} for i in range(5)]
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows})
    campaign = tenant.ok("POST", "/v1/campaigns", campaign_body(listed["id"]), status=201)
    tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/start")
    run_release_jobs(chalice_app, aws_env["RELEASE_QUEUE_URL"])
    chalice_app.dispatch(sqs_event(receive_all(aws_env["DISPATCH_QUEUE_URL"])), LambdaContext())

    created = tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/exports", status=202)
    assert run_exports(chalice_app, aws_env) == 1
    export = tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/exports/{created['id']}")
    assert (export["state"], export["rows"]) == ("completed", 5)
    header, *lines = downloaded(tenant, export)
    assert header == [
        "recipient_id",
        "destination",
        "destination_index",
        "state",
        "attempts",
        "provider_message_id",
        "last_error",
        "updated_at",
    ]
    assert sorted(line[0] for line in lines) == sorted("'" + valid_phone(i) for i in range(5))
    for line in lines:
        outcome = dict(zip(header, line, strict=True))
        assert (outcome["destination"], outcome["destination_index"]) == (outcome["recipient_id"], "0")
        assert (outcome["state"], outcome["attempts"]) == ("succeeded", "1")
        assert outcome["provider_message_id"] and outcome["updated_at"].endswith("Z")


class RunningOut(LambdaContext):
    """A context whose time runs low after `calls` looks at the clock."""

    def __init__(self, calls: int) -> None:
        super().__init__(remaining_ms=300_000)
        self.calls = calls

    def get_remaining_time_in_millis(self) -> int:
        self.calls -= 1
        return 300_000 if self.calls >= 0 else 10_000


def test_a_large_export_is_written_in_parts_and_resumed_by_a_continuation(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.operations import export

    monkeypatch.setattr("moto.s3.models.S3_UPLOAD_PART_MIN_SIZE", 64)
    monkeypatch.setenv("EXPORT_PART_BYTES", "400")
    get_settings.cache_clear()
    monkeypatch.setattr(export, "PAGE", 7)
    listed = tenant.ok("POST", "/v1/lists", {"name": "big"}, status=201)
    rows = [{"phone": valid_phone(i), "params": {"n": i}} for i in range(60)]
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows})
    created = tenant.ok("POST", f"/v1/lists/{listed['id']}/exports", status=202)
    path = f"/v1/lists/{listed['id']}/exports/{created['id']}"

    assert run_exports(chalice_app, aws_env, RunningOut(calls=4)) == 1  # stops, queues the rest
    halfway = tenant.ok("GET", path)
    assert halfway["state"] == "running" and 0 < halfway["rows"] < 60
    assert run_exports(chalice_app, aws_env) == 1  # the continuation
    export_done = tenant.ok("GET", path)
    assert (export_done["state"], export_done["rows"]) == ("completed", 60)
    header, *lines = downloaded(tenant, export_done)
    assert header[0] == "id" and header[-1] == "attributes.n"
    assert sorted(line[0] for line in lines) == sorted("'" + valid_phone(i) for i in range(60))  # each once
    assert run_exports(chalice_app, aws_env) == 0


def test_a_repeated_export_job_changes_nothing(tenant: Api, aws_env: dict[str, str], chalice_app: Any) -> None:
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": [{"phone": valid_phone(1)}]})
    created = tenant.ok("POST", f"/v1/lists/{listed['id']}/exports", status=202)
    jobs = receive_all(aws_env["EXPORT_QUEUE_URL"])
    chalice_app.export(sqs_event(jobs), LambdaContext(remaining_ms=300_000))
    done = tenant.ok("GET", f"/v1/lists/{listed['id']}/exports/{created['id']}")
    assert chalice_app.export(sqs_event(jobs), LambdaContext(remaining_ms=300_000)) == {"batchItemFailures": []}
    again = tenant.ok("GET", f"/v1/lists/{listed['id']}/exports/{created['id']}")
    assert (again["state"], again["rows"], again["completed_at"]) == ("completed", 1, done["completed_at"])


def test_an_export_of_a_list_deleted_meanwhile_fails_and_goes_with_the_list(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any
) -> None:
    from chalicelib.store import accounts, exports

    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    created = tenant.ok("POST", f"/v1/lists/{listed['id']}/exports", status=202)
    assert tenant.call("DELETE", f"/v1/lists/{listed['id']}").status_code == 204
    run_exports(chalice_app, aws_env)
    failed = exports.get_export(str(accounts.account_for_api_key(str(tenant.api_key))), created["id"])
    assert failed["state"] == "failed" and "no longer exists" in failed["error"]
    # The list's exports go with it: a deleted resource's parts are not found (RFC 9457 404).
    gone = tenant.call("GET", f"/v1/lists/{listed['id']}/exports/{created['id']}")
    assert gone.status_code == 404


def test_another_accounts_export_is_not_found(api: Api, aws_env: dict[str, str], chalice_app: Any) -> None:
    alice, bob = api.new_account("alice"), api.new_account("bob")
    listed = alice.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    other = alice.ok("POST", "/v1/lists", {"name": "b"}, status=201)
    created = alice.ok("POST", f"/v1/lists/{listed['id']}/exports", status=202)
    run_exports(chalice_app, aws_env)
    assert alice.ok("GET", f"/v1/lists/{listed['id']}/exports/{created['id']}")["state"] == "completed"
    for who, path in [
        (bob, f"/v1/lists/{listed['id']}/exports/{created['id']}"),
        (alice, f"/v1/lists/{other['id']}/exports/{created['id']}"),
        (alice, f"/v1/campaigns/{listed['id']}/exports/{created['id']}"),
    ]:
        answer = who.call("GET", path)
        assert answer.status_code == 404
        assert answer.headers["Content-Type"] == "application/problem+json"
    assert bob.call("POST", f"/v1/lists/{listed['id']}/exports").status_code == 404
