"""`make bench-pause`: what a user times on the local stack — how long after pause do sends stop, does
resume keep the rate, and what does a provider that takes 10 s do to a campaign.

Writes its section of docs/benchmarks.md (between the `pause-bench` markers), leaving the rest as is.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import typer

from bench.report import machine, write_marked_section
from infra.local.client import CampaignApi, generated_recipients
from infra.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- pause-bench:begin -->", "<!-- pause-bench:end -->"
COMMAND = "make bench-pause  # python -m bench.pause_bench"

cli = typer.Typer(add_completion=False)


def accepted_times(stack: LocalStack) -> list[float]:
    messages = httpx.get(f"{stack.provider_url}/_fake/messages", timeout=60).json()["messages"]
    return sorted(float(m["accepted_at"]) for m in messages)


def run_campaign(api: CampaignApi, list_id: str, rate: float) -> dict[str, Any]:
    return api.create_campaign(
        {
            "name": "pause bench",
            "list_id": list_id,
            "sender": "Bench",
            "template": "Hi {{ first_name }}",
            "rate_per_second": rate,
            "retry_policy": {"max_attempts": 5, "initial_delay_seconds": 1, "backoff_multiplier": 1},
        }
    )


def wait_for(api: CampaignApi, campaign_id: str, done: Any, limit: float) -> dict[str, Any]:
    deadline = time.monotonic() + limit
    while True:
        campaign = api.campaign(campaign_id)
        if done(campaign) or time.monotonic() > deadline:
            return campaign
        time.sleep(0.2)


def measure_pause(rate: float, recipients: int) -> dict[str, Any]:
    with LocalStack(provider_rate_limit=0, provider_transient_failure_rate=0) as stack:
        api = CampaignApi.for_new_account(stack.api_url, stack.admin_token, name="pause")
        listed = api.create_list("pause")
        api.add_recipients(listed["id"], generated_recipients(recipients))
        campaign = run_campaign(api, listed["id"], rate)
        api.act(campaign["id"], "start")
        wait_for(api, campaign["id"], lambda c: c["counters"]["succeeded"] >= recipients // 4, 300)
        api.act(campaign["id"], "pause")
        paused_at = time.time()
        time.sleep(8)
        sent = accepted_times(stack)
        after = [t - paused_at for t in sent if t > paused_at]
        api.act(campaign["id"], "resume")
        resumed_at = time.time()
        time.sleep(10)
        resumed = [t for t in accepted_times(stack) if resumed_at + 2 <= t <= resumed_at + 10]
        final = wait_for(api, campaign["id"], lambda c: c["status"] == "completed", 600)
        stats = httpx.get(f"{stack.provider_url}/_fake/stats", timeout=30).json()
        return {
            "rate": rate,
            "recipients": recipients,
            "first_second": sum(1 for t in after if t <= 1),
            "second_second": sum(1 for t in after if 1 < t <= 2),
            "after_two": sum(1 for t in after if t > 2),
            "last_send": max(after) if after else 0.0,
            "resumed_rate": len(resumed) / 8,
            "status": final["status"],
            "duplicates": stats["duplicates"],
        }


def measure_slow_provider(recipients: int, latency_ms: int) -> dict[str, Any]:
    with LocalStack(provider_rate_limit=0, provider_transient_failure_rate=0) as stack:
        httpx.post(f"{stack.provider_url}/_fake/config", json={"latency_ms": latency_ms}, timeout=10)
        api = CampaignApi.for_new_account(stack.api_url, stack.admin_token, name="slow")
        listed = api.create_list("slow")
        api.add_recipients(listed["id"], generated_recipients(recipients))
        campaign = run_campaign(api, listed["id"], 100)
        started = time.monotonic()
        api.act(campaign["id"], "start")
        final = wait_for(api, campaign["id"], lambda c: c["status"] == "completed", 900)
        stats = httpx.get(f"{stack.provider_url}/_fake/stats", timeout=30).json()
        return {
            "recipients": recipients,
            "latency_s": latency_ms / 1000,
            "seconds": time.monotonic() - started,
            "counters": final["counters"],
            "status": final["status"],
            "duplicates": stats["duplicates"],
        }


def section(pause: dict[str, Any], slow: dict[str, Any]) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    where = machine()
    c = slow["counters"]
    return f"""{BEGIN}
## Pause, resume and a slow provider, timed as a user would

Command: `{COMMAND}`. Run {when} on {where}, on the local stack (the in-process event runner, the
fake provider with no rate limit and no failures).

Pause at a configured {pause["rate"]:.0f}/s, once a quarter of {pause["recipients"]:,} recipients were sent,
counted from the moment the pause request returned, by the provider's own acceptance times:

| window after pause returned | sends |
|---|---:|
| 0-1 s | {pause["first_second"]} |
| 1-2 s | {pause["second_second"]} |
| after 2 s | {pause["after_two"]} |

Last send {pause["last_send"]:.2f} s after the pause returned (target: at most one second's worth in the
first second, none after 2 s). After resume the provider received {pause["resumed_rate"]:.0f} sends/s
(seconds 2-10; configured {pause["rate"]:.0f}/s, so not doubled). The campaign ended
`{pause["status"]}`; provider duplicates: {pause["duplicates"]}.

A provider that takes {slow["latency_s"]:.0f} s to answer every send: {slow["recipients"]} recipients at 100/s
ended `{slow["status"]}` in {slow["seconds"]:.0f} s with succeeded {c["succeeded"]}, failed {c["failed"]},
unknown {c["unknown"]}; provider duplicates: {slow["duplicates"]}. Dispatch sends 50 at once per
invocation and hands back what its time budget cannot cover, so throughput is bounded by
concurrency / latency (4 local invocations x 50 / 10 s = 20/s), and nothing times out.
{END}"""


@cli.command()
def main(
    rate: float = typer.Option(200, help="Campaign rate for the pause measurement."),
    recipients: int = typer.Option(4000, help="Recipients in the pause campaign."),
    slow_recipients: int = typer.Option(200, help="Recipients sent through the 10 s provider."),
    output: Path = typer.Option(OUTPUT, help="The benchmarks page to update."),
) -> None:
    pause = measure_pause(rate, recipients)
    typer.echo(f"pause: {pause}")
    slow = measure_slow_provider(slow_recipients, 10_000)
    typer.echo(f"slow provider: {slow}")
    write_marked_section(output, BEGIN, END, section(pause, slow))


if __name__ == "__main__":
    cli()
