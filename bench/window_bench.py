"""`make bench-window`: what the release reads when most of a list is outside its send window.

A list of recipients spread evenly over four US time zones (New York, Chicago, Denver, Los Angeles, by
their numbers' area codes) gets a marketing campaign (08:00-21:00 local). The release runs with a
simulated clock from 13:05 UTC, when only New York is open, then once an hour as the other zones open,
with idle ticks between. Counted: every DynamoDB item and read unit the release reads, per recipient it
releases (issue 8's target: at most 1.2 reads per released recipient).

The real release code runs in this process against the project's local moto server. Its chunks are counted, not queued
(nothing is sent; dispatch is not part of this measure), and the backlog bound is lifted, since no chunk is
ever claimed here.

    python -m bench.window_bench --recipients 1000000     # make bench-window; updates docs/benchmarks.md
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer

from bench.report import machine, write_marked_section

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
BEGIN, END = "<!-- window-bench:begin -->", "<!-- window-bench:end -->"
COMMAND = "make bench-window  # python -m bench.window_bench --recipients 1000000"
ZONES = (("New York", "212"), ("Chicago", "312"), ("Denver", "303"), ("Los Angeles", "213"))
cli = typer.Typer(add_completion=False)


def phone(zone: int, n: int) -> str:
    """A distinct valid number of the zone's area code for each n below 7,000,000 (exchanges 300-999)."""
    exchange, line = divmod(n, 10_000)
    return f"+1{ZONES[zone][1]}{300 + exchange}{line:04d}"


@dataclass
class Reads:
    """DynamoDB reads made through one client: items and read units (strongly consistent, rounded up per
    request as DynamoDB does: 4 KB per unit over the request's items)."""

    items: int = 0
    units: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)

    def attach(self, client: Any) -> None:
        client.meta.events.register("after-call.dynamodb.*", self._after)

    def _after(self, http_response: Any, parsed: dict[str, Any], model: Any, **_: Any) -> None:
        name = model.name
        if name in ("GetItem", "Query", "Scan", "BatchGetItem"):
            self.requests[name] += 1
            if name == "GetItem":
                found = [parsed["Item"]] if "Item" in parsed else []
            elif name == "BatchGetItem":
                found = [item for items in parsed.get("Responses", {}).values() for item in items]
            else:
                found = parsed.get("Items", [])
            self.items += len(found)
            size = sum(len(json.dumps(item, separators=(",", ":"))) for item in found)
            self.units += max(1, math.ceil(size / 4096))

    def snapshot(self) -> tuple[int, float, int]:
        return self.items, self.units, sum(self.requests.values())


@dataclass
class Phase:
    label: str
    released: int
    items: int
    units: float
    requests: int


@contextmanager
def _moto_server() -> Iterator[Any]:
    """The project's local moto server (infra/local/moto_server.py: its Query pages a partition without
    sorting all of it, unlike moto in-process) with the template's resources; the API's test client."""
    from chalice.test import Client

    from bench.floor import _local_aws_environment
    from chalicelib.settings import get_settings
    from chalicelib.store import aws
    from infra.local.resources import create_resources
    from infra.local.stack import HOST, free_port, start_moto
    from tests.utils import ADMIN_TOKEN, Api

    saved = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="bench-window-") as log_dir, _local_aws_environment():
        port = free_port()
        moto = start_moto(Path(log_dir), port)
        endpoint = f"http://{HOST}:{port}"
        try:
            os.environ.update({"AWS_ENDPOINT_URL": endpoint, "ADMIN_TOKEN": ADMIN_TOKEN, "PAGE_TOKEN_SECRET": "bench"})
            os.environ.update(create_resources(prefix="window", endpoint_url=endpoint))
            aws.reset_clients()
            get_settings.cache_clear()
            import app

            with Client(app.app, stage_name="local") as client:
                yield Api(client)
        finally:
            moto.stop()
            aws.reset_clients()
            os.environ.clear()
            os.environ.update(saved)
            get_settings.cache_clear()


def run(recipients: int) -> tuple[list[Phase], dict[str, Any]]:
    from chalicelib.domain.recipients import Recipient
    from chalicelib.operations import pacer
    from chalicelib.settings import get_settings
    from chalicelib.store import accounts, aws, campaigns, keys, lists

    chunks: list[int] = []
    with _moto_server() as api:
        tenant = api.new_account("window bench")
        listed = tenant.ok("POST", "/v1/lists", {"name": "four zones"}, status=201)
        account_id = str(accounts.account_for_api_key(str(tenant.api_key)))
        started = time.monotonic()
        batch: list[Recipient] = []
        for n in range(recipients):
            zone, index = n % 4, n // 4
            batch.append(
                Recipient.from_dict({"id": f"r{n}", "destinations": [{"type": "phone", "address": phone(zone, index)}]})
            )
            if len(batch) == 10_000 or n == recipients - 1:
                lists.put_recipients_in_batches(account_id, listed["id"], batch, run="bench", start=n - len(batch) + 1)
                batch = []
        upload_seconds = time.monotonic() - started
        body = {"name": "window", "list_id": listed["id"], "sender": "Acme", "template": "Hi", "category": "marketing"}
        created = tenant.ok("POST", "/v1/campaigns", {**body, "rate_per_second": 1000}, status=201)
        tenant.ok("POST", f"/v1/campaigns/{created['id']}/start")
        pk = keys.campaign_pk(account_id, created["id"])

        def count_chunks(messages: list[tuple[str, int]]) -> None:
            chunks.extend(len(json.loads(encoded)["recipients"]) for encoded, _ in messages)

        pacer.queue.send_chunks_encoded = count_chunks
        settings = get_settings()
        settings.release_backlog_seconds = 10.0**9
        reads = Reads()
        reads.attach(aws.dynamodb())

        horizon = max(60.0, recipients / 900)  # one tick's plan covers the whole list
        day = datetime.now(UTC).date() + timedelta(days=1)
        phases: list[Phase] = []
        clock = datetime(day.year, day.month, day.day, 13, 5, tzinfo=UTC).timestamp()
        for label in (
            "13:05 UTC: New York open",
            "14:05: Chicago opens",
            "15:05: Denver opens",
            "16:05: Los Angeles opens",
        ):
            before, released_before = reads.snapshot(), sum(chunks)
            for tick in range(50):  # a tick a minute to :54: the first releases the zone just opened, the rest idle
                pacer.release_campaign(pk, now=clock + 60 * tick, horizon_seconds=horizon)
            after = reads.snapshot()
            phases.append(
                Phase(
                    label,
                    sum(chunks) - released_before,
                    after[0] - before[0],
                    after[1] - before[1],
                    after[2] - before[2],
                )
            )
            clock += 3600
        campaign = campaigns.get_campaign_by_pk(pk) or {}
    return phases, {"upload_seconds": upload_seconds, "campaign": campaign, "recipients": recipients}


def section(phases: list[Phase], info: dict[str, Any]) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    released = sum(p.released for p in phases)
    items = sum(p.items for p in phases)
    units = sum(p.units for p in phases)
    requests = sum(p.requests for p in phases)
    rows = "\n".join(
        f"| {p.label} | {p.released:,} | {p.items:,} | {p.units:,.0f} | {p.requests:,} | "
        f"{p.items / p.released if p.released else 0:.3f} |"
        for p in phases
    )
    per_released = items / released if released else 0.0
    ok = "met" if released and per_released <= 1.2 else "NOT met"
    campaign = info["campaign"]
    return f"""{BEGIN}
## Send windows: what the release reads for a list mostly outside its window

Command: `{COMMAND}`. Run {when} on {machine()}: {info["recipients"]:,} recipients, a quarter in each of
four US zones (New York, Chicago, Denver, Los Angeles), a marketing campaign (08:00-21:00 local) at
1,000/s. The release runs in the bench's process against the local moto server, with a simulated clock:
50 ticks a minute apart from 13:05 UTC (New York open, the three others closed), then the same from each
hour as the next zone opens. Its chunks are counted, not sent (decision 27).

| phase | released | items read | read units | read requests | items read per released |
|---|---:|---:|---:|---:|---:|
{rows}
| **all** | **{released:,}** | **{items:,}** | **{units:,.0f}** | **{requests:,}** | **{per_released:.3f}** |

Target (issue 8): at most 1.2 reads per released recipient: **{ok}**. Read units per released recipient:
{units / released if released else 0:.4f} (strongly consistent; a list Query returns about 40 recipients per
4 KB unit, a window group 500 recipients in one item). Final counters: total {campaign.get("total")},
released {campaign.get("released")}, windowed {campaign.get("windowed", 0)}. List written in
{info["upload_seconds"]:.0f} s (BatchWriteItem, not counted).
{END}"""


@cli.command()
def main(
    recipients: int = typer.Option(1_000_000, help="Recipients in the list (a multiple of 4)."),
    output: Path = typer.Option(OUTPUT, help="The benchmarks page to update."),
) -> None:
    phases, info = run(recipients)
    for phase in phases:
        typer.echo(phase)
    write_marked_section(output, BEGIN, END, section(phases, info))


if __name__ == "__main__":
    cli()
