"""`make bench-voice`: a voice campaign on the local stack (chalice local, the event runner, the fake
provider's Voice half posting signed events over HTTP) with 10% of calls busy and 20% unanswered: are the
retries and the final counts exact?

Exact means: each recipient's attempts equal the calls placed to its number at the provider; a recipient
is `succeeded` exactly when its last call completed, `failed` exactly when all its calls ended busy or
unanswered; the campaign's counters equal the outcomes; nothing is `unknown` and nothing in flight.

Writes its section of docs/benchmarks.md (between the `voice-bench` markers), leaving the rest as is.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
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
BEGIN, END = "<!-- voice-bench:begin -->", "<!-- voice-bench:end -->"
COMMAND = "make bench-voice  # python -m bench.voice_bench"
MIX = {"completed": 0.7, "busy": 0.1, "timeout": 0.2}
MAX_ATTEMPTS = 3

cli = typer.Typer(add_completion=False)


def run(recipients: int, rate: float, concurrent: int) -> dict[str, Any]:
    with LocalStack(provider_rate_limit=0, provider_transient_failure_rate=0, seed=11) as stack:
        httpx.post(f"{stack.provider_url}/_fake/voice", json={"outcomes": MIX, "event_delay_ms": 50}, timeout=10)
        api = CampaignApi.for_new_account(stack.api_url, stack.admin_token, name="voice")
        listed = api.create_list("callees")
        api.add_recipients(listed["id"], generated_recipients(recipients))
        campaign = api.call(
            "POST",
            "/v1/campaigns",
            {
                "name": "voice bench",
                "list_id": listed["id"],
                "channel": "voice",
                "sender": "14155550100",
                "template": "Hello {{ first_name }}, your appointment is tomorrow at nine.",
                "voice": {"language": "en-US", "ringing_timer": 30},
                "rate_per_second": rate,
                "max_concurrent": concurrent,
                "retry_policy": {
                    "max_attempts": MAX_ATTEMPTS,
                    "initial_delay_seconds": 1,
                    "backoff_multiplier": 1,
                    "max_delay_seconds": 1,
                },
            },
        )
        started = time.monotonic()
        api.call("POST", f"/v1/campaigns/{campaign['id']}/start")
        while (current := api.call("GET", f"/v1/campaigns/{campaign['id']}"))["status"] != "completed":
            if time.monotonic() - started > 1800:
                break
            time.sleep(1)
        seconds = time.monotonic() - started
        calls = httpx.get(f"{stack.provider_url}/_fake/calls", timeout=60).json()
        outcomes = api.outcomes(campaign["id"])
        api.close()
    return {"seconds": seconds, "campaign": current, "calls": calls, "outcomes": outcomes}


def check(result: dict[str, Any]) -> dict[str, Any]:
    """The exactness checks, each a count of the recipients that break it (0 everywhere: exact)."""
    by_number: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for call in sorted(result["calls"]["calls"], key=lambda c: c["placed_at"]):
        by_number[call["to"]].append(call)
    wrong_attempts = wrong_state = 0
    for outcome in result["outcomes"]:
        placed = by_number.get(outcome["destination"].removeprefix("+"), [])
        wrong_attempts += outcome["attempts"] != len(placed)
        last = placed[-1]["outcome"] if placed else None
        expected = "succeeded" if last == "completed" else "failed"
        wrong_state += outcome["state"] != expected
    states = Counter(o["state"] for o in result["outcomes"])
    counters = result["campaign"]["counters"]
    return {
        "wrong_attempts": wrong_attempts,
        "wrong_state": wrong_state,
        "counter_drift": sum(abs(counters[k] - states.get(k, 0)) for k in ("succeeded", "failed", "unknown")),
        "states": dict(states),
        "calls": len(result["calls"]["calls"]),
        "by_outcome": result["calls"]["by_outcome"],
        "retries": len(result["calls"]["calls"]) - len(result["outcomes"]),
    }


def section(recipients: int, rate: float, concurrent: int, result: dict[str, Any], checked: dict[str, Any]) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    c = result["campaign"]["counters"]
    mix = ", ".join(f"{name} {share:.0%}" for name, share in MIX.items())
    by = ", ".join(f"{name} {count}" for name, count in sorted(checked["by_outcome"].items()))
    exact = "yes" if not (checked["wrong_attempts"] or checked["wrong_state"] or checked["counter_drift"]) else "NO"
    return f"""{BEGIN}
## Voice: busy and unanswered calls, retried, counted exactly

Command: `{COMMAND}`. Run {when} on {machine()}. {recipients:,} recipients called through the local stack
(chalice local, the event runner, the fake provider posting each call's events signed, over HTTP), each
call's outcome drawn from {mix}; up to {MAX_ATTEMPTS} tries per number, 1 s apart; `max_concurrent:
{concurrent}`, each slot held from the call's start to its last event; a configured rate of {rate:.0f}/s.

| | |
|---|---:|
| calls placed | {checked["calls"]:,} ({by}) |
| retries (calls beyond the first per recipient) | {checked["retries"]:,} |
| succeeded / failed / unknown | {c["succeeded"]:,} / {c["failed"]:,} / {c["unknown"]:,} |
| recipients whose attempts differ from the calls placed to them | {checked["wrong_attempts"]} |
| recipients whose state is not what their last call says | {checked["wrong_state"]} |
| counters against the outcomes (sum of differences) | {checked["counter_drift"]} |
| exact | {exact} |
| start to `{result["campaign"]["status"]}` | {result["seconds"]:.1f} s |

A failed recipient is one whose {MAX_ATTEMPTS} calls all ended busy or unanswered: with independent draws
that is about {0.3**MAX_ATTEMPTS:.1%} of recipients.
{END}"""


@cli.command()
def main(
    recipients: int = typer.Option(500, help="Recipients to call."),
    rate: float = typer.Option(50, help="The campaign's configured rate."),
    concurrent: int = typer.Option(50, help="max_concurrent: calls under way at once."),
    output: Path = typer.Option(OUTPUT, help="The benchmarks page to update."),
) -> None:
    result = run(recipients, rate, concurrent)
    checked = check(result)
    typer.echo(f"{result['campaign']['counters']} {checked}")
    write_marked_section(output, BEGIN, END, section(recipients, rate, concurrent, result, checked))


if __name__ == "__main__":
    cli()
