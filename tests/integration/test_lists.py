"""Lists: batches with per-row results, duplicates across batches, cursor paging, tenancy."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chalicelib.domain.recipients import check_rows
from tests.utils import Api, recipient_rows, valid_phone

pytestmark = pytest.mark.integration


def test_a_batch_skips_and_reports_bad_rows_and_keeps_the_rest(tenant: Api) -> None:
    listed = tenant.ok("POST", "/v1/lists", {"name": "spring"}, status=201)
    rows = recipient_rows(5)
    rows.insert(2, {"phone": "555-0100"})
    rows.append({"phone": valid_phone(1)})
    rows.append({"phone": 42})
    added = tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows})
    assert added["received"] == 8
    assert added["accepted"] == 5
    assert (added["invalid"], added["duplicates"]) == (2, 1)
    assert [(r["index"], r["reason"]) for r in added["rejected"]] == [
        (2, "invalid_phone"),
        (6, "duplicate"),
        (7, "invalid_row"),
    ]
    assert added["recipient_count"] == 5


def test_numbers_already_in_the_list_are_duplicates_in_a_later_batch(tenant: Api) -> None:
    listed = tenant.ok("POST", "/v1/lists", {"name": "spring"}, status=201)
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": recipient_rows(3)})
    again = tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": recipient_rows(4, start=2)})
    assert again["accepted"] == 3
    assert [(r["index"], r["reason"], r["id"]) for r in again["rejected"]] == [(0, "duplicate", valid_phone(2))]
    assert tenant.ok("GET", f"/v1/lists/{listed['id']}")["recipient_count"] == 6


def test_recipients_page_with_an_opaque_cursor_that_another_account_cannot_use(api: Api) -> None:
    alice, bob = api.new_account("alice"), api.new_account("bob")
    listed = alice.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    alice.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": recipient_rows(25)})
    seen: list[str] = []
    token = None
    while True:
        query = f"?limit=10&page_token={token}" if token else "?limit=10"
        page = alice.ok("GET", f"/v1/lists/{listed['id']}/recipients{query}")
        seen.extend(item["id"] for item in page["items"])
        if first_token := page["next_page_token"]:
            token = first_token
            if len(seen) == 10:
                stolen = bob.call("GET", f"/v1/lists/{listed['id']}/recipients?page_token={token}")
                assert stolen.status_code == 404
        else:
            break
    assert sorted(seen) == sorted(valid_phone(i) for i in range(25))
    assert len(seen) == 25


def test_a_forged_page_token_is_rejected_on_page_token(tenant: Api) -> None:
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    answer = tenant.call("GET", f"/v1/lists/{listed['id']}/recipients?page_token=UiMrMTIwMjU1NTAwMDAKZm9yZ2Vk")
    assert answer.status_code == 400
    assert "page_token" in answer.body.decode()


def test_idempotency_key_replays_the_first_response_and_refuses_another_body(tenant: Api) -> None:
    headers = {"Idempotency-Key": "list-1"}
    first = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201, headers=headers)
    again = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201, headers=headers)
    assert again == first
    other = tenant.call("POST", "/v1/lists", {"name": "b"}, headers=headers)
    assert other.status_code == 422
    assert "Idempotency-Key" in other.body.decode()
    fresh = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201, headers={"Idempotency-Key": "list-2"})
    assert fresh["id"] != first["id"]


def test_replayed_recipient_batch_adds_nothing_twice(tenant: Api) -> None:
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    path = f"/v1/lists/{listed['id']}/recipients"
    headers = {"Idempotency-Key": "batch-1"}
    first = tenant.ok("POST", path, {"recipients": recipient_rows(10)}, headers=headers)
    again = tenant.ok("POST", path, {"recipients": recipient_rows(10)}, headers=headers)
    assert again == first
    assert tenant.ok("GET", f"/v1/lists/{listed['id']}")["recipient_count"] == 10


def test_a_page_token_of_one_list_is_refused_on_another(tenant: Api) -> None:
    first = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    second = tenant.ok("POST", "/v1/lists", {"name": "b"}, status=201)
    tenant.ok("POST", f"/v1/lists/{first['id']}/recipients", {"recipients": recipient_rows(3)})
    token = tenant.ok("GET", f"/v1/lists/{first['id']}/recipients?limit=1")["next_page_token"]
    answer = tenant.call("GET", f"/v1/lists/{second['id']}/recipients?page_token={token}")
    assert answer.status_code == 400
    assert json.loads(answer.body)["errors"][0]["field"] == "page_token"


def test_a_batch_that_fails_halfway_keeps_the_count_right_and_a_retry_finishes_it(
    tenant: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chalicelib.store import aws

    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    real, calls, lock = aws.write_if, {"n": 0}, threading.Lock()

    def fail_some(call: Any, **params: Any) -> Any:
        with lock:
            calls["n"] += 1
            failing = calls["n"] % 4 == 0
        if failing:
            raise RuntimeError("injected: DynamoDB went away")
        return real(call, **params)

    monkeypatch.setattr(aws, "write_if", fail_some)
    rows = recipient_rows(100)
    assert tenant.call("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows}).status_code == 500
    assert tenant.ok("GET", f"/v1/lists/{listed['id']}")["recipient_count"] == 75  # what went in is counted

    monkeypatch.setattr(aws, "write_if", real)
    retried = tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows})
    assert (retried["accepted"], retried["duplicates"], retried["recipient_count"]) == (25, 75, 100)


def test_concurrent_uploads_of_the_same_numbers_count_each_once(tenant: Api, atomic_moto: None) -> None:
    # Four uploads race past the "already listed?" read at once (the store call behind the API; the
    # chalice test client serves one request at a time): the conditional puts let each number in once.
    from chalicelib.store import accounts, lists

    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    account = str(accounts.account_for_api_key(str(tenant.api_key)))
    rows = check_rows(recipient_rows(200))
    assert not rows.rejected
    recipients = [row.recipient for row in rows.valid]
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda _: lists.put_recipients(account, listed["id"], recipients), range(4)))
    assert sum(200 - len(a.listed) for a in answers) == 200 == sum(a.counted for a in answers)
    assert tenant.ok("GET", f"/v1/lists/{listed['id']}")["recipient_count"] == 200
    page = tenant.ok("GET", f"/v1/lists/{listed['id']}/recipients?limit=1000")
    assert sorted(r["id"] for r in page["items"]) == sorted(r.id for r in recipients)
