"""Sender and country limits: set, read, listed and removed through the API, with clear errors; and kept
by dispatch between every campaign of the account that sends through them (decision 25)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from infra.local.fake_provider import FakeProvider
from tests.utils import (
    Api,
    LambdaContext,
    campaign_body,
    never_early,
    receive_all,
    recipient_rows,
    record_send_times,
    run_release_jobs,
    spacing,
    sqs_event,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("atomic_moto")]


def started(tenant: Api, chalice_app: Any, env: dict[str, str], rows: list[dict[str, Any]], **overrides: Any) -> Any:
    listed = tenant.ok("POST", "/v1/lists", {"name": "a"}, status=201)
    tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows})
    campaign = tenant.ok("POST", "/v1/campaigns", campaign_body(listed["id"], **overrides), status=201)
    tenant.ok("POST", f"/v1/campaigns/{campaign['id']}/start")
    assert run_release_jobs(chalice_app, env["RELEASE_QUEUE_URL"]) == 1
    return campaign


def dispatch_at_once(chalice_app: Any, messages: list[dict[str, Any]]) -> None:
    """Each message to its own invocation, all at the same moment (as several dispatch functions would)."""
    workers = [threading.Thread(target=chalice_app.dispatch, args=(sqs_event([m]), LambdaContext())) for m in messages]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def test_limits_are_set_read_listed_and_removed(tenant: Api) -> None:
    sender = tenant.ok("PUT", "/v1/limits/senders/Acme", {"rate_per_second": 5})
    assert (sender["kind"], sender["name"], sender["rate_per_second"]) == ("sender", "Acme", 5)
    tenant.ok("PUT", "/v1/limits/countries/US", {"rate_per_second": 0.5})
    changed = tenant.ok("PUT", "/v1/limits/senders/Acme", {"rate_per_second": 8})
    assert changed["rate_per_second"] == 8
    assert tenant.ok("GET", "/v1/limits/countries/US")["rate_per_second"] == 0.5
    listed = tenant.ok("GET", "/v1/limits")["items"]
    assert sorted((i["kind"], i["name"], i["rate_per_second"]) for i in listed) == [
        ("country", "US", 0.5),
        ("sender", "Acme", 8),
    ]
    assert tenant.call("DELETE", "/v1/limits/senders/Acme").status_code == 204
    assert tenant.call("GET", "/v1/limits/senders/Acme").status_code == 404
    assert tenant.call("DELETE", "/v1/limits/senders/Acme").status_code == 404
    assert [i["name"] for i in tenant.ok("GET", "/v1/limits")["items"]] == ["US"]


def test_a_limit_with_a_bad_rate_or_an_unknown_country_is_refused_naming_the_field(tenant: Api, api: Api) -> None:
    for path, body, field in [
        ("/v1/limits/countries/QQ", {"rate_per_second": 1}, "country"),
        ("/v1/limits/senders/Acme", {"rate_per_second": 0}, "rate_per_second"),
        ("/v1/limits/senders/Acme", {"rate_per_second": 1001}, "rate_per_second"),
        ("/v1/limits/senders/Acme", {}, "rate_per_second"),
    ]:
        answer = tenant.call("PUT", path, body)
        assert answer.status_code == 422, (path, body, answer.body)
        assert json.loads(answer.body)["errors"][0]["field"] == field
    assert tenant.ok("GET", "/v1/limits")["items"] == []
    # Another account's limits are its own.
    tenant.ok("PUT", "/v1/limits/senders/Acme", {"rate_per_second": 1})
    assert api.new_account("other").ok("GET", "/v1/limits")["items"] == []


def test_two_campaigns_from_one_sender_keep_its_limit_between_them(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two 10/s campaigns sending from "Acme" at the same moment, its limit 5/s: the ten sends get places
    0.2 s apart, one after another (2 s in all), where without the limit they would go in half a second."""
    planned = record_send_times(monkeypatch)
    tenant.ok("PUT", "/v1/limits/senders/Acme", {"rate_per_second": 5})
    started(tenant, chalice_app, aws_env, recipient_rows(5), rate_per_second=10)
    started(tenant, chalice_app, aws_env, recipient_rows(5, start=100), rate_per_second=10)
    messages = receive_all(aws_env["DISPATCH_QUEUE_URL"])
    assert len(messages) == 2
    dispatch_at_once(chalice_app, messages)
    assert provider.stats()["accepted"] == 10 and provider.stats()["duplicates"] == 0
    # 5/s at the guarded rate (decision 26): 4.85/s.
    assert len(planned) == 10 and spacing(list(planned.values())) == pytest.approx(1 / 4.85, abs=0.001)
    never_early(planned, provider.messages())


def test_a_country_limit_paces_that_country_s_recipients_and_no_other(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    planned = record_send_times(monkeypatch)
    tenant.ok("PUT", "/v1/limits/countries/GB", {"rate_per_second": 2})
    british = [{"phone": f"+4474001234{n:02d}", "params": {"first_name": "B"}} for n in range(4)]
    started(tenant, chalice_app, aws_env, recipient_rows(4) + british, rate_per_second=20)
    dispatch_at_once(chalice_app, receive_all(aws_env["DISPATCH_QUEUE_URL"]))
    assert provider.stats()["accepted"] == 8
    gb = [at for rid, at in planned.items() if rid.startswith("+44")]
    us = [at for rid, at in planned.items() if rid.startswith("+1")]
    assert len(gb) == len(us) == 4
    assert spacing(gb) == pytest.approx(1 / 1.94, abs=0.001)  # 2/s, guarded
    # At their places in the campaign's span (8 sends at 19.4/s: within 0.37 s), not held back by the British.
    assert max(us) - min(us) <= 7 / 19.4 + 0.001
    never_early(planned, provider.messages())


def test_a_chunk_whose_limit_is_taken_far_ahead_is_queued_again_with_its_send_times(
    tenant: Api, aws_env: dict[str, str], chalice_app: Any, provider: FakeProvider
) -> None:
    from chalicelib.store import accounts, aws, limits

    tenant.ok("PUT", "/v1/limits/senders/Acme", {"rate_per_second": 1})
    account = str(accounts.account_for_api_key(str(tenant.api_key)))
    now = time.time()
    assert limits.take_span(account, "sender", "Acme", count=20, rate=1, earliest=now) == pytest.approx(now)
    started(tenant, chalice_app, aws_env, recipient_rows(3), rate_per_second=10)
    [message] = receive_all(aws_env["DISPATCH_QUEUE_URL"])
    assert chalice_app.dispatch(sqs_event([message]), LambdaContext()) == {"batchItemFailures": []}
    assert provider.stats()["accepted"] == 0
    attributes = aws.sqs().get_queue_attributes(
        QueueUrl=aws_env["DISPATCH_QUEUE_URL"], AttributeNames=["ApproximateNumberOfMessagesDelayed"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
    # Its three places on the sender's ledger are taken once: 20, 21 and 22 s from now.
    ledger = limits.get_limit(account, "sender", "Acme")
    assert float(ledger["next_at"]) == pytest.approx(now + 23, abs=0.5)
    assert "purge_at" not in ledger  # a limit is never removed by the ledger's TTL
