"""A campaign's texts checked against its list before it starts: the list counts how many recipients have
each attribute (kept as rows are added, changed, deleted, or the list cleared), and a start that would
fail recipients for a variable they lack is refused naming the variables, unless the campaign allows it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.utils import Api, campaign_body


def row(i: int, **attributes: Any) -> dict[str, Any]:
    return {"id": f"r{i}", "destinations": [{"type": "phone", "address": f"+1415555{i:04d}"}], "attributes": attributes}


@pytest.fixture
def listed(tenant: Api) -> dict[str, Any]:
    created = tenant.ok("POST", "/v1/lists", {"name": "vars"}, status=201)
    rows = [row(0, first_name="Ann", code="A1"), row(1, first_name="Bo"), row(2), row(3, first_name="Cy")]
    tenant.ok("POST", f"/v1/lists/{created['id']}/recipients", {"recipients": rows})
    return dict(created)


def campaign(tenant: Api, list_id: str, **overrides: Any) -> dict[str, Any]:
    body = campaign_body(list_id, template="Hi {{ first_name }}, use {{ code }} ({{ phone }}, {{ id }})", **overrides)
    return dict(tenant.ok("POST", "/v1/campaigns", body, status=201))


def test_the_check_counts_who_lacks_each_variable_and_start_is_refused_naming_them(
    tenant: Api, listed: dict[str, Any]
) -> None:
    created = campaign(tenant, listed["id"])
    check = tenant.ok("GET", f"/v1/campaigns/{created['id']}/variables")
    assert check == {"recipients": 4, "counted": True, "variables": ["code", "first_name"],
                     "missing": {"code": 3, "first_name": 1}}  # fmt: skip

    answer = tenant.call("POST", f"/v1/campaigns/{created['id']}/start")
    assert answer.status_code == 422
    (error,) = answer.json_body["errors"]
    assert error["field"] == "allow_missing_variables"
    assert "3 of 4 lack code" in error["reason"] and "1 of 4 lack first_name" in error["reason"]
    assert tenant.ok("GET", f"/v1/campaigns/{created['id']}")["status"] == "draft"

    tenant.ok("PATCH", f"/v1/campaigns/{created['id']}", {"allow_missing_variables": True})
    assert tenant.ok("POST", f"/v1/campaigns/{created['id']}/start")["status"] == "running"


def test_data_gives_a_variable_to_everyone(tenant: Api, listed: dict[str, Any]) -> None:
    created = campaign(tenant, listed["id"], data={"code": "SPRING"})
    assert tenant.ok("GET", f"/v1/campaigns/{created['id']}/variables")["missing"] == {"first_name": 1}


def test_the_counts_follow_changes_deletions_and_clearing(tenant: Api, listed: dict[str, Any]) -> None:
    list_id = listed["id"]
    created = campaign(tenant, list_id)

    def missing() -> dict[str, int]:
        return dict(tenant.ok("GET", f"/v1/campaigns/{created['id']}/variables")["missing"])

    tenant.ok("PATCH", f"/v1/lists/{list_id}/recipients/r2", {"attributes": {"first_name": "Di", "code": "D"}})
    assert missing() == {"code": 2}
    assert tenant.call("DELETE", f"/v1/lists/{list_id}/recipients/r1").status_code == 204
    assert missing() == {"code": 1}
    tenant.ok("PATCH", f"/v1/lists/{list_id}/recipients/r0", {"attributes": {"first_name": "Ann"}})  # code dropped
    assert missing() == {"code": 2}
    tenant.ok("POST", f"/v1/lists/{list_id}/clear", status=202)
    tenant.ok("POST", f"/v1/lists/{list_id}/recipients", {"recipients": [row(9, first_name="Eve", code="E")]})
    assert tenant.ok("GET", f"/v1/campaigns/{created['id']}/variables")["recipients"] == 1
    assert missing() == {}
