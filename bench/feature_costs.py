"""What each campaign feature costs in AWS requests: DynamoDB write units (base tables and indexes) and
requests per recipient, for a plain campaign and for one where every recipient takes a retry, a failover,
or a frequency cap.

The real handlers run in this process against moto's in-process AWS, round by round as the event source
mappings would (the fault suite's harness), with the fake provider scripted per number. Counts, not times:
they do not depend on the machine. The list upload is not counted (it is the same for every case).

    python -m bench.feature_costs        # make bench-costs; updates docs/benchmarks.md
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from bench.aws_calls import AwsCallCounter
from bench.report import machine, write_marked_section

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
BEGIN, END = "<!-- feature-costs:begin -->", "<!-- feature-costs:end -->"
PRODUCT = "product"
cli = typer.Typer(add_completion=False)


@dataclass
class Case:
    name: str
    what: str  # what every recipient goes through
    write_units: float  # per recipient
    index_units: float  # per recipient, of the write units
    requests: float  # DynamoDB and SQS requests per recipient
    states: dict[str, int]
    keys_read: float = 0.0  # keys asked in BatchGetItem per recipient (the suppression check, decision 40)


@contextmanager
def _local_aws() -> Iterator[tuple[Any, Any, Any]]:
    """moto in-process with the template's resources, the API's test client, the fake provider."""
    from chalice.test import Client
    from moto import mock_aws

    from chalicelib.settings import get_settings
    from chalicelib.store import aws
    from infra.local.fake_provider import FakeProvider
    from infra.local.resources import create_resources
    from tests.utils import ADMIN_TOKEN, Api

    saved = dict(os.environ)
    with FakeProvider() as provider:
        os.environ.update(
            {
                "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_REGION": "us-east-1",
                "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
                "ADMIN_TOKEN": ADMIN_TOKEN,
                "PAGE_TOKEN_SECRET": "bench-secret",
                "VONAGE_BASE_URL": provider.base_url,
                "VONAGE_API_KEY": "key",
                "VONAGE_API_SECRET": "secret",
                "PROVIDER_TIMEOUT_SECONDS": "1",
                "STATUS_RECHECK_SECONDS": "0.2",
                "LINKS_BASE_URL": "https://go.acme.example",  # where tracked links lead (decision 43)
            }
        )
        os.environ.pop("AWS_ENDPOINT_URL", None)
        try:
            with mock_aws():
                os.environ.update(create_resources(prefix="costs"))
                aws.reset_clients()
                get_settings.cache_clear()
                import app

                with Client(app.app, stage_name="local") as client:
                    yield Api(client), app, provider
        finally:
            aws.reset_clients()
            os.environ.clear()
            os.environ.update(saved)
            get_settings.cache_clear()


def _phone(n: int) -> str:
    from infra.local.client import valid_phone

    return valid_phone(n)


def _measure(
    name: str,
    what: str,
    recipients: int,
    *,
    rows: Callable[[int], list[dict[str, Any]]],
    campaign: dict[str, Any],
    script: Callable[[int], dict[str, list[int]]] | None = None,
    before: Callable[[Any, str], None] | None = None,
    events: bool = False,
) -> Case:
    from tests.faults.harness import Harness

    counter = AwsCallCounter()
    with counter.counting_new_clients(PRODUCT), _local_aws() as (api, app, provider):
        tenant = api.new_account("costs")
        harness = Harness(tenant, dict(os.environ), app, provider)
        harness.with_events = events  # the events consumer of the stream, beside the counters
        counter.attach("event sources", harness.sqs, harness.streams)  # the harness plays Lambda's pollers
        listed = tenant.ok("POST", "/v1/lists", {"name": name}, status=201)
        tenant.ok("POST", f"/v1/lists/{listed['id']}/recipients", {"recipients": rows(recipients)})
        if before is not None:
            before(harness, listed["id"])
        if script is not None:
            provider.configure(scripted_by_number=script(recipients))
        body = {"name": name, "list_id": listed["id"], "sender": "Acme", "template": "Hi {{ first_name }}", **campaign}
        created = tenant.ok("POST", "/v1/campaigns", {"rate_per_second": 200, **body}, status=201)
        earlier = counter.snapshot()
        tenant.ok("POST", f"/v1/campaigns/{created['id']}/start")
        final = harness.run(created["id"], rounds=600)
        counts = counter.since(earlier)
    if final["status"] != "completed":
        raise SystemExit(f"{name}: the campaign did not complete: {final}")
    states = {k: v for k, v in final["counters"].items() if isinstance(v, int) and v and k != "total"}
    dynamodb_and_sqs = sum(
        v for (who, service, _), v in counts.calls.items() if who == PRODUCT and service in ("dynamodb", "sqs")
    )
    index = sum(counts.index_units.values())
    return Case(
        name,
        what,
        counts.write_unit_total(PRODUCT) / recipients,
        index / recipients,
        dynamodb_and_sqs / recipients,
        states,
        counts.batch_get_keys[PRODUCT] / recipients,
    )


def _plain_rows(count: int) -> list[dict[str, Any]]:
    return [{"phone": _phone(n), "params": {"first_name": f"R{n}"}} for n in range(count)]


def _two_phones(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"r{n}",
            "destinations": [
                {"type": "phone", "address": _phone(n)},
                {"type": "phone", "address": _phone(count + n)},
            ],
            "attributes": {"first_name": f"R{n}"},
        }
        for n in range(count)
    ]


def _digits(n: int) -> str:
    return _phone(n).removeprefix("+")


RETRY = {"max_attempts": 3, "initial_delay_seconds": 1, "backoff_multiplier": 1, "max_delay_seconds": 1}


def _send_once_before(harness: Any, list_id: str) -> None:
    """Another capped campaign sends to the same numbers first, so this one finds every cap taken."""
    tenant = harness.tenant
    body = {"name": "first", "list_id": list_id, "sender": "Acme", "template": "Hi", "rate_per_second": 200}
    first = tenant.ok(
        "POST", "/v1/campaigns", {**body, "frequency_cap": {"max_messages": 1, "period_days": 1}}, status=201
    )
    tenant.ok("POST", f"/v1/campaigns/{first['id']}/start")
    harness.run(first["id"], rounds=600)


def _limits_set(harness: Any, list_id: str) -> None:
    """A sender limit and a country limit over every send of the case, fast enough not to slow it."""
    harness.tenant.ok("PUT", "/v1/limits/senders/Acme", {"rate_per_second": 1000})
    harness.tenant.ok("PUT", "/v1/limits/countries/US", {"rate_per_second": 1000})


def _suppress_half(harness: Any, recipients: int) -> None:
    """Every other recipient replied STOP before the campaign (suppressed for SMS through the API)."""
    for n in range(0, recipients, 2):
        harness.tenant.ok("POST", "/v1/suppressions", {"destination": _phone(n), "channel": "sms"}, status=201)


NUMBER = "+14155550100"


def _number_registered(harness: Any, list_id: str) -> None:
    """The campaign's sender is a number the account registered (replies to it are the account's)."""
    harness.tenant.ok("POST", "/v1/numbers", {"number": NUMBER, "help_text": "Acme: reply STOP to stop"}, status=201)


def run_cases(recipients: int) -> list[Case]:
    return [
        _measure("plain", "sent once, no retry policy", recipients, rows=_plain_rows, campaign={}),
        _measure(
            "plain, retries on",
            "sent once; a retry policy that is not needed",
            recipients,
            rows=_plain_rows,
            campaign={"retry_policy": RETRY},
        ),
        _measure(
            "one retry",
            "a 503, then accepted on the same number",
            recipients,
            rows=_plain_rows,
            campaign={"retry_policy": RETRY},
            script=lambda n: {_digits(i): [503] for i in range(n)},
        ),
        _measure(
            "one failover",
            "refused (400) on the first number, accepted on the second",
            recipients,
            rows=_two_phones,
            campaign={"retry_policy": RETRY},
            script=lambda n: {_digits(i): [400] for i in range(n)},
        ),
        _measure(
            "capped, sent",
            "a frequency cap with room: the cap is taken, then sent",
            recipients,
            rows=_plain_rows,
            campaign={"frequency_cap": {"max_messages": 1, "period_days": 1}},
        ),
        _measure(
            "capped, skipped",
            "a frequency cap already used up by another campaign: skipped as capped",
            recipients,
            rows=_plain_rows,
            campaign={"frequency_cap": {"max_messages": 1, "period_days": 1}},
            before=_send_once_before,
        ),
        _measure(
            "sender + country limit",
            "the account limits its sender and the recipients' country: a span of each limit's ledger per chunk",
            recipients,
            rows=_plain_rows,
            campaign={},
            before=_limits_set,
        ),
        _measure(
            "concurrency limit",
            "at most 5 attempts under way (max_concurrent): slots taken and given back per dispatch invocation",
            recipients,
            rows=_plain_rows,
            campaign={"max_concurrent": 5},
        ),
        _measure(
            "half opted out",
            "every other recipient suppressed (a STOP): skipped as opted_out, never claimed",
            recipients,
            rows=_plain_rows,
            campaign={},
            before=lambda harness, _: _suppress_half(harness, recipients),
        ),
        _measure(
            "event log on",
            "the events consumer of the stream too: the log in S3, webhooks (none set), the timeline",
            recipients,
            rows=_plain_rows,
            campaign={},
            events=True,
        ),
        _measure(
            "from a registered number",
            "event log on, sent from a number the account registered: who was sent what is noted for replies",
            recipients,
            rows=_plain_rows,
            campaign={"sender": NUMBER},
            before=_number_registered,
            events=True,
        ),
        _measure(
            "tracked link",
            "the text tracks a link (the track filter): its catalog item once per process, the token in memory",
            recipients,
            rows=_plain_rows,
            campaign={"template": 'Hi {{ first_name }}, {{ "https://acme.example/sale" | track }}'},
        ),
    ]


def section(cases: list[Case], recipients: int, command: str) -> str:
    base = cases[0].write_units
    rows = "\n".join(
        f"| {c.name} | {c.what} | {c.write_units:.3f} | {c.index_units:.3f} | {c.write_units - base:+.3f} | "
        f"{c.requests:.2f} | {c.keys_read:.2f} | {', '.join(f'{k} {v}' for k, v in c.states.items())} |"
        for c in cases
    )
    return f"""{BEGIN}
## What each feature costs (AWS requests per recipient)

    {command}

run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}: {recipients} recipients per case, the real handlers on
moto in-process, driven round by round (tests/faults/harness.py); the list upload is not counted. Write units
are DynamoDB's (an item under 1 KB is one; an index entry added or removed is one more), requests the
product's own to DynamoDB and SQS (not the event source mappings' polls). Each recipient of a case goes
through the same thing.

| case | every recipient | write units | of which indexes | vs plain | requests | keys read | final counters |
|---|---|---:|---:|---:|---:|---:|---|
{rows}

Read with the requests by operation (the bench's counter): a plain send is the claim (PutItem) and the
outcome (UpdateItem); the campaign's own writes (start, release progress, counters from the stream) are
the rest, shared by its recipients. A retry adds three UpdateItems on the delivery (the write that closes
the failed attempt as queued, the release's lease on it, the second claim) and three `due` index entries
(added, moved by the lease, removed by the claim); a failover is a retry on the next destination and costs
the same. A cap with room adds a GetItem and a conditional PutItem of the destination's cap item; a cap
used up by another campaign is the GetItem and the skipped delivery, no send and no outcome write. Limits
add one UpdateItem per chunk on each limit's ledger and one Query of the account's limits per campaign
per dispatch invocation (decision 25). A concurrency limit adds, per dispatch invocation, a Query of the
campaign's held slots and a conditional PutItem for each slot its sends take, and a DeleteItem for each
when it ends (decision 28): per invocation, not per recipient. Keys read are the keys asked in BatchGetItem
(strongly consistent: a read unit each): the suppression check asks one key per recipient (its number in the
SMS scope) in one request per chunk, read again only for a chunk still sending a second later (decision 40);
an opted-out recipient costs that read and the skipped delivery's PutItem. The event log's consumer writes the
log to S3 (not counted here) and one timeline item per campaign minute (decision 41); a campaign sent from a
registered number adds the conversation items, one per recipient in BatchWriteItems of 25 (decision 45); a
tracked link, its catalog item once per process (decision 43). Add
one write unit per recipient for the list upload.
{END}"""


@cli.command()
def main(
    recipients: int = typer.Option(200, help="Recipients per case."),
    output: Path = typer.Option(OUTPUT, help="The benchmarks page to update."),
) -> None:
    cases = run_cases(recipients)
    for case in cases:
        typer.echo(f"{case.name:18s} {case.write_units:6.3f} WU ({case.index_units:.3f} index) "
                   f"{case.requests:5.2f} requests  {case.states}")  # fmt: skip
    write_marked_section(output, BEGIN, END, section(cases, recipients, "python -m bench.feature_costs"))
    typer.echo(f"wrote {output}")


if __name__ == "__main__":
    cli()
