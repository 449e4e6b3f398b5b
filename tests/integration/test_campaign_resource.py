"""The campaign as a resource: paging through an account's campaigns with filters, changing one (what each
status allows), deleting and cloning it."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.utils import Api, campaign_body, recipient_rows

pytestmark = pytest.mark.integration


def new_list(tenant: Api, rows: int = 3) -> str:
    listed = tenant.ok("POST", "/v1/lists", {"name": "people"}, status=201)
    if rows:
        tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": recipient_rows(rows)})
    return str(listed["id"])


def draft(tenant: Api, list_id: str, **overrides: Any) -> dict[str, Any]:
    return dict(tenant.ok("POST", "/v1/campaigns", campaign_body(list_id, **overrides), status=201))


def problem(tenant: Api, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    answer = tenant.call(method, path, body)
    assert answer.headers["Content-Type"] == "application/problem+json", answer.body
    return answer.status_code, json.loads(answer.body)


def all_pages(tenant: Api, query: str, limit: int = 2) -> list[str]:
    ids: list[str] = []
    token = None
    for _ in range(50):
        path = f"/v1/campaigns?limit={limit}{query}" + (f"&page_token={token}" if token else "")
        page = tenant.ok("GET", path)
        ids += [c["id"] for c in page["items"]]
        token = page["next_page_token"]
        if token is None:
            return ids
    raise AssertionError("pages never ended")


def test_campaigns_are_paged_newest_first_and_filtered_by_status_list_and_creation_time(tenant: Api, api: Api) -> None:
    first_list, second_list = new_list(tenant), new_list(tenant)
    a = draft(tenant, first_list, name="a")
    time.sleep(0.01)
    middle = datetime.now(UTC).isoformat()
    time.sleep(0.01)
    b = draft(tenant, second_list, name="b")
    c = draft(tenant, first_list, name="c")
    tenant.ok("POST", f"/v1/campaigns/{c['id']}/start")
    tenant.ok("POST", f"/v1/campaigns/{b['id']}/cancel")

    assert all_pages(tenant, "") == [c["id"], b["id"], a["id"]]
    assert all_pages(tenant, "&status=running") == [c["id"]]
    assert all_pages(tenant, "&status=draft,cancelled") == [b["id"], a["id"]]
    assert all_pages(tenant, f"&list_id={first_list}") == [c["id"], a["id"]]
    assert all_pages(tenant, f"&list_id={first_list}&status=draft") == [a["id"]]
    after = middle.replace("+00:00", "Z")
    assert all_pages(tenant, f"&created_after={after}") == [c["id"], b["id"]]
    assert all_pages(tenant, f"&created_before={after}") == [a["id"]]
    listed = tenant.ok("GET", "/v1/campaigns?status=running")["items"][0]
    assert listed["status"] == "running" and listed["counters"]["total"] == 3

    assert api.new_account("other").ok("GET", "/v1/campaigns") == {"items": [], "next_page_token": None}
    status, body = problem(tenant, "GET", "/v1/campaigns?status=sending")
    assert status == 422 and body["errors"][0]["field"] == "status"
    status, body = problem(tenant, "GET", "/v1/campaigns?created_after=yesterday")
    assert status == 422 and body["errors"][0]["field"] == "created_after"
    status, body = problem(tenant, "GET", "/v1/campaigns?created_after=2026-11-25T10:00:00")  # no offset
    assert status == 422 and body["errors"][0]["field"] == "created_after"
    # A page token belongs to its filters.
    token = tenant.ok("GET", "/v1/campaigns?limit=1")["next_page_token"]
    status, body = problem(tenant, "GET", f"/v1/campaigns?limit=1&status=draft&page_token={token}")
    assert status == 400 and body["errors"][0]["field"] == "page_token"


def test_a_draft_changes_any_field_and_a_started_one_only_its_name_and_rate(tenant: Api) -> None:
    first_list, second_list = new_list(tenant), new_list(tenant, rows=5)
    campaign = draft(tenant, first_list, rate_per_second=10)
    path = f"/v1/campaigns/{campaign['id']}"

    changed = tenant.ok(
        "PATCH",
        path,
        {"template": "Bye {{ first_name }}", "list_id": second_list, "rate_per_second": 400, "retry_policy": None},
    )
    assert (changed["template"], changed["list_id"], changed["rate_per_second"]) == (
        "Bye {{ first_name }}",
        second_list,
        400,
    )
    assert changed["retry_policy"] is None and changed["name"] == campaign["name"]
    assert tenant.ok("GET", path) == changed
    assert [c["id"] for c in tenant.ok("GET", f"/v1/campaigns?list_id={second_list}")["items"]] == [campaign["id"]]

    status, body = problem(tenant, "PATCH", path, {"list_id": "lst_missing"})
    assert status == 422 and body["errors"][0]["field"] == "list_id"
    status, body = problem(tenant, "PATCH", path, {"template": "{{ broken"})
    assert status == 422 and body["errors"][0]["field"] == "template"
    status, body = problem(tenant, "PATCH", path, {"name": None})
    assert status == 422 and body["errors"][0]["field"] == "name"
    status, body = problem(tenant, "PATCH", path, {"colour": "red"})
    assert status == 422 and body["errors"][0]["field"] == "colour"

    started = tenant.ok("POST", f"{path}/start")
    assert started["counters"]["total"] == 5  # the list it was changed to
    running = tenant.ok("PATCH", path, {"rate_per_second": 250, "name": "slower"})
    assert (running["rate_per_second"], running["name"], running["status"]) == (250, "slower", "running")
    status, body = problem(tenant, "PATCH", path, {"template": "Other"})
    assert status == 409 and body["errors"][0]["field"] == "template" and "running" in body["detail"]
    status, body = problem(tenant, "PATCH", path, {"rate_per_second": 1000})  # beyond its deliveries' spread
    assert status == 422 and body["errors"][0]["field"] == "rate_per_second"
    tenant.ok("POST", f"{path}/cancel")
    status, body = problem(tenant, "PATCH", path, {"name": "again"})
    assert status == 409 and body["errors"][0] == {"field": "status", "reason": "is cancelled"}
    assert tenant.ok("GET", path)["name"] == "slower"


def test_draft_and_finished_campaigns_are_deleted_and_running_ones_are_not(tenant: Api, api: Api) -> None:
    list_id = new_list(tenant)
    kept, removed, running = draft(tenant, list_id), draft(tenant, list_id), draft(tenant, list_id)
    tenant.ok("POST", f"/v1/campaigns/{running['id']}/start")

    assert api.new_account("other").call("DELETE", f"/v1/campaigns/{removed['id']}").status_code == 404
    assert tenant.call("DELETE", f"/v1/campaigns/{removed['id']}").status_code == 204
    status, _ = problem(tenant, "GET", f"/v1/campaigns/{removed['id']}")
    assert status == 404
    assert tenant.call("DELETE", f"/v1/campaigns/{removed['id']}").status_code == 404

    status, body = problem(tenant, "DELETE", f"/v1/campaigns/{running['id']}")
    assert status == 409 and body["errors"][0] == {"field": "status", "reason": "is running"}
    tenant.ok("POST", f"/v1/campaigns/{running['id']}/cancel")
    assert tenant.call("DELETE", f"/v1/campaigns/{running['id']}").status_code == 204
    assert all_pages(tenant, "") == [kept["id"]]


def test_a_clone_is_a_new_draft_with_the_same_definition(tenant: Api) -> None:
    list_id, excluded = new_list(tenant), new_list(tenant)
    original = draft(tenant, list_id, exclusion_list_ids=[excluded], rate_per_second=42)
    tenant.ok("POST", f"/v1/campaigns/{original['id']}/start")

    copy = tenant.ok("POST", f"/v1/campaigns/{original['id']}/clone", status=201)
    assert copy["id"] != original["id"] and copy["status"] == "draft" and copy["name"] == "Spring sale (copy)"
    same = ("list_id", "channel", "sender", "template", "rate_per_second", "retry_policy", "exclusion_list_ids")
    assert {k: copy[k] for k in same} == {k: original[k] for k in same}
    unsent = {k: 0 for k in copy["counters"]} | {"skipped_by_reason": {}, "total": 3, "queued": 3}
    assert copy["counters"] == unsent  # its audience, unsent
    named = tenant.ok("POST", f"/v1/campaigns/{original['id']}/clone", {"name": "Autumn"}, status=201)
    assert named["name"] == "Autumn"
    assert all_pages(tenant, "&status=draft") == [named["id"], copy["id"]]
    status, body = problem(tenant, "POST", f"/v1/campaigns/{original['id']}/clone", {"name": ""})
    assert status == 422 and body["errors"][0]["field"] == "name"


def test_a_chain_to_another_campaign_is_checked_and_started_when_the_first_completes(tenant: Api, api: Api) -> None:
    from chalicelib.operations import completion
    from chalicelib.store import accounts, campaigns, keys

    list_id, empty = new_list(tenant), new_list(tenant, rows=0)
    second = draft(tenant, list_id, name="second")
    first = draft(tenant, list_id, name="first", next_campaign_id=second["id"])
    assert first["next_campaign_id"] == second["id"]
    # A chain must name a campaign of the account and never lead back.
    status, body = problem(tenant, "PATCH", f"/v1/campaigns/{second['id']}", {"next_campaign_id": first["id"]})
    assert status == 422 and body["errors"][0]["field"] == "next_campaign_id" and "cycle" in body["detail"]
    status, body = problem(tenant, "PATCH", f"/v1/campaigns/{first['id']}", {"next_campaign_id": first["id"]})
    assert status == 422 and "cycle" in body["detail"]
    elsewhere = api.new_account("other")
    status, body = problem(
        elsewhere, "POST", "/v1/campaigns", campaign_body(new_list(elsewhere), next_campaign_id=second["id"])
    )
    assert status == 422 and body["errors"][0]["field"] == "next_campaign_id"

    account = str(accounts.account_for_api_key(str(tenant.api_key)))

    def complete(campaign: dict[str, Any]) -> bool:
        """What the stream does when the last outcome lands: the campaign is done, and completes."""
        pk = keys.campaign_pk(account, campaign["id"])
        campaigns.set_fields(pk, {"release_exhausted": True, "succeeded": 3, "in_flight": 0, "waiting": 0})
        return completion.complete_if_done(campaigns.get_campaign_by_pk(pk))  # type: ignore[arg-type]

    tenant.ok("POST", f"/v1/campaigns/{first['id']}/start")
    assert complete(first)
    assert not complete(first)  # once: a second completion attempt starts nothing again
    assert tenant.ok("GET", f"/v1/campaigns/{first['id']}")["status"] == "completed"
    started = tenant.ok("GET", f"/v1/campaigns/{second['id']}")
    assert started["status"] == "running" and started["counters"]["total"] == 3

    # A next campaign that cannot start is reported on the one that completed.
    nobody = draft(tenant, empty, name="nobody")
    third = draft(tenant, list_id, name="third", next_campaign_id=nobody["id"])
    tenant.ok("POST", f"/v1/campaigns/{third['id']}/start")
    assert complete(third)
    done = tenant.ok("GET", f"/v1/campaigns/{third['id']}")
    assert done["status"] == "completed" and "no recipients" in done["next_problem"]
    assert tenant.ok("GET", f"/v1/campaigns/{nobody['id']}")["status"] == "draft"


def test_a_draft_counts_its_audience_from_creation_and_follows_a_new_list(tenant: Api) -> None:
    created = draft(tenant, new_list(tenant, 3))
    assert (created["counters"]["total"], created["counters"]["queued"]) == (3, 3)
    changed = tenant.ok("PATCH", f"/v1/campaigns/{created['id']}", {"list_id": new_list(tenant, 5)})
    assert changed["counters"]["total"] == 5
    clone = tenant.ok("POST", f"/v1/campaigns/{created['id']}/clone", status=201)
    assert clone["counters"]["total"] == 5


def _epoch(moment: str) -> float:
    return datetime.fromisoformat(moment.replace("Z", "+00:00")).timestamp()


def test_a_maximum_age_sets_the_expiry_at_the_start_unless_an_earlier_one_is_set(tenant: Api) -> None:
    list_id = new_list(tenant)
    aged = draft(tenant, list_id, max_age_seconds=3600)
    assert aged["max_age_seconds"] == 3600 and aged["expires_at"] is None
    started = tenant.ok("POST", f"/v1/campaigns/{aged['id']}/start")
    assert _epoch(started["expires_at"]) - _epoch(started["started_at"]) == pytest.approx(3600, abs=1)

    soon = datetime.fromtimestamp(time.time() + 600, UTC).isoformat()
    earlier = draft(tenant, list_id, max_age_seconds=3600, expires_at=soon)
    started = tenant.ok("POST", f"/v1/campaigns/{earlier['id']}/start")
    assert _epoch(started["expires_at"]) == pytest.approx(_epoch(soon), abs=1)

    clone = tenant.ok("POST", f"/v1/campaigns/{earlier['id']}/clone", status=201)
    assert (clone["max_age_seconds"], clone["expires_at"]) == (3600, None)


def test_a_maximum_age_under_a_minute_is_refused_naming_it(tenant: Api) -> None:
    status, body = problem(tenant, "POST", "/v1/campaigns", campaign_body(new_list(tenant), max_age_seconds=5))
    assert status == 422
    assert [e["field"] for e in body["errors"]] == ["max_age_seconds"]


def _listing(tenant: Api, campaign_id: str) -> dict[str, str]:
    """Every recipient the per-recipient listing shows, paged two at a time, with its state."""
    states: dict[str, str] = {}
    token = None
    for _ in range(20):
        query = "?limit=2" + (f"&page_token={token}" if token else "")
        page = tenant.ok("GET", f"/v1/campaigns/{campaign_id}/recipients{query}")
        for item in page["items"]:
            assert item["recipient_id"] not in states, "a recipient listed twice"
            states[item["recipient_id"]] = item["state"]
        if (token := page["next_page_token"]) is None:
            return states
    raise AssertionError("pages never ended")


def test_every_recipient_of_the_audience_is_listed_from_creation_pending_until_sent(
    tenant: Api, chalice_app: Any, aws_env: dict[str, str]
) -> None:
    from tests.utils import LambdaContext, receive_all, run_release_jobs, sqs_event

    list_id = new_list(tenant, rows=5)
    ids = {row["phone"] for row in recipient_rows(5)}
    campaign = draft(tenant, list_id)
    assert _listing(tenant, campaign["id"]) == dict.fromkeys(ids, "pending")

    tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/start")
    later = recipient_rows(1, start=5)
    tenant.ok("POST", f"/v1/lists/{list_id}/recipients", {"recipients": later})  # not in the audience
    assert _listing(tenant, campaign["id"]) == dict.fromkeys(ids, "pending")

    assert run_release_jobs(chalice_app, aws_env["RELEASE_QUEUE_URL"]) == 1
    chunks = receive_all(aws_env["DISPATCH_QUEUE_URL"])
    chalice_app.dispatch(sqs_event(chunks), LambdaContext())
    assert _listing(tenant, campaign["id"]) == dict.fromkeys(ids, "succeeded")


def test_paging_the_recipients_goes_on_across_the_campaign_s_end(tenant: Api) -> None:
    list_id = new_list(tenant, rows=5)
    campaign = draft(tenant, list_id)
    tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/start")
    first = tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/recipients?limit=2")
    tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/cancel")  # finished: a new listing reads deliveries
    rest = tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/recipients?limit=10&page_token={first['next_page_token']}")
    ids = [i["recipient_id"] for i in first["items"] + rest["items"]]
    assert sorted(ids) == sorted(row["phone"] for row in recipient_rows(5))
    assert tenant.ok("GET", f"/v1/campaigns/{campaign['id']}/recipients")["items"] == []  # none was sent
