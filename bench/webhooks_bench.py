"""`make bench-webhooks`: webhook deliveries to a local sink through the real worker (SQS on moto
in-process, the endpoint read, signed per Standard Webhooks, the outbound guard, the delivery log), as a
ratio to a plain async httpx client posting the same signed bodies to the same sink, at the same
concurrency, in the same run. Every request the sink got is verified with the `standardwebhooks`
reference verifier, and each event must arrive exactly once.

Writes its section of docs/benchmarks.md (between the `webhooks-bench` markers), leaving the rest as is.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import httpx
import typer
from standardwebhooks.webhooks import Webhook

from bench.aws_calls import AwsCallCounter
from bench.feature_costs import PRODUCT, _local_aws
from bench.report import machine, write_marked_section
from infra.local.fake_endpoint import FakeEndpoint

OUTPUT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
BEGIN, END = "<!-- webhooks-bench:begin -->", "<!-- webhooks-bench:end -->"
COMMAND = "make bench-webhooks  # python -m bench.webhooks_bench"
CONCURRENCY = 5  # the webhooks function's reserved concurrency (.chalice/config.json, dev)

cli = typer.Typer(add_completion=False)


def _events(account: str, count: int) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {
            "id": f"evt_bench{i:019d}",
            "type": "delivery.succeeded",
            "occurred_at": now,
            "account": account,
            "campaign_id": "cmp_bench00000000000000",
            "recipient_id": f"+1415555{i:04d}",
            "data": {"state": "succeeded", "attempt": 1, "destination": f"+1415555{i:04d}"},
        }
        for i in range(count)
    ]


def _floor(url: str, bodies: list[tuple[dict[str, str], bytes]]) -> float:
    async def run() -> float:
        pending = list(reversed(bodies))
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=CONCURRENCY)) as client:

            async def worker() -> None:
                while pending:
                    headers, body = pending.pop()
                    (await client.post(url, content=body, headers=headers)).raise_for_status()

            started = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            return time.monotonic() - started

    return asyncio.run(run())


def _aws_floor(count: int) -> float:
    """Seconds the same moto takes for the AWS calls a delivery cannot do without, `count` times, drained as
    the worker is (one poller, CONCURRENCY invocations): ReceiveMessage per 10, then per message GetItem (the
    endpoint), PutItem (the log) and DeleteMessage. No HTTP, no signing."""
    import boto3

    dynamodb = boto3.client("dynamodb", region_name="us-east-1")
    sqs = boto3.client("sqs", region_name="us-east-1")
    table = os.environ["MAIN_TABLE"]
    url = sqs.create_queue(QueueName="bench-floor", Attributes={"VisibilityTimeout": "720"})["QueueUrl"]
    for start in range(0, count, 10):
        entries = [{"Id": str(i), "MessageBody": json.dumps({"i": i})} for i in range(start, min(count, start + 10))]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)

    def invoke(batch: list[dict[str, Any]]) -> None:
        for message in batch:
            dynamodb.get_item(TableName=table, Key={"pk": {"S": "FLOOR"}, "sk": {"S": "-"}})
            dynamodb.put_item(TableName=table, Item={"pk": {"S": "FLOOR#LOG"}, "sk": {"S": message["MessageId"]}})
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    started = time.monotonic()
    _drain(lambda: sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []), invoke)
    return time.monotonic() - started


def _drain(receive: Any, invoke: Any) -> None:
    """One poller handing batches to up to CONCURRENCY invocations at once, as Lambda's SQS poller does
    (concurrent ReceiveMessage calls on moto in-process can hand one message to two receivers)."""
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        running: list[Any] = []
        while True:
            got = receive()
            if not got:
                if not running:
                    return
                running.pop(0).result()
                continue
            running.append(pool.submit(invoke, got))
            while len(running) >= CONCURRENCY:
                running.pop(0).result()


def run(count: int) -> dict[str, Any]:
    from chalicelib.operations import webhooks
    from tests.utils import ADMIN_TOKEN, Api, sqs_event

    os.environ.update({"OUTBOUND_ALLOW_HTTP": "true", "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1"})
    counter = AwsCallCounter()
    with FakeEndpoint() as sink, counter.counting_new_clients(PRODUCT), _local_aws() as (api, app, _):
        from chalicelib.settings import get_settings

        get_settings.cache_clear()
        created_account = api.ok("POST", "/v1/accounts", {"name": "hooks"}, status=201, key=ADMIN_TOKEN)
        account, tenant = created_account["id"], Api(api.client, created_account["api_key"])
        created = tenant.ok("POST", "/v1/webhooks", {"url": f"{sink.base_url}/hook"}, status=201)
        webhooks.enqueue(account, _events(account, count))
        url = get_settings().webhook_queue_url
        client = boto3.client("sqs", region_name="us-east-1")
        earlier = counter.snapshot()

        def invoke(batch: list[dict[str, Any]]) -> None:
            app.webhooks(sqs_event(batch), None)
            for message in batch:
                client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

        started = time.monotonic()
        _drain(lambda: client.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []), invoke)
        seconds = time.monotonic() - started
        counts = counter.since(earlier)
        requests = list(sink.requests)
        verifier = Webhook(created["secret"])
        bodies = []
        for request in requests:
            headers = {k.lower(): v for k, v in request["headers"].items()}
            verifier.verify(request["body"], headers)
            bodies.append(({k: v for k, v in headers.items() if k.startswith("webhook-") or k == "content-type"},
                           request["body"].encode()))  # fmt: skip
        ids = Counter(headers["webhook-id"] for headers, _ in bodies)
        floor_seconds = _floor(f"{sink.base_url}/hook", bodies)
        aws_floor_seconds = _aws_floor(len(bodies))
    aws_requests = sum(v for (who, _, _), v in counts.calls.items() if who == PRODUCT)
    return {
        "deliveries": len(requests),
        "unique_events": len(ids),
        "seconds": seconds,
        "floor_seconds": floor_seconds,
        "aws_floor_seconds": aws_floor_seconds,
        "aws_requests_per_delivery": aws_requests / max(1, len(requests)),
    }


def section(result: dict[str, Any], count: int) -> str:
    rate = result["deliveries"] / result["seconds"]
    floor = result["deliveries"] / result["floor_seconds"]
    aws_floor = result["deliveries"] / result["aws_floor_seconds"]
    exact = result["deliveries"] == result["unique_events"] == count
    return f"""{BEGIN}
## Webhook deliveries to a local sink

Command: `{COMMAND}`. Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}. {count:,} events queued
for one endpoint, then delivered by the real `webhooks` handler ({CONCURRENCY} at once, the function's
reserved concurrency; SQS and DynamoDB on moto in-process) to a local HTTP sink. The floor: a plain async
httpx client posting the same signed bodies to the same sink, {CONCURRENCY} at once, in the same run.

| measure | value |
|---|---:|
| deliveries/s through the worker | {rate:.0f} |
| floor: plain async httpx posts/s | {floor:.0f} |
| ratio to plain httpx | {rate / floor:.2f} |
| floor: the same moto doing only a delivery's AWS calls, /s | {aws_floor:.0f} |
| ratio to that | {rate / aws_floor:.2f} |
| AWS requests per delivery | {result["aws_requests_per_delivery"]:.2f} |
| every request verified (`standardwebhooks`), each event once | {"yes" if exact else "NO"} |

Per delivery the worker reads the endpoint (GetItem), signs, checks the URL (the outbound guard) and posts,
and writes the delivery's log item (PutItem); SQS receives are per 10 and deletes per message. The second
floor is those AWS calls alone on the same moto, drained the same way: it shows where the gap to plain
httpx goes (moto's in-process ReceiveMessage walks the whole queue each time, so a 1,000-message queue is
slow to drain whatever reads it).
{END}"""


@cli.command()
def main(
    count: int = typer.Option(1000, help="Events delivered."),
    output: Path = typer.Option(OUTPUT, help="The benchmarks page to update."),
) -> None:
    result = run(count)
    typer.echo(json.dumps(result, indent=2))
    write_marked_section(output, BEGIN, END, section(result, count))
    typer.echo(f"wrote {output}")


if __name__ == "__main__":
    cli()
