"""`make bench-receipts`: delivery receipts through the API's signed status webhook on the local stack
(chalice local, moto's server), as a ratio to a floor measured in the same run: the same local AWS doing
only what a receipt cannot do without (the replay guard's PutItem and the delivery's UpdateItem), at the
same concurrency. Also checks that the campaign counts every receipt once: `delivered` equals the receipts
posted, then nothing changes when every one is posted again (each re-signed: a provider's retry).

Writes its section of docs/benchmarks.md (between the `receipts-bench` markers), leaving the rest as is.
"""

from __future__ import annotations

import asyncio
import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import typer

from bench.report import machine, write_marked_section
from infra.local.client import CampaignApi, generated_recipients
from infra.local.fake_voice import sign
from infra.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- receipts-bench:begin -->", "<!-- receipts-bench:end -->"
COMMAND = "make bench-receipts  # python -m bench.receipts_bench"
CONCURRENCY = 4  # receipts posted at once: the fake provider's status lanes (chalice local's listen backlog is 5)

cli = typer.Typer(add_completion=False)


def _campaign(stack: LocalStack, recipients: int) -> tuple[CampaignApi, str]:
    api = CampaignApi.for_new_account(stack.api_url, stack.admin_token, name="receipts")
    listed = api.create_list("receipts")
    api.add_recipients(listed["id"], generated_recipients(recipients))
    body = {"name": "receipts", "list_id": listed["id"], "sender": "Acme", "template": "Hi {{ first_name }}"}
    campaign = api.create_campaign({**body, "rate_per_second": 200})
    api.act(campaign["id"], "start")
    deadline = time.monotonic() + 600
    while api.campaign(campaign["id"])["status"] != "completed" and time.monotonic() < deadline:
        time.sleep(1)
    return api, str(campaign["id"])


def _post_all(url: str, bodies: list[bytes], secret: str) -> float:
    """Seconds to post every body, CONCURRENCY at once, each signed when sent; raises on a non-200."""

    async def run() -> float:
        pending = list(reversed(bodies))
        async with httpx.AsyncClient(
            timeout=60, limits=httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=0)
        ) as client:

            async def worker() -> None:
                while pending:
                    body = pending.pop()
                    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {sign(body, secret)}"}
                    answer = await client.post(url, content=body, headers=headers)
                    if answer.status_code != 200:
                        raise RuntimeError(f"receipt refused: {answer.status_code} {answer.text}")

            started = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            return time.monotonic() - started

    return asyncio.run(run())


def _floor(stack: LocalStack, count: int) -> float:
    """Seconds the same local AWS takes for a receipt's unavoidable writes, `count` times, as concurrent."""
    dynamodb = boto3.client("dynamodb", endpoint_url=stack.aws_endpoint_url, region_name="us-east-1")
    table = stack.resource_env["MAIN_TABLE"]

    def one(i: int) -> None:
        dynamodb.put_item(TableName=table, Item={"pk": {"S": f"FLOOR#{i}"}, "sk": {"S": "-"}})
        dynamodb.update_item(
            TableName=table,
            Key={"pk": {"S": f"FLOOR#{i}"}, "sk": {"S": "-"}},
            UpdateExpression="SET receipt = :r",
            ExpressionAttributeValues={":r": {"S": "delivered"}},
        )

    started = time.monotonic()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, range(count)))
    return time.monotonic() - started


def run(recipients: int) -> dict[str, Any]:
    with LocalStack(provider_rate_limit=0, provider_transient_failure_rate=0, seed=13) as stack:
        api, campaign_id = _campaign(stack, recipients)
        messages = httpx.get(f"{stack.provider_url}/_fake/messages", timeout=60).json()["messages"]
        bodies = [
            json.dumps(
                {
                    "message_uuid": m["message_uuid"],
                    "to": m["to"],
                    "from": m["from"],
                    "timestamp": datetime.now(UTC).isoformat(),
                    "status": "delivered",
                    "channel": "sms",
                    "client_ref": m["client_ref"],
                }
            ).encode()
            for m in messages
        ]
        url = f"{stack.api_url}/v1/webhooks/vonage/status"
        floor_seconds = _floor(stack, len(bodies))
        seconds = _post_all(url, bodies, stack._signature_secret)
        counted = _settled(api, campaign_id, len(bodies))
        _post_all(url, bodies, stack._signature_secret)  # every one again, as a provider's retries
        again = _settled(api, campaign_id, len(bodies), settle=5)
        api.close()
    return {
        "receipts": len(bodies),
        "seconds": seconds,
        "floor_seconds": floor_seconds,
        "delivered": counted["delivered"],
        "delivered_after_repeats": again["delivered"],
        "succeeded": counted["succeeded"],
    }


def _settled(api: CampaignApi, campaign_id: str, expected: int, settle: float = 0.0) -> dict[str, Any]:
    """The counters once `delivered` reached `expected` (the stream applies them; 60 s at most), read again
    `settle` seconds later (what a second round of receipts could still add shows by then)."""
    deadline = time.monotonic() + 60
    while api.campaign(campaign_id)["counters"]["delivered"] < expected and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(settle)
    counters: dict[str, Any] = api.campaign(campaign_id)["counters"]
    return counters


def section(result: dict[str, Any]) -> str:
    rate = result["receipts"] / result["seconds"]
    floor = result["receipts"] / result["floor_seconds"]
    exact = result["delivered"] == result["delivered_after_repeats"] == result["receipts"]
    return f"""{BEGIN}
## Delivery receipts through the signed webhook

Command: `{COMMAND}`. Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}. A campaign of
{result["receipts"]:,} SMS sent on the local stack, then a `delivered` receipt for each posted to
`POST /v1/webhooks/vonage/status` (signed as Vonage signs them, {CONCURRENCY} at once) through chalice local
to moto's server. The floor: the same moto doing a receipt's two unavoidable writes (the replay guard's
PutItem, the delivery's UpdateItem) from {CONCURRENCY} threads, in the same run.

| measure | value |
|---|---:|
| receipts/s through the webhook | {rate:.0f} |
| floor: the two writes per receipt, /s | {floor:.0f} |
| ratio to the floor | {rate / floor:.2f} |
| counted `delivered` | {result["delivered"]:,} of {result["receipts"]:,} |
| `delivered` after every receipt posted again (re-signed) | {result["delivered_after_repeats"]:,} |
| exact | {"yes" if exact else "NO"} |

Per receipt the API verifies the signature (HS256, `payload_hash`), puts the `jti` (replay guard), reads the
campaign's owner and bucket count once per process, and makes one conditional UpdateItem; the counters come
from the deliveries stream. The gap to the floor is chalice local's (a thread and a parse per request, and
a listen backlog of 5, which is why {CONCURRENCY} at once and not more) and the signature check; in AWS,
API Gateway and Lambda scale the webhook out.
{END}"""


@cli.command()
def main(
    recipients: int = typer.Option(1000, help="Messages sent, then receipts posted."),
    output: Path = typer.Option(OUTPUT, help="The benchmarks page to update."),
) -> None:
    result = run(recipients)
    typer.echo(json.dumps(result, indent=2))
    write_marked_section(output, BEGIN, END, section(result))
    typer.echo(f"wrote {output}")


if __name__ == "__main__":
    cli()
