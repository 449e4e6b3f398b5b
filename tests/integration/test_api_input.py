"""Bad input gets a problem+json naming the field and the reason, and changes nothing."""

from __future__ import annotations

import json

import pytest

from tests.utils import Api, campaign_body, recipient_rows

pytestmark = pytest.mark.integration


def problem_of(answer: object) -> dict[str, object]:
    assert answer.headers["Content-Type"] == "application/problem+json"  # type: ignore[attr-defined]
    return json.loads(answer.body)  # type: ignore[attr-defined]


def test_missing_or_unknown_api_key_is_401(api: Api) -> None:
    assert problem_of(api.call("GET", "/v1/lists/lst_x"))["status"] == 401
    assert problem_of(api.call("GET", "/v1/lists/lst_x", key="bk_nope"))["status"] == 401


def test_only_the_admin_token_creates_accounts(api: Api) -> None:
    answer = api.call("POST", "/v1/accounts", {"name": "x"}, key="not-admin")
    assert answer.status_code == 401


def test_malformed_json_is_400_naming_the_body(tenant: Api) -> None:
    answer = tenant.call("POST", "/v1/lists", raw='{"name": ')
    problem = problem_of(answer)
    assert answer.status_code == 400
    assert problem["errors"][0]["field"] == "body"  # type: ignore[index]


def test_unknown_field_and_wrong_type_name_the_field(tenant: Api) -> None:
    problem = problem_of(tenant.call("POST", "/v1/lists", {"name": "a", "colour": "red"}))
    assert problem["status"] == 422
    assert {"field": "colour", "reason": "Extra inputs are not permitted"} in problem["errors"]  # type: ignore[operator]
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    problem = problem_of(tenant.call("POST", "/v1/campaigns", campaign_body(listed["id"], rate_per_second="fast")))
    assert problem["errors"][0]["field"] == "rate_per_second"  # type: ignore[index]


def test_oversize_batch_is_refused_whole_and_adds_nothing(tenant: Api) -> None:
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    answer = tenant.call("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": recipient_rows(10_001)})
    problem = problem_of(answer)
    assert answer.status_code == 422
    assert problem["errors"][0]["field"] == "recipients"  # type: ignore[index]
    assert tenant.ok("GET", f"/v1/lists/{listed['id']}")["recipient_count"] == 0


def test_starting_a_campaign_on_an_empty_list_is_422_on_list_id(tenant: Api) -> None:
    listed = tenant.ok("POST", "/v1/lists", {"name": "empty"}, status=201)
    campaign = tenant.ok("POST", "/v1/campaigns", campaign_body(listed["id"]), status=201)
    problem = problem_of(tenant.call("POST", f"/v1/campaigns/{campaign['id']}/start"))
    assert problem["status"] == 422
    assert problem["errors"][0]["field"] == "list_id"  # type: ignore[index]
    assert tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")["status"] == "draft"


def test_any_action_on_a_cancelled_campaign_is_409_and_changes_nothing(tenant: Api) -> None:
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    campaign = tenant.ok("POST", "/v1/campaigns", campaign_body(listed["id"]), status=201)
    tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/cancel")
    for action in ("start", "pause", "resume", "cancel"):
        answer = tenant.call("POST", f"/v1/campaigns/{campaign['id']}/{action}")
        assert answer.status_code == 409, action
        assert "cancelled" in problem_of(answer)["detail"]  # type: ignore[operator]
    assert tenant.ok("GET", f"/v1/campaigns/{campaign['id']}")["status"] == "cancelled"


def test_campaign_on_a_list_of_another_account_is_refused(api: Api) -> None:
    alice, bob = api.new_account("alice"), api.new_account("bob")
    alices_list = alice.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    problem = problem_of(bob.call("POST", "/v1/campaigns", campaign_body(alices_list["id"])))
    assert problem["errors"][0]["field"] == "list_id"  # type: ignore[index]
    assert bob.call("GET", f"/v1/lists/{alices_list['id']}").status_code == 404


def test_broken_template_is_422_on_template(tenant: Api) -> None:
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    problem = problem_of(tenant.call("POST", "/v1/campaigns", campaign_body(listed["id"], template="Hi {{ x ")))
    assert problem["errors"][0]["field"] == "template"  # type: ignore[index]


def test_a_number_sent_as_a_string_or_a_boolean_is_a_wrong_type(tenant: Api) -> None:
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    for wrong in ("10", True):
        problem = problem_of(tenant.call("POST", "/v1/campaigns", campaign_body(listed["id"], rate_per_second=wrong)))
        assert problem["errors"] == [{"field": "rate_per_second", "reason": "Input should be a valid number"}]


def test_a_conflict_names_the_status_field(tenant: Api) -> None:
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    campaign = tenant.ok("POST", "/v1/campaigns", campaign_body(listed["id"]), status=201)
    problem = problem_of(tenant.call("POST", f"/v1/campaigns/{campaign['id']}/pause"))
    assert problem["status"] == 409
    assert problem["errors"][0]["field"] == "status"  # type: ignore[index]
    assert "is draft" in problem["errors"][0]["reason"]  # type: ignore[index]


def test_an_idempotency_key_replays_nothing_to_a_caller_without_the_admin_token(api: Api) -> None:
    headers = {"Idempotency-Key": "acct-1"}
    first = api.ok("POST", "/v1/accounts", {"name": "x"}, status=201, key="test-admin-token", headers=headers)
    again = api.ok("POST", "/v1/accounts", {"name": "x"}, status=201, key="test-admin-token", headers=headers)
    assert again == first
    stranger = api.call("POST", "/v1/accounts", {"name": "x"}, key="guess", headers=headers)
    assert stranger.status_code == 401
    assert first["api_key"] not in stranger.body.decode()
