"""Managing lists: paging them, renaming, deleting and clearing (O(1) in the request, items purged by the
worker), and reading, replacing and removing one recipient; tenancy and problem+json answers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib.settings import get_settings
from tests.utils import Api, LambdaContext, campaign_body, receive_all, recipient_rows, sqs_event, valid_phone

pytestmark = pytest.mark.integration

PROBLEM_JSON = "application/problem+json"


@pytest.fixture(autouse=True)
def purge_at_once(monkeypatch: pytest.MonkeyPatch, aws_env: dict[str, str]) -> None:
    """Purge jobs are delayed in AWS (past the request that queues them); here the test runs them."""
    monkeypatch.setenv("LIST_PURGE_DELAY_SECONDS", "0")
    get_settings.cache_clear()


def new_list(tenant: Api, name: str = "customers", rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    listed = dict(tenant.ok("POST", "/v1/lists", {"name": name}, status=201))
    if rows:
        tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows})
    return listed


def run_purges(chalice_app: Any, aws_env: dict[str, str]) -> int:
    """What the purge function's event source mapping does: hand it the queued purge jobs."""
    jobs = receive_all(aws_env["LIST_PURGE_QUEUE_URL"])
    if jobs:
        assert chalice_app.list_purge(sqs_event(jobs), LambdaContext()) == {"batchItemFailures": []}
    return len(jobs)


def stored_items(tenant: Api, list_id: str) -> list[dict[str, Any]]:
    """Every item stored under the list's buckets, whatever its generation (what the purge must remove)."""
    import boto3

    from chalicelib.store import accounts, keys

    account = str(accounts.account_for_api_key(str(tenant.api_key)))
    table = boto3.client("dynamodb", region_name="us-east-1")
    found: list[dict[str, Any]] = []
    for bucket in range(keys.LIST_BUCKETS):
        answer = table.query(
            TableName=get_settings().main_table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": keys.list_bucket_pk(account, list_id, bucket)}},
        )
        found += answer["Items"]
    return found


def problem(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.body
    assert answer.headers["Content-Type"] == PROBLEM_JSON
    return dict(json.loads(answer.body))


def test_lists_page_newest_first_across_pages_and_a_token_stays_with_its_account(api: Api) -> None:
    alice, bob = api.new_account("alice"), api.new_account("bob")
    created = [new_list(alice, f"list {i}")["id"] for i in range(5)]
    bob_list = new_list(bob, "bob's")["id"]
    seen: list[str] = []
    first = alice.ok("GET", "/v1/lists?limit=2")
    page = first
    while True:
        assert len(page["items"]) <= 2
        seen += [item["id"] for item in page["items"]]
        if not page["next_page_token"]:
            break
        page = alice.ok("GET", f"/v1/lists?limit=2&page_token={page['next_page_token']}")
    assert seen == list(reversed(created))
    assert first["items"][0] == {**first["items"][0], "name": "list 4", "recipient_count": 0}
    assert [i["id"] for i in bob.ok("GET", "/v1/lists")["items"]] == [bob_list]
    problem(bob.call("GET", f"/v1/lists?limit=2&page_token={first['next_page_token']}"), 400)


def test_a_list_is_renamed_and_a_bad_name_is_a_problem_naming_the_field(tenant: Api) -> None:
    listed = new_list(tenant)
    renamed = tenant.ok("PATCH", f"/v1/lists/{listed['id']}", {"name": "VIP"})
    assert (renamed["name"], tenant.ok("GET", f"/v1/lists/{listed['id']}")["name"]) == ("VIP", "VIP")
    assert tenant.ok("GET", "/v1/lists")["items"][0]["name"] == "VIP"
    body = problem(tenant.call("PATCH", f"/v1/lists/{listed['id']}", {"name": ""}), 422)
    assert [e["field"] for e in body["errors"]] == ["name"]


def test_recipient_ids_with_plus_at_and_dot_are_routed_encoded_or_not(tenant: Api) -> None:
    phone = valid_phone(1)
    rows: list[dict[str, Any]] = [
        {"phone": phone, "params": {"first_name": "Ann"}},
        {"destinations": [{"type": "email", "address": "a.b+c@example.com"}]},
    ]
    listed = new_list(tenant, rows=rows)
    base = f"/v1/lists/{listed['id']}/recipients"
    assert tenant.ok("GET", f"{base}/{phone}")["destinations"] == [{"type": "phone", "address": phone}]
    assert tenant.ok("GET", f"{base}/%2B{phone[1:]}")["id"] == phone
    assert tenant.ok("GET", f"{base}/a.b+c@example.com")["id"] == "a.b+c@example.com"
    assert tenant.ok("GET", f"{base}/a.b%2Bc%40example.com")["id"] == "a.b+c@example.com"
    problem(tenant.call("GET", f"{base}/{valid_phone(2)}"), 404)


def test_patch_replaces_what_it_names_and_is_checked_as_an_uploaded_row(tenant: Api) -> None:
    item = {"id": "crm-1", "destinations": [{"type": "phone", "address": valid_phone(1)}], "attributes": {"a": 1}}
    listed = new_list(tenant, rows=[item])
    path = f"/v1/lists/{listed['id']}/recipients/crm-1"
    patched = tenant.ok(
        "PATCH",
        path,
        {
            "destinations": [
                {"type": "email", "address": "Ann@Example.COM"},
                {"type": "phone", "address": "07911 123456"},
            ],
            "timezone": "Europe/London",
            "default_region": "GB",
        },
    )
    assert patched["destinations"] == [
        {"type": "email", "address": "Ann@example.com"},
        {"type": "phone", "address": "+447911123456"},
    ]
    assert (patched["attributes"], patched["timezone"], patched["id"]) == ({"a": 1}, "Europe/London", "crm-1")
    assert tenant.ok("GET", path) == patched
    assert tenant.ok("PATCH", path, {"attributes": {"tier": "gold"}, "timezone": None})["attributes"] == {
        "tier": "gold"
    }
    assert tenant.ok("GET", path)["timezone"] is None

    bad_phone = {"destinations": [{"type": "phone", "address": "12345"}]}
    assert [e["field"] for e in problem(tenant.call("PATCH", path, bad_phone), 422)["errors"]] == [
        "destinations[0].address"
    ]
    assert problem(tenant.call("PATCH", path, {"timezone": "Mars/Olympus"}), 422)["errors"][0]["field"] == "timezone"
    assert problem(tenant.call("PATCH", path, {"id": "crm-2"}), 422)["errors"][0]["field"] == "id"
    too_big = {"attributes": {"note": "x" * 5000}}
    assert problem(tenant.call("PATCH", path, too_big), 422)["errors"][0]["field"] == "attributes"
    assert tenant.ok("GET", path)["attributes"] == {"tier": "gold"}  # refused patches changed nothing


def test_deleting_a_recipient_twice_lowers_the_count_once(tenant: Api) -> None:
    listed = new_list(tenant, rows=recipient_rows(3))
    path = f"/v1/lists/{listed['id']}/recipients/{valid_phone(1)}"
    assert tenant.call("DELETE", path).status_code == 204
    problem(tenant.call("DELETE", path), 404)
    assert tenant.ok("GET", f"/v1/lists/{listed['id']}")["recipient_count"] == 2
    problem(tenant.call("GET", path), 404)
    remaining = tenant.ok("GET", f"/v1/lists/{listed['id']}/recipients")["items"]
    assert sorted(i["id"] for i in remaining) == sorted([valid_phone(0), valid_phone(2)])


def test_clear_empties_the_list_at_once_and_the_same_recipients_can_be_added_again(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any
) -> None:
    listed = new_list(tenant, rows=recipient_rows(4))
    cleared = tenant.ok("POST", f"/v1/lists/{listed['id']}/clear", status=202)
    assert cleared["recipient_count"] == 0
    assert tenant.ok("GET", f"/v1/lists/{listed['id']}/recipients")["items"] == []
    problem(tenant.call("GET", f"/v1/lists/{listed['id']}/recipients/{valid_phone(0)}"), 404)
    assert len(stored_items(tenant, listed["id"])) == 4  # still stored: the purge is the worker's

    again = tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": recipient_rows(2)})
    assert (again["accepted"], again["duplicates"], again["recipient_count"]) == (2, 0, 2)
    assert run_purges(chalice_app, aws_env) == 1
    assert len(stored_items(tenant, listed["id"])) == 2  # the old generation's other two are gone
    page = tenant.ok("GET", f"/v1/lists/{listed['id']}/recipients")["items"]
    assert sorted(i["id"] for i in page) == sorted(valid_phone(i) for i in range(2))
    assert tenant.ok("GET", f"/v1/lists/{listed['id']}")["recipient_count"] == 2


def test_delete_is_refused_while_a_running_campaign_uses_the_list_then_purges_its_items(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any
) -> None:
    listed = new_list(tenant, rows=recipient_rows(3))
    campaign = tenant.ok("POST", "/v1/campaigns", campaign_body(listed["id"]), status=201)
    tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/start")
    refused = problem(tenant.call("DELETE", f"/v1/lists/{listed['id']}"), 409)
    assert campaign["id"] in refused["detail"]
    assert refused["errors"] == [{"field": "list_id", "reason": f"in use by campaign {campaign['id']}"}]
    problem(tenant.call("POST", f"/v1/lists/{listed['id']}/clear"), 409)
    tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/pause")
    problem(tenant.call("DELETE", f"/v1/lists/{listed['id']}"), 409)
    assert run_purges(chalice_app, aws_env) == 3  # the refused requests' jobs find the list as it was
    assert len(stored_items(tenant, listed["id"])) == 3

    tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/cancel")
    assert tenant.call("DELETE", f"/v1/lists/{listed['id']}").status_code == 204
    problem(tenant.call("GET", f"/v1/lists/{listed['id']}"), 404)
    assert listed["id"] not in [i["id"] for i in tenant.ok("GET", "/v1/lists")["items"]]
    assert len(stored_items(tenant, listed["id"])) == 3  # the request removed no item
    assert run_purges(chalice_app, aws_env) == 1
    assert stored_items(tenant, listed["id"]) == []
    problem(tenant.call("POST", f"/v1/campaigns/{campaign['id']}/start"), 409)


def test_another_accounts_list_and_recipient_are_not_found(api: Api) -> None:
    alice, bob = api.new_account("alice"), api.new_account("bob")
    listed = new_list(alice, rows=recipient_rows(1))
    item = f"/v1/lists/{listed['id']}/recipients/{valid_phone(0)}"
    body: dict[str, Any] | None
    for method, path, body in [
        ("PATCH", f"/v1/lists/{listed['id']}", {"name": "mine"}),
        ("DELETE", f"/v1/lists/{listed['id']}", None),
        ("POST", f"/v1/lists/{listed['id']}/clear", None),
        ("GET", item, None),
        ("PATCH", item, {"attributes": {}}),
        ("DELETE", item, None),
    ]:
        problem(bob.call(method, path, body), 404)
    assert alice.ok("GET", item)["id"] == valid_phone(0)
    assert alice.ok("GET", f"/v1/lists/{listed['id']}") == {**listed, "recipient_count": 1}


def test_a_deleted_list_s_uploads_and_exports_are_gone_with_it(tenant: Api) -> None:
    """Found by the contract fuzzer (use after free): they were still readable after the list's DELETE."""
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    upload = tenant.ok("POST", f"/v1/lists/{listed['id']}/uploads", {"filename": "a.csv", "size_bytes": 10}, status=201)
    export = tenant.ok("POST", f"/v1/lists/{listed['id']}/exports", status=202)
    paths = [f"/v1/lists/{listed['id']}/uploads/{upload['id']}", f"/v1/lists/{listed['id']}/exports/{export['id']}"]
    for path in paths:
        assert tenant.call("GET", path).status_code == 200
    assert tenant.call("DELETE", f"/v1/lists/{listed['id']}").status_code == 204
    for path in paths:
        assert tenant.call("GET", path).status_code == 404
