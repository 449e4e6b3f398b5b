"""Message templates: immutable versions, locales with a fallback chain, global data that each recipient's
attributes override, a preview with the SMS encoding and segment count, and campaigns that send them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.local.fake_provider import FakeProvider
from tests.utils import Api, LambdaContext, campaign_body, receive_all, recipient_rows, run_release_jobs, sqs_event

pytestmark = pytest.mark.integration

GREETING = {
    "name": "greeting",
    "content": {"text": "Hi {{ first_name }}, {{ offer }}"},
    "locales": {"pt": {"text": "Olá {{ first_name }}, {{ offer }}"}, "pt-BR": {"text": "Oi {{ first_name }}!"}},
}


def problem(answer: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(answer.body)
    return body


def test_a_template_is_created_changed_by_new_versions_and_read_back(tenant: Api) -> None:
    created = tenant.ok("POST", "/v1/templates", GREETING, status=201)
    assert created["latest_version"] == 1 and created["channel"] == "sms"
    assert created["latest"]["locales"]["pt-BR"] == {
        "text": "Oi {{ first_name }}!",
        "subject": None,
        "html": None,
        "whatsapp": None,
        "voice": None,
    }
    path = f"/v1/templates/{created['id']}"
    second = tenant.ok("POST", f"{path}/versions", {"content": {"text": "Hello {{ first_name }}"}}, status=201)
    assert second["version"] == 2 and second["locales"] == {}
    assert tenant.ok("GET", path)["latest_version"] == 2
    assert tenant.ok("GET", f"{path}/versions/1")["content"]["text"] == "Hi {{ first_name }}, {{ offer }}"
    assert tenant.call("GET", f"{path}/versions/3").status_code == 404
    listed = tenant.ok("GET", "/v1/templates?limit=1")
    assert [t["id"] for t in listed["items"]] == [created["id"]] and listed["next_page_token"] is None

    other = tenant.new_account("other")
    for method, url, body in (("GET", path, None), ("POST", f"{path}/versions", {"content": {"text": "x"}})):
        assert other.call(method, url, body).status_code == 404
    assert other.ok("GET", "/v1/templates")["items"] == []
    assert other.call("DELETE", path).status_code == 404

    assert tenant.call("DELETE", path).status_code == 204
    for url in (path, f"{path}/versions/1"):
        assert tenant.call("GET", url).status_code == 404
    assert tenant.call("DELETE", path).status_code == 404
    assert tenant.ok("GET", "/v1/templates")["items"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "content": {"text": "{% include 'a' %}"}}, "content.text"),
        ({"name": "x", "content": {"text": "{{ a | system }}"}}, "content.text"),
        ({"name": "x", "content": {"text": "ok"}, "locales": {"not a tag": {"text": "x"}}}, "locales"),
        ({"name": "x", "content": {"text": "ok"}, "locales": {"pt": {"text": "x"}, "PT": {"text": "y"}}}, "locales"),
        ({"name": "x", "channel": "fax", "content": {"text": "ok"}}, "channel"),
    ],
)
def test_bad_templates_are_422_naming_the_field_and_nothing_is_created(
    tenant: Api, body: dict[str, Any], field: str
) -> None:
    answer = tenant.call("POST", "/v1/templates", body)
    assert answer.status_code == 422, answer.body
    assert problem(answer)["errors"][0]["field"].startswith(field)
    assert tenant.ok("GET", "/v1/templates")["items"] == []


def test_preview_renders_for_a_sample_recipient_with_encoding_and_segments(tenant: Api) -> None:
    created = tenant.ok("POST", "/v1/templates", GREETING, status=201)
    path = f"/v1/templates/{created['id']}/preview"
    plain = tenant.ok("POST", path, {"data": {"first_name": "Ada", "offer": "20% off"}})
    assert plain == {
        "version": 1,
        "locale": None,
        "text": "Hi Ada, 20% off",
        "subject": None,
        "html": None,
        "whatsapp": None,
        "characters": 15,
        "encoding": "GSM-7",
        "segments": 1,
        "warnings": [],
    }
    portuguese = tenant.ok("POST", path, {"data": {"first_name": "João", "offer": "x"}, "locale": "pt-PT"})
    assert portuguese["locale"] == "pt" and portuguese["text"] == "Olá João, x"
    assert portuguese["encoding"] == "UCS-2" and portuguese["warnings"]
    brazilian = tenant.ok("POST", path, {"data": {"first_name": "Ana"}, "locale": "pt-br"})
    assert brazilian["locale"] == "pt-BR" and brazilian["text"] == "Oi Ana!"
    long = tenant.ok("POST", path, {"data": {"first_name": "A" * 1000, "offer": "x"}})
    assert long["segments"] == 7 and "over the provider's limit of 1,000" in long["warnings"][0]
    missing = tenant.call("POST", path, {"data": {"first_name": "Ada"}})
    assert missing.status_code == 422 and problem(missing)["errors"][0]["field"] == "data"
    assert "offer" in problem(missing)["errors"][0]["reason"]


def test_a_campaign_sends_a_pinned_version_in_each_recipient_s_locale_with_global_data(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider
) -> None:
    created = tenant.ok("POST", "/v1/templates", GREETING, status=201)
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    rows = recipient_rows(4)
    rows[3]["params"] = {"first_name": "R3", "offer": "free shipping"}  # overrides the campaign's data
    full = [
        {"destinations": [{"type": "phone", "address": row["phone"]}], "attributes": row["params"], "locale": locale}
        for row, locale in zip(rows, (None, "pt-PT", "pt-BR", None), strict=True)
    ]
    added = tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": full})
    assert added["accepted"] == 4, added
    body = campaign_body(listed["id"], template=None, template_id=created["id"], data={"offer": "20% off"})
    del body["template"]
    campaign = tenant.ok("POST", "/v1/campaigns", body, status=201)
    assert (campaign["template_id"], campaign["template_version"]) == (created["id"], 1)
    # A later version does not change what the campaign sends: it pinned version 1.
    tenant.ok("POST", f"/v1/templates/{created['id']}/versions", {"content": {"text": "changed"}}, status=201)
    tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/start")
    run_release_jobs(chalice_app, aws_env["RELEASE_QUEUE_URL"])
    chalice_app.dispatch(sqs_event(receive_all(aws_env["DISPATCH_QUEUE_URL"])), LambdaContext())
    texts = {m["to"]: m["text"] for m in provider.messages()}
    assert texts == {
        rows[0]["phone"].removeprefix("+"): "Hi R0, 20% off",
        rows[1]["phone"].removeprefix("+"): "Olá R1, 20% off",
        rows[2]["phone"].removeprefix("+"): "Oi R2!",
        rows[3]["phone"].removeprefix("+"): "Hi R3, free shipping",
    }
    clone = tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/clone", status=201)
    assert (clone["template_version"], clone["template_locales"]) == (1, campaign["template_locales"])


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"template_id": "tpl_nosuch"}, "template_id"),
        ({"template_id": "{id}", "template_version": 9}, "template_version"),
        ({"template_id": "{id}", "template": "Hi"}, "template"),
        ({"template": None}, "template"),
        ({"template_version": 1}, "template_version"),
        ({"data": {"blob": "x" * 5000}}, "data"),
    ],
)
def test_a_campaign_naming_a_template_badly_is_422_on_the_field(
    tenant: Api, overrides: dict[str, Any], field: str
) -> None:
    created = tenant.ok("POST", "/v1/templates", GREETING, status=201)
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    body = campaign_body(listed["id"])
    if "template_id" in overrides:
        del body["template"]  # one or the other (the case that gives both says so)
    body.update({k: (created["id"] if v == "{id}" else v) for k, v in overrides.items()})
    if body.get("template", "") is None:
        del body["template"]
    answer = tenant.call("POST", "/v1/campaigns", body)
    assert answer.status_code == 422, answer.body
    assert problem(answer)["errors"][0]["field"] == field
    assert tenant.ok("GET", "/v1/campaigns")["items"] == []


def test_a_draft_is_patched_onto_a_template_another_version_and_back_to_its_own_text(tenant: Api) -> None:
    created = tenant.ok("POST", "/v1/templates", GREETING, status=201)
    tenant.ok(
        "POST", f"/v1/templates/{created['id']}/versions", {"content": {"text": "v2 {{ first_name }}"}}, status=201
    )
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    campaign = tenant.ok("POST", "/v1/campaigns", campaign_body(listed["id"]), status=201)
    path = f"/v1/campaigns/{campaign['id']}"

    latest = tenant.ok("PATCH", path, {"template_id": created["id"]})
    assert (latest["template_version"], latest["template"]) == (2, "v2 {{ first_name }}")
    assert latest["template_locales"] == {}
    first = tenant.ok("PATCH", path, {"template_version": 1})
    assert (first["template_id"], first["template"]) == (created["id"], "Hi {{ first_name }}, {{ offer }}")
    assert set(first["template_locales"]) == {"pt", "pt-BR"}
    own = tenant.ok("PATCH", path, {"template": "Mine {{ first_name }}"})
    assert (own["template_id"], own["template_version"], own["template_locales"]) == (None, None, {})
    both = tenant.call("PATCH", path, {"template": "x", "template_id": created["id"]})
    assert both.status_code == 422 and problem(both)["errors"][0]["field"] == "template"
    assert tenant.ok("GET", path)["template"] == "Mine {{ first_name }}"
    too_much = tenant.call("PATCH", path, {"data": {"blob": "x" * 5000}})
    assert too_much.status_code == 422 and problem(too_much)["errors"][0]["field"] == "data"
