"""`make bench-actions`: HTTP actions through the whole local stack against a local HTTP sink, as a ratio
to a plain async httpx client posting the same bodies to the same sink in the same run (the floor: what
the sink and this machine allow without the product).

Writes its section of docs/benchmarks.md (between the `actions-bench` markers), leaving the rest as is.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import typer

from bench.report import machine, write_marked_section
from infra.local.client import CampaignApi, generated_recipients
from infra.local.fake_endpoint import FakeEndpoint
from infra.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- actions-bench:begin -->", "<!-- actions-bench:end -->"
COMMAND = "make bench-actions  # python -m bench.actions_bench"
CONCURRENCY = 50  # the floor's requests under way at once: dispatch's per-invocation concurrency

cli = typer.Typer(add_completion=False)


def body_for(row: dict[str, Any], index: int) -> bytes:
    """What the action renders for a recipient (the floor posts the same bytes)."""
    return json.dumps({"to": row["phone"], "text": f"Hi {row['params']['first_name']}, 20% off today."}).encode()


def floor(endpoint: FakeEndpoint, rows: list[dict[str, Any]]) -> float:
    """Requests per second a plain async httpx client gets from the sink, 50 at once."""

    async def post_all() -> float:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(len(rows)):
            queue.put_nowait(index)
        async with httpx.AsyncClient(limits=httpx.Limits(max_connections=CONCURRENCY)) as client:

            async def worker() -> None:
                while not queue.empty():
                    index = queue.get_nowait()
                    answer = await client.post(
                        f"{endpoint.base_url}/floor/{index}",
                        content=body_for(rows[index], index),
                        headers={"Content-Type": "application/json", "Idempotency-Key": f"floor:{index}"},
                    )
                    answer.raise_for_status()

            started = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            return len(rows) / (time.perf_counter() - started)

    return asyncio.run(post_all())


def through_the_stack(endpoint: FakeEndpoint, rows: list[dict[str, Any]], rate: float) -> dict[str, Any]:
    with LocalStack(provider_rate_limit=0, provider_transient_failure_rate=0) as stack:
        api = CampaignApi.for_new_account(stack.api_url, stack.admin_token, name="actions")
        listed = api.create_list("actions")
        api.add_recipients(listed["id"], rows)
        action = api.call(
            "POST",
            "/v1/actions",
            {
                "name": "CRM",
                "url": endpoint.base_url + "/hooks/{{ id }}",
                "body": '{"to": {{ phone | json }}, "text": {{ message | json }}}',
                "auth": {"type": "bearer", "secret": "bench-token"},
                "timeout_seconds": 10,
            },
        )
        campaign = api.call(
            "POST",
            "/v1/campaigns",
            {
                "name": "actions bench",
                "list_id": listed["id"],
                "channel": "http",
                "action_id": action["id"],
                "sender": "Bench",
                "template": "Hi {{ first_name }}, 20% off today.",
                "rate_per_second": rate,
            },
        )
        before = len(endpoint.requests)
        started = time.monotonic()
        api.call("POST", f"/v1/campaigns/{campaign['id']}/start")
        while True:
            current = api.call("GET", f"/v1/campaigns/{campaign['id']}")
            if current["status"] == "completed" or time.monotonic() - started > 900:
                break
            time.sleep(0.5)
        seconds = time.monotonic() - started
        received = endpoint.requests[before:]
        times = sorted(float(r["at"]) for r in received)
        sending = times[-1] - times[0] if len(times) > 1 else 0.0
        return {
            "seconds": seconds,
            "received": len(received),
            "counters": current["counters"],
            "status": current["status"],
            # While sending: first request at the sink to the last (the release's first tick and the
            # completion's stream lag are in `seconds`, not here).
            "per_second": (len(times) - 1) / sending if sending else 0.0,
        }


def section(recipients: int, rate: float, floor_rate: float, run: dict[str, Any], duplicates: int) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    c = run["counters"]
    return f"""{BEGIN}
## HTTP actions against a local sink

Command: `{COMMAND}`. Run {when} on {machine()}. One sink (`infra/local/fake_endpoint.py`, a threaded
stdlib HTTP server on 127.0.0.1) serves both measurements, one after the other:

| | requests/s |
|---|---:|
| floor: a plain async httpx client, {CONCURRENCY} at once, the same {recipients:,} bodies | {floor_rate:.0f} |
| an `http` campaign at a configured {rate:.0f}/s, first request to last at the sink | {run["per_second"]:.0f} |
| ratio | {run["per_second"] / floor_rate:.2f} |

The campaign took {run["seconds"]:.1f} s from start to `{run["status"]}` (the release's first tick and
the counters' stream included), with succeeded {c["succeeded"]}, failed {c["failed"]}, unknown
{c["unknown"]}; the sink received {run["received"]:,} requests, {duplicates} of them a repeated
`Idempotency-Key`. Each request of the campaign went through the outbound guard (resolve, check, pin),
rendered its URL and body per recipient and carried a bearer secret read from Secrets Manager (moto).
The stack's figure includes everything a campaign does besides the request (release, claims, outcome
writes, counters), which the floor does not: it is the cost of the product around an action.
{END}"""


@cli.command()
def main(
    recipients: int = typer.Option(2000, help="Recipients (and floor requests)."),
    rate: float = typer.Option(1000, help="The campaign's configured rate: high, so throughput is the limit."),
    output: Path = typer.Option(OUTPUT, help="The benchmarks page to update."),
) -> None:
    rows = generated_recipients(recipients)
    with FakeEndpoint() as endpoint:
        floor_rate = floor(endpoint, rows)
        typer.echo(f"floor: {floor_rate:.0f} requests/s")
        run = through_the_stack(endpoint, rows, rate)
        typer.echo(f"stack: {run}")
        duplicates = endpoint.duplicates
    write_marked_section(output, BEGIN, END, section(recipients, rate, floor_rate, run, duplicates))


if __name__ == "__main__":
    cli()
