"""The API's contract, fuzzed on the local stack: schemathesis reads the served OpenAPI document, follows
its links (a list, then its recipients and campaigns, then their actions) and checks every answer:
no 5xx, and status, content type, headers and body as the document says. Two accounts take part: every
call on an id is made by the other account first, and must be a 404 problem+json.

`make test` runs a short fuzz from fixed seeds (reproducible up to the server's own timing); `make fuzz` a
longer one. FUZZ_EXAMPLES (scenarios), FUZZ_STEPS (calls per scenario) and FUZZ_SEED tune it.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis.errors import FlakyReplay, FlakyStrategyDefinition
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.stateful.state_machine import StepInput, StepOutput

from chalicelib.api.openapi import OPERATIONS
from infra.local.client import valid_phone
from infra.local.stack import LocalStack, create_local_account

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "160"))  # 60 no longer reached campaigns once the API grew
STEPS = int(os.environ.get("FUZZ_STEPS", "10"))
SEED = int(os.environ.get("FUZZ_SEED", "20250607"))
PROBLEM_JSON = "application/problem+json"
ADMIN_PATHS = {op.path for op in OPERATIONS if op.admin}  # the operator's routes: the admin token, no account

# What every answer is held to. Not positive_data_acceptance: a body the schema allows may still be
# refused by rules it cannot say (a template that does not compile, a list of another account, starting
# a campaign whose list is empty), and those 4xx are the contract too.
CHECKS = {
    "not_a_server_error": {"enabled": True},
    "status_code_conformance": {"enabled": True},
    "content_type_conformance": {"enabled": True},
    "response_schema_conformance": {"enabled": True},
    "response_headers_conformance": {"enabled": True},
    "negative_data_rejection": {"enabled": True},
    "ignored_auth": {"enabled": True},
    "use_after_free": {"enabled": True},
    "ensure_resource_availability": {"enabled": True},
    "positive_data_acceptance": {"enabled": False},
    "missing_required_header": {"enabled": False},
    "object_level_authorization": {"enabled": False},  # done by hand below, with a second account
    "unsupported_method": {"enabled": False},
    "allow_header_conformance": {"enabled": False},
}


@dataclass(frozen=True)
class Accounts:
    api_url: str
    admin_token: str
    alice: str  # API keys
    bob: str


@pytest.fixture(scope="module")
def stack() -> Iterator[LocalStack]:
    with LocalStack(provider_rate_limit=1000, provider_transient_failure_rate=0.0, seed=5) as running:
        yield running


@pytest.fixture(scope="module")
def accounts(stack: LocalStack) -> Accounts:
    keys = []
    for name in ("alice", "bob"):
        created = create_local_account(stack.api_url, stack.admin_token, name)
        assert created is not None
        keys.append(created["api_key"])
    return Accounts(stack.api_url, stack.admin_token, *keys)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:500])
    content_type = response.headers.get("content-type")
    # httpx gives a header's value, schemathesis the list of its values
    assert (content_type[0] if isinstance(content_type, list) else content_type) == PROBLEM_JSON
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert problem["type"] and problem["title"] and problem["detail"]
    return problem


# --- the fuzz ------------------------------------------------------------------------------------


def load_schema(accounts: Accounts, mode: str) -> Any:
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": accounts.api_url,
            "generation": {"mode": mode, "deterministic": True, "database": "none"},
            "checks": CHECKS,
        }
    )
    schema = schemathesis.openapi.from_url(f"{accounts.api_url}/v1/openapi.json", config=config, timeout=30)
    # The operator's routes (accounts, recount of any account's campaign) are not a tenant's workflow.
    return schema.exclude(path_regex="^/v1/accounts")


def takes_id(case: Any) -> bool:
    return any(name.endswith("_id") for name in (case.path_parameters or {}))


def is_positive(case: Any) -> bool:
    return case.meta is None or not case.meta.generation.mode.is_negative


@dataclass
class Tally:
    scenarios: int = 0
    steps: int = 0
    intruder_calls: int = 0
    statuses: dict[tuple[str, int], int] = field(default_factory=dict)
    refusals: dict[str, int] = field(default_factory=dict)  # positive campaigns refused, by the field named


def contract_machine(schema: Any, accounts: Accounts, owner: str, intruder: str, tally: Tally) -> Any:
    """schemathesis' state machine for the document, acting as `owner`, with `intruder` calling every id first."""
    base: Any = schema.as_state_machine()
    # Scenarios start from operations without ids (create a list, a campaign); calls on ids follow the
    # links from what a scenario created (and the intruder tries each of them). Random ids are rarely
    # anything but a 404, and would take most of the steps.
    random_ids = {name for name in base.root_rules if "_id" in name}
    lists_made: list[str] = []  # the owner's lists the fuzz created (a positive campaign is put on one)

    class Contract(base):
        root_rules = frozenset(base.root_rules - random_ids)

        def setup(self) -> None:
            tally.scenarios += 1
            # Idempotency-Keys are scoped to the scenario: a replay must not meet an earlier scenario's answer.
            self.nonce = f"{uuid.uuid4().hex[:12]}:"
            self.rows = 0

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            if case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER):
                # Headers broken on purpose (e.g. Authorization left out): adding the key back would make a
                # valid request of it, and its acceptance a false finding.
                return {"timeout": 30}
            admin = case.operation.path in ADMIN_PATHS
            return {"headers": bearer(accounts.admin_token if admin else owner), "timeout": 30}

        def before_call(self, case: Any) -> None:
            key = (case.headers or {}).get("Idempotency-Key")
            if isinstance(key, str) and len(key) + len(self.nonce) <= 256:
                case.headers["Idempotency-Key"] = self.nonce + key
            # Let a campaign in: a random start time is hardly ever in the coming year, and a random id never
            # names a campaign of the account to chain to.
            if case.operation.path == "/v1/campaigns" and case.method == "POST" and isinstance(case.body, dict):
                if is_positive(case) and case.body.get("start_at") is not None:
                    case.body["start_at"] = (datetime.now(UTC) + timedelta(days=1)).isoformat()
                if is_positive(case):  # ids made up at random name nothing of the account
                    case.body.pop("next_campaign_id", None)
                    case.body.pop("exclusion_list_ids", None)
                    if lists_made and case.body.get("list_id") not in lists_made:
                        case.body["list_id"] = lists_made[-1]
                    sms_campaign(case.body)
            # Let a row in: random text is hardly ever a phone number, so the first row gets a real one.
            if case.operation.path.endswith("/recipients") and case.method == "POST" and is_positive(case):
                rows = case.body.get("recipients") if isinstance(case.body, dict) else None
                if isinstance(rows, list) and rows:
                    params = rows[0].get("params") if isinstance(rows[0], dict) else None
                    rows[0] = {"phone": valid_phone(self.rows % 100_000), "params": params or {}}
                    self.rows += 1

        def step(self, input: StepInput) -> StepOutput:
            case = input.case
            tally.steps += 1
            if takes_id(case) and is_positive(case) and case.operation.path not in ADMIN_PATHS:
                # The other account first: the same well-formed request with its key names nothing it owns.
                foreign = case.call(**{**self.get_call_kwargs(case), "headers": bearer(intruder)})
                tally.intruder_calls += 1
                assert_problem(foreign, 404)
            output: StepOutput = super().step(input)
            label = (f"{case.method} {case.operation.path}", output.response.status_code)
            tally.statuses[label] = tally.statuses.get(label, 0) + 1
            if label == ("POST /v1/lists", 201):
                lists_made.append(output.response.json()["id"])
            if label == ("POST /v1/campaigns", 422) and is_positive(case):  # why valid-looking ones are refused
                errors = output.response.json().get("errors") or [{}]
                tally.refusals[str(errors[0].get("field"))] = tally.refusals.get(str(errors[0].get("field")), 0) + 1
            return output

    for name in random_ids:
        setattr(Contract, name, None)  # not a rule any more
    return Contract


def sms_campaign(body: dict[str, Any]) -> None:
    """A valid campaign body of random content hardly ever fits a channel other than SMS (an email sender
    verified in SES, an action of the account, an approved WhatsApp template), nor an SMS sender over 20
    characters: the positive cases are kept on SMS so that scenarios reach campaigns and their actions.
    The other channels' refusals are fuzzed by the negative cases and tested in tests/faults."""
    body["channel"] = "sms"
    # Random ids name nothing of the account, random text is hardly ever a time zone, and random weights
    # hardly ever add up to 100.
    for name in ("email", "whatsapp", "voice", "fallback", "action_id", "template_id", "template_version", "timezone"):
        body.pop(name, None)
    # A segment's own channel needs that channel's content, which random content hardly ever is (the same
    # as the campaign's): the positive cases keep segments on the campaign's channel.
    for segment in body.get("segments") or []:
        if isinstance(segment, dict):
            for name in ("channel", "email", "whatsapp", "voice", "action_id"):
                segment.pop(name, None)
    weights = [v.get("weight") for v in body.get("variants") or [] if isinstance(v, dict)]
    if weights and sum(w for w in weights if isinstance(w, int | float)) != 100:
        body.pop("variants")
    body.setdefault("template", "Hi")
    for part in [body, *(body.get("variants") or []), *(body.get("segments") or [])]:
        if isinstance(part, dict) and isinstance(part.get("sender"), str):
            part["sender"] = part["sender"][:20]
    body["allow_missing_variables"] = True  # random templates read variables no random row has
    # What the schema allows and the API refuses in ways the schema cannot say, most often met: an integer
    # sent as 5.0 (JSON Schema's integer; pydantic's strict int is not), a window time with an offset.
    if isinstance(body.get("max_concurrent"), float):
        body["max_concurrent"] = int(body["max_concurrent"])
    body.pop("window", None)


def fuzz(schema: Any, accounts: Accounts, owner: str, intruder: str, scenarios: int, tally: Tally, seed: int) -> None:
    """Run `scenarios` scenarios. Answers come from a live server (fresh ids, campaigns that finish while the
    scenario runs), so a replay may draw differently from its first run: Hypothesis then stops the run with
    FlakyStrategyDefinition, and the next run goes on from another fixed seed, as schemathesis' own runner does."""
    wanted = tally.scenarios + scenarios
    for attempt in range(20):
        if tally.scenarios >= wanted:
            return
        machine = hypothesis.seed(seed + attempt)(contract_machine(schema, accounts, owner, intruder, tally))
        settings = hypothesis.settings(
            max_examples=wanted - tally.scenarios,
            stateful_step_count=STEPS,
            database=None,
            deadline=None,
            phases=[hypothesis.Phase.generate],
            suppress_health_check=list(hypothesis.HealthCheck),
            print_blob=False,
        )
        with contextlib.suppress(FlakyStrategyDefinition, FlakyReplay):
            machine.run(settings=settings)


def test_the_served_document_holds_under_stateful_fuzzing(accounts: Accounts) -> None:
    tally = Tally()
    positive, mixed = load_schema(accounts, "positive"), load_schema(accounts, "all")
    # Valid requests reach deep (a list, its rows, a campaign on it, started, paused, resumed, cancelled):
    # each account owns what such scenarios create while the other one intrudes. Then invalid requests
    # mixed in (schemathesis' negative mode), whose chains are shorter: a refused request creates nothing.
    share = EXAMPLES * 2 // 5
    fuzz(positive, accounts, accounts.alice, accounts.bob, share, tally, seed=SEED)
    fuzz(positive, accounts, accounts.bob, accounts.alice, share, tally, seed=SEED + 1000)
    fuzz(mixed, accounts, accounts.alice, accounts.bob, EXAMPLES - 2 * share, tally, seed=SEED + 2000)
    print(f"fuzz: {tally.scenarios} scenarios, {tally.steps} steps, {tally.intruder_calls} intruder calls")
    for (operation, status), count in sorted(tally.statuses.items()):
        print(f"  {count:5d}  {status}  {operation}")
    print(f"positive campaigns refused, by field: {sorted(tally.refusals.items(), key=lambda kv: -kv[1])}")
    assert tally.scenarios >= EXAMPLES
    # The links were followed: lists and campaigns were created and then used.
    reached = {operation for operation, status in tally.statuses if status < 300}
    assert {"POST /v1/lists", "POST /v1/campaigns"} <= reached, reached
    assert any("{" in operation for operation in reached), reached
    assert tally.intruder_calls > 0


# --- another account's ids -----------------------------------------------------------------------

ID_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/v1/lists/{list_id}", None),
    ("POST", "/v1/lists/{list_id}/recipients", {"recipients": [{"phone": valid_phone(9)}]}),
    ("GET", "/v1/lists/{list_id}/recipients", None),
    ("GET", "/v1/campaigns/{campaign_id}", None),
    ("POST", "/v1/campaigns/{campaign_id}/start", None),
    ("POST", "/v1/campaigns/{campaign_id}/pause", None),
    ("POST", "/v1/campaigns/{campaign_id}/resume", None),
    ("POST", "/v1/campaigns/{campaign_id}/cancel", None),
    ("POST", "/v1/campaigns/{campaign_id}/recount", None),
    ("GET", "/v1/campaigns/{campaign_id}/variables", None),
    ("GET", "/v1/campaigns/{campaign_id}/recipients", None),
    ("GET", "/v1/campaigns/{campaign_id}/recipients/{recipient_id}", None),
    ("GET", "/v1/campaigns/{campaign_id}/runs", None),
    ("GET", "/v1/campaigns/{campaign_id}/stats", None),
    ("POST", "/v1/campaigns/{campaign_id}/conversions", {"recipient_id": valid_phone(1), "goal": "purchase"}),
    ("GET", "/v1/campaigns/{campaign_id}/runs/{run_id}", None),
    ("PATCH", "/v1/lists/{list_id}", {"name": "mine now"}),
    ("DELETE", "/v1/lists/{list_id}", None),
    ("POST", "/v1/lists/{list_id}/clear", None),
    ("GET", "/v1/lists/{list_id}/recipients/{recipient_id}", None),
    ("PATCH", "/v1/lists/{list_id}/recipients/{recipient_id}", {"attributes": {"first_name": "Mallory"}}),
    ("DELETE", "/v1/lists/{list_id}/recipients/{recipient_id}", None),
    ("POST", "/v1/lists/{list_id}/uploads", {"filename": "list.csv", "size_bytes": 100}),
    ("GET", "/v1/lists/{list_id}/uploads/{upload_id}", None),
    ("POST", "/v1/lists/{list_id}/uploads/{upload_id}/complete", {"parts": [{"part_number": 1, "etag": "x"}]}),
    ("POST", "/v1/lists/{list_id}/exports", None),
    ("GET", "/v1/lists/{list_id}/exports/{export_id}", None),
    ("POST", "/v1/campaigns/{campaign_id}/exports", None),
    ("GET", "/v1/campaigns/{campaign_id}/exports/{export_id}", None),
    ("PATCH", "/v1/campaigns/{campaign_id}", {"name": "mine now"}),
    ("DELETE", "/v1/campaigns/{campaign_id}", None),
    ("POST", "/v1/campaigns/{campaign_id}/clone", None),
    ("GET", "/v1/templates/{template_id}", None),
    ("POST", "/v1/templates/{template_id}/versions", {"content": {"text": "Mallory's"}}),
    ("GET", "/v1/templates/{template_id}/versions/{version}", None),
    ("POST", "/v1/templates/{template_id}/preview", {"data": {}}),
    ("DELETE", "/v1/templates/{template_id}", None),
    ("GET", "/v1/actions/{action_id}", None),
    ("POST", "/v1/actions/{action_id}/test", {"data": {}}),
    ("DELETE", "/v1/actions/{action_id}", None),
    ("GET", "/v1/brands/{brand_id}", None),
    ("DELETE", "/v1/brands/{brand_id}", None),
    ("GET", "/v1/webhooks/{webhook_id}", None),
    ("DELETE", "/v1/webhooks/{webhook_id}", None),
    ("POST", "/v1/webhooks/{webhook_id}/rotate", None),
    ("POST", "/v1/webhooks/{webhook_id}/enable", None),
    ("GET", "/v1/webhooks/{webhook_id}/deliveries", None),
    ("POST", "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay", None),
    ("GET", "/v1/reply-handlers/{handler_id}", None),
    ("DELETE", "/v1/reply-handlers/{handler_id}", None),
    ("GET", "/v1/suppressions/imports/{import_id}", None),
    ("GET", "/v1/erasures/{erasure_id}", None),
]


def newest(http: httpx.Client, headers: dict[str, str]) -> list[str]:
    return [c["id"] for c in http.get("/v1/campaigns?limit=100", headers=headers).json()["items"]]


def test_another_accounts_ids_are_404_on_every_route_that_takes_an_id(accounts: Accounts) -> None:
    from chalicelib.api.openapi import openapi_document

    documented = {
        (method.upper(), path)
        for path, operations in openapi_document()["paths"].items()
        for method, operation in operations.items()
        if "{" in path
        and "security" not in operation  # the operator's routes take the admin token
        # A limit is named by a sender or a country, not an id: each account has its own of every name
        # (test_limits: another account's PUT sets its own limit, and it lists only its own).
        and not path.startswith("/v1/limits/")
    }
    assert {(method, path) for method, path, _ in ID_ROUTES} == documented

    with httpx.Client(base_url=accounts.api_url, timeout=30) as http:
        alice, bob = bearer(accounts.alice), bearer(accounts.bob)
        listed = http.post("/v1/lists", json={"name": "alice's"}, headers=alice).json()
        http.post(
            f"/v1/lists/{listed['id']}/recipients", json={"recipients": [{"phone": valid_phone(1)}]}, headers=alice
        )
        campaign = http.post(
            "/v1/campaigns",
            json={"name": "c", "list_id": listed["id"], "sender": "Acme", "template": "Hi", "rate_per_second": 1},
            headers=alice,
        ).json()
        upload = http.post(
            f"/v1/lists/{listed['id']}/uploads", json={"filename": "a.csv", "size_bytes": 10}, headers=alice
        ).json()
        export = http.post(f"/v1/lists/{listed['id']}/exports", headers=alice).json()
        template = http.post("/v1/templates", json={"name": "t", "content": {"text": "Hi"}}, headers=alice).json()
        action = http.post("/v1/actions", json={"name": "a", "url": "https://crm.example/x"}, headers=alice).json()
        brand = http.post("/v1/brands", json={"name": "b", "postal_address": "1 Main St"}, headers=alice).json()
        hook = http.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook"}, headers=alice).json()
        handler = http.post(
            "/v1/reply-handlers",
            json={"name": "h", "condition": {"type": "any"}, "reactions": [{"type": "unsubscribe"}]},
            headers=alice,
        ).json()
        imported = http.post(
            "/v1/suppressions/imports", json={"filename": "s.csv", "size_bytes": 10, "channel": "sms"}, headers=alice
        ).json()
        erasure = http.delete(f"/v1/recipients?destination=%2B{valid_phone(3)[1:]}", headers=alice).json()
        ids = {
            "list_id": listed["id"],
            "campaign_id": campaign["id"],
            "recipient_id": valid_phone(1),
            "upload_id": upload["id"],
            "export_id": export["id"],
            "run_id": campaign["id"],
            "template_id": template["id"],
            "action_id": action["id"],
            "brand_id": brand["id"],
            "webhook_id": hook["webhook"]["id"],
            "handler_id": handler["id"],
            "delivery_id": "000000000000001-evt_000000000000000000000000",
            "erasure_id": erasure["id"],
            "version": 1,
            "import_id": imported["id"],
        }
        made_up = {
            "list_id": "lst_00000000000000000000",
            "campaign_id": "cmp_00000000000000000000",
            "recipient_id": valid_phone(2),
            "upload_id": "upl_00000000000000000000",
            "export_id": "exp_00000000000000000000",
            "run_id": "cmp_00000000000000000000",
            "template_id": "tpl_00000000000000000000",
            "action_id": "act_00000000000000000000",
            "brand_id": "brd_00000000000000000000",
            "webhook_id": "whk_00000000000000000000",
            "handler_id": "hdl_00000000000000000000",
            "delivery_id": "000000000000001-evt_000000000000000000000000",
            "erasure_id": "era_00000000000000000000",
            "version": 1,
            "import_id": "upl_00000000000000000000",
        }
        alices_newest = newest(http, alice)
        for method, path, body in ID_ROUTES:
            problem = assert_problem(http.request(method, path.format(**ids), json=body, headers=bob), 404)
            # The same answer as for an id that exists nowhere: nothing tells Bob that Alice's exists.
            unknown = assert_problem(http.request(method, path.format(**made_up), json=body, headers=bob), 404)
            assert (problem["type"], problem["title"]) == (unknown["type"], unknown["title"]), (method, path)
        # Nothing Bob did changed Alice's things.
        assert http.get(f"/v1/lists/{listed['id']}", headers=alice).json()["recipient_count"] == 1
        assert http.get(f"/v1/lists/{listed['id']}/recipients/{valid_phone(1)}", headers=alice).status_code == 200
        mine = http.get(f"/v1/campaigns/{campaign['id']}", headers=alice).json()
        assert (mine["status"], mine["name"]) == ("draft", "c")
        assert newest(http, alice) == alices_newest  # no clone of hers appeared in her account
        assert http.get(f"/v1/templates/{template['id']}", headers=alice).json()["latest_version"] == 1
        assert http.get(f"/v1/actions/{action['id']}", headers=alice).status_code == 200
        assert http.get(f"/v1/brands/{brand['id']}", headers=alice).status_code == 200
        assert http.get(f"/v1/webhooks/{hook['webhook']['id']}", headers=alice).json()["enabled"] is True
        assert http.get(f"/v1/reply-handlers/{handler['id']}", headers=alice).status_code == 200
        assert http.get(f"/v1/suppressions/imports/{imported['id']}", headers=alice).status_code == 200


# --- what the served stack answers itself ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "content_type", "status"),
    [
        ("POST", "/v1/lists", "text/plain", 415),
        ("PUT", "/v1/lists/lst_x", "application/json", 405),
        ("GET", "/v1/nowhere", "application/json", 404),
        ("GET", "/", "application/json", 404),
    ],
)
def test_chalice_local_answers_framework_errors_as_problem_json(
    accounts: Accounts, method: str, path: str, content_type: str, status: int
) -> None:
    for headers in ({}, bearer(accounts.alice)):
        answer = httpx.request(
            method,
            accounts.api_url + path,
            content=json.dumps({"name": "a"}),
            headers={**headers, "Content-Type": content_type},
            timeout=30,
        )
        assert_problem(answer, status)


def test_a_body_over_5_mb_is_413_on_the_local_stack(accounts: Accounts) -> None:
    with httpx.Client(base_url=accounts.api_url, timeout=60) as http:
        listed = http.post("/v1/lists", json={"name": "big"}, headers=bearer(accounts.alice)).json()
        body = json.dumps({"recipients": [{"phone": valid_phone(n)} for n in range(10)]})
        big = body + " " * (6 * 1024 * 1024 - len(body))
        answer = http.post(
            f"/v1/lists/{listed['id']}/recipients",
            content=big,
            headers={**bearer(accounts.alice), "Content-Type": "application/json"},
        )
        assert_problem(answer, 413)
        assert http.get(f"/v1/lists/{listed['id']}", headers=bearer(accounts.alice)).json()["recipient_count"] == 0
