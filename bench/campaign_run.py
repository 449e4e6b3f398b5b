"""One campaign on a fresh local stack, measured from outside: botocore events on every AWS client
of this process, the API, the event runner's invocation counts and the fake provider's /_fake/stats.

Runs the API in this process (chalice's local server in a thread) next to the event runner, so every
AWS request the product and the event source mappings make is counted.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from bench.aws_calls import AwsCallCounter
from bench.cpu import THIS_PROCESS, CpuMeter
from bench.floor import LOCAL_AWS
from bench.hot_keys import KindPeak, peaks_by_kind
from infra.local.client import CampaignApi
from infra.local.stack import LocalStack

UPLOAD_ROWS_PER_REQUEST = 10_000  # the API's limit per request
# The bench polls the campaign like a client would; each poll costs the API a few reads, counted.
POLL_SECONDS = 2.0
UPLOAD_POLL_SECONDS = 0.1
REQUEST_TIMEOUT_SECONDS = 600.0
# Longer than the product's longest lease (a lost chunk of retries comes back when its lease ends: 900 s at most).
STALL_SECONDS = 960.0
PROGRESS_SECONDS = 30.0
PRODUCT = "product"
EVENT_SOURCES = "event source mapping"
PRODUCT_PROCESS = "product's process"  # the API, the event runner and the handlers: this process
PROVIDER = "fake provider"


@dataclass
class Phase:
    name: str
    started: float  # time.monotonic()
    ended: float
    counts: AwsCallCounter
    load: tuple[float, float]  # the machine's 1-minute load average at the start and the end
    invocations: dict[str, int] = field(default_factory=dict)  # Lambda invocations by function
    function_errors: dict[str, int] = field(default_factory=dict)  # invocations that raised
    hot_keys: list[KindPeak] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # campaign run: CPU seconds by process (LOCAL_AWS, ...)

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class CampaignRun:
    recipients: int
    upload_requests: int
    upload: Phase
    run: Phase
    # Start to completed: the campaign's own finished_at when the API shows it, else when the bench saw it.
    run_seconds: float
    final: dict[str, Any]
    provider: dict[str, Any]

    @property
    def rate(self) -> float:
        """Recipients per second, start to completed."""
        return self.recipients / self.run_seconds

    @property
    def phases(self) -> tuple[Phase, Phase]:
        return (self.upload, self.run)


def run_campaign_in_fresh_process(
    rows: list[dict[str, Any]], *, rate: float, transient_failure_rate: float, timeout: float
) -> CampaignRun:
    """run_campaign in a new interpreter: nothing of an earlier stack (threads, cached clients, chalice's
    patched app class) can leak into this one."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        job = pool.submit(run_campaign, rows, rate=rate, transient_failure_rate=transient_failure_rate, timeout=timeout)
        return job.result()


def run_campaign(
    rows: list[dict[str, Any]], *, rate: float, transient_failure_rate: float, timeout: float
) -> CampaignRun:
    counter = AwsCallCounter()
    with (
        counter.counting_new_clients(PRODUCT),
        LocalStack(
            api_in_process=True, provider_rate_limit=0, provider_transient_failure_rate=transient_failure_rate
        ) as stack,
    ):
        runner = stack.runner
        assert runner is not None
        counter.attach(EVENT_SOURCES, *runner.aws_clients)
        api = CampaignApi.for_new_account(stack.api_url, stack.admin_token, name="bench")
        api.http.timeout = httpx.Timeout(REQUEST_TIMEOUT_SECONDS)  # a 10,000-row upload is slow locally
        listed = api.create_list("bench")

        lambdas = _Invocations(runner)
        pids = stack.process_ids
        meter = CpuMeter({LOCAL_AWS: pids["moto"], PRODUCT_PROCESS: THIS_PROCESS, PROVIDER: pids["fake_provider"]})
        before, started, load = counter.snapshot(), time.monotonic(), os.getloadavg()[0]
        reports = api.add_recipients(listed["id"], rows, batch=UPLOAD_ROWS_PER_REQUEST)
        _wait_listed(api, listed["id"], len(rows), deadline=started + timeout)
        upload = Phase(
            "list upload", started, time.monotonic(), counter.since(before), (load, os.getloadavg()[0]),
            *lambdas.since_last(),
        )  # fmt: skip

        campaign = api.create_campaign(
            {
                "name": "bench",
                "list_id": listed["id"],
                "sender": "Bench",
                "template": "Hi {{ first_name }}, code {{ code }}",
                "rate_per_second": rate,
                "retry_policy": {"max_attempts": 5, "initial_delay_seconds": 1, "backoff_multiplier": 1},
            }
        )
        lambdas.since_last()
        cpu = meter.snapshot()
        before, started, started_wall, load = counter.snapshot(), time.monotonic(), time.time(), os.getloadavg()[0]
        api.act(campaign["id"], "start")
        final = _wait_completed(api, campaign["id"], deadline=started + timeout)
        run = Phase(
            "campaign run", started, time.monotonic(), counter.since(before), (load, os.getloadavg()[0]),
            *lambdas.since_last(), cpu=meter.since(cpu),
        )  # fmt: skip
        provider = _provider_stats(stack.provider_url)
    upload.hot_keys = peaks_by_kind(upload.counts.key_writes, upload.started, upload.ended)
    run.hot_keys = peaks_by_kind(run.counts.key_writes, run.started, run.ended)
    return CampaignRun(
        recipients=len(rows),
        upload_requests=len(reports),
        upload=upload,
        run=run,
        run_seconds=_run_seconds(final, started_wall, run.seconds),
        final=final,
        provider=provider,
    )


def _wait_completed(api: CampaignApi, campaign_id: str, deadline: float) -> dict[str, Any]:
    """Finished is what the campaign says (status completed), whatever counters it keeps."""
    seen, changed = None, time.monotonic()
    trace = _ProgressTrace()
    while (campaign := api.campaign(campaign_id))["status"] != "completed":
        now, progress = time.monotonic(), (campaign["status"], campaign.get("counters"))
        trace.note(now, campaign.get("counters") or {})
        if progress != seen:
            seen, changed = progress, now
        if now > deadline or now - changed > STALL_SECONDS:
            why = f"made no progress for {STALL_SECONDS:.0f} s" if now <= deadline else "did not complete in time"
            raise TimeoutError(f"the campaign {why}: {campaign['status']}, {campaign.get('counters')}")
        time.sleep(POLL_SECONDS)
    return campaign


class _ProgressTrace:
    """Every PROGRESS_SECONDS, on stderr: recipients finished and the rate since the last line (does a large
    campaign slow down as it goes, or run slower from its start?)."""

    def __init__(self) -> None:
        self.at, self.done = time.monotonic(), 0

    def note(self, now: float, counters: dict[str, Any]) -> None:
        if now - self.at < PROGRESS_SECONDS:
            return
        done = sum(int(counters.get(c, 0)) for c in ("succeeded", "failed", "unknown", "skipped", "expired"))
        rate = (done - self.done) / (now - self.at)
        print(f"campaign: {done} of {counters.get('total')} finished, {rate:.0f}/s", file=sys.stderr, flush=True)
        self.at, self.done = now, done


def _wait_listed(api: CampaignApi, list_id: str, count: int, deadline: float) -> None:
    """The upload is done when the list holds every row (at once if the API writes them in the request)."""
    while True:
        listed = api.call("GET", f"/v1/lists/{list_id}")
        if "recipient_count" not in listed or int(listed["recipient_count"]) >= count:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the list holds {listed['recipient_count']} of {count} rows")
        time.sleep(UPLOAD_POLL_SECONDS)


def _run_seconds(final: dict[str, Any], started_wall: float, seen: float) -> float:
    finished_at = final.get("finished_at")
    if isinstance(finished_at, str):
        try:
            finished = datetime.fromisoformat(finished_at.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return seen
        if 0 < finished - started_wall <= seen + 1:
            return finished - started_wall
    return seen


class _Invocations:
    """Lambda invocations (and those that raised) by function, from the event runner, phase by phase."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.last = self._now()

    def _now(self) -> tuple[dict[str, int], dict[str, int]]:
        errors = getattr(self.runner, "errors", {})
        return dict(self.runner.invocations), dict(errors) if isinstance(errors, dict) else {}

    def since_last(self) -> tuple[dict[str, int], dict[str, int]]:
        now, last = self._now(), self.last
        self.last = now
        deltas = [{k: v - old.get(k, 0) for k, v in new.items()} for new, old in zip(now, last, strict=True)]
        return {k: v for k, v in deltas[0].items() if v}, {k: v for k, v in deltas[1].items() if v}


def _provider_stats(provider_url: str) -> dict[str, Any]:
    try:
        answer = httpx.get(f"{provider_url}/_fake/stats", timeout=10)
        answer.raise_for_status()
        stats: dict[str, Any] = answer.json()
        return stats
    except (httpx.HTTPError, ValueError) as exc:
        return {"error": repr(exc)}
