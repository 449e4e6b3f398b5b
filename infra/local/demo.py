"""`make demo`: one real SMS campaign on the local stack, with live progress and a summary. Some recipients
reply STOP while it runs (through the fake provider, signed, to the API's inbound webhook): they get nothing
more and are counted opted out; the provider's delivery receipts come back and are counted as delivered."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from infra.local.client import CampaignApi, generated_recipients, recipients_csv
from infra.local.stack import LocalStack

console = Console()
cli = typer.Typer(add_completion=False)


@cli.command()
def demo(
    recipients: int = typer.Option(2000, help="Rows in the generated list, invalid and duplicate ones included."),
    invalid: int = typer.Option(12, help="Rows with a bad phone number."),
    duplicates: int = typer.Option(8, help="Rows repeating an earlier number."),
    rate: float = typer.Option(50, help="Campaign rate, messages per second."),
    transient_failure_rate: float = typer.Option(0.02, help="Share of sends the fake provider fails transiently."),
    timeout: float = typer.Option(600, help="Give up after this many seconds."),
    stops: int = typer.Option(10, help="Recipients who reply STOP while the campaign runs."),
) -> None:
    """Start the local stack, run a campaign through the HTTP API, show progress, stop everything."""
    with console.status("starting the local stack (moto, chalice local, event runner, fake provider)"):
        stack = LocalStack(
            provider_transient_failure_rate=transient_failure_rate,
            provider_status_webhook_path="/v1/webhooks/vonage/status",  # receipts back to the API
        ).start()
    try:
        summary, status = run_campaign(stack, recipients, invalid, duplicates, rate, timeout, stops)
    finally:
        with console.status("stopping the local stack"):
            stack.stop()
    console.print(summary)
    if status != "completed":
        console.print(f"the campaign did not complete within {timeout:.0f} s", style="bold red")
    raise typer.Exit(0 if status == "completed" else 1)


SENDER = "+14155550100"  # the demo account's number: it sends the campaign and takes the replies
# Each recipient's own short link (decision 43), leading to the local API; some recipients follow theirs.
TRACKED = '{{ "https://acme.example/spring?code=" | append: code | track }}'
CLICKERS = 25


def run_campaign(
    stack: LocalStack, rows_count: int, invalid: int, duplicates: int, rate: float, timeout: float, stops: int = 0
) -> tuple[Table, str]:
    console.print(f"API {stack.api_url}  ·  fake provider {stack.provider_url}  ·  local AWS {stack.aws_endpoint_url}")
    api = CampaignApi.for_new_account(stack.api_url, stack.admin_token, name="demo")
    listed = api.create_list("Spring customers")
    rows = generated_recipients(rows_count, invalid=invalid, duplicates=duplicates)
    upload = upload_csv(api, listed["id"], recipients_csv(rows))
    accepted = int(upload["accepted"])
    console.print(
        f"list {listed['id']}: {upload['rows_read']} rows ingested from S3, {accepted} accepted, "
        f"{upload['invalid']} invalid, {upload['duplicates']} duplicates"
    )
    if upload.get("rejected_rows_url"):
        rejected = httpx.get(upload["rejected_rows_url"], timeout=30).text.splitlines()
        for line in rejected[1:4]:
            console.print(f"  rejected: {line}", style="dim")
    help_text = "Acme: spring offers by text. Reply STOP to end them."
    api.call("POST", "/v1/numbers", {"number": SENDER, "help_text": help_text})
    interested = api.create_list("Interested")
    handler = {
        "name": "interested",
        "condition": {"type": "keywords", "keywords": ["interested", "intéressé"]},
        "reactions": [{"type": "add_to_list", "list_id": interested["id"]}],
    }
    api.call("POST", "/v1/reply-handlers", handler)
    campaign = api.create_campaign(
        {
            "name": "Spring sale",
            "list_id": listed["id"],
            "channel": "sms",
            "sender": SENDER,
            "template": "Hi {{ first_name }}, spring sale! Code {{ code }} gives 20% off: "
            + TRACKED
            + " Reply STOP to opt out.",
            "rate_per_second": rate,
            "retry_policy": {"max_attempts": 3, "initial_delay_seconds": 2, "backoff_multiplier": 2},
        }
    )
    started_at = time.monotonic()
    api.act(campaign["id"], "start")
    replies = Replies(
        stack.provider_url, [str(row["phone"]) for row in rows if str(row["phone"]).startswith("+")], stops
    )
    final = follow(api, campaign["id"], accepted, timeout, replies)
    elapsed = time.monotonic() - started_at
    final = wait_for_receipts(api, final)
    final = click_some_links(api, stack.provider_url, final)
    final = replies.interested(api, final, interested["id"])
    return summary_table(final, elapsed, provider_stats(stack.provider_url), replies), str(final["status"])


def click_some_links(
    api: CampaignApi, provider_url: str, campaign: dict[str, Any], seconds: float = 15
) -> dict[str, Any]:
    """The first CLICKERS recipients follow their link (the first of them twice, and one link is only
    previewed with HEAD, which does not count); the campaign once the stream has counted the clicks."""
    messages = httpx.get(f"{provider_url}/_fake/messages", timeout=30).json()["messages"]
    links = [word for m in messages for word in m.get("text", "").split() if "/l/" in word][:CLICKERS]
    with httpx.Client(timeout=10, follow_redirects=False) as http:
        for link in [*links, *links[:1]]:
            http.get(link)
        if len(links) > CLICKERS - 1:
            http.head(links[-1])
    deadline = time.monotonic() + seconds
    with console.status(f"{len(links)} recipients follow their tracked link"):
        while time.monotonic() < deadline and campaign["counters"]["clicks"] < len(links) + min(1, len(links)):
            time.sleep(0.5)
            campaign = api.campaign(campaign["id"])
    return campaign


class Replies:
    """`count` recipients not sent to yet reply STOP once a quarter of the campaign is done (the fake
    provider posts each to the API's inbound webhook, signed); afterwards, the sends each got after it."""

    def __init__(self, provider_url: str, numbers: list[str], count: int) -> None:
        self.provider_url, self.numbers, self.count = provider_url, numbers, count
        self.stopped: list[str] = []
        self.at = 0.0
        self.listed = 0

    def maybe_send(self, done: int, total: int) -> None:
        if self.stopped or not self.count or done < total // 4:
            return
        sent = {"+" + m["to"] for m in httpx.get(f"{self.provider_url}/_fake/messages", timeout=30).json()["messages"]}
        self.stopped = [n for n in dict.fromkeys(self.numbers) if n not in sent][-self.count :]
        words = ["STOP", "stop", "Stop!", "ARRÊT", "unsubscribe"]
        for i, number in enumerate(self.stopped):
            body = {"from": number, "to": SENDER, "text": words[i % len(words)]}
            httpx.post(f"{self.provider_url}/_fake/inbound", json=body, timeout=10).raise_for_status()
        self.at = time.time()
        console.print(f"{len(self.stopped)} recipients replied STOP ({', '.join(words)}...)", style="yellow")

    def interested(self, api: CampaignApi, campaign: dict[str, Any], list_id: str, count: int = 5) -> dict[str, Any]:
        """`count` recipients who were sent the offer reply "Interested!": the reply handler adds them to the
        Interested list, and the campaign counts them as replied. The campaign once it did (or 15 s passed)."""
        sent = [m["to"] for m in httpx.get(f"{self.provider_url}/_fake/messages", timeout=30).json()["messages"]]
        for number in list(dict.fromkeys(sent))[:count]:
            body = {"from": f"+{number}", "to": SENDER, "text": "Interested!"}
            httpx.post(f"{self.provider_url}/_fake/inbound", json=body, timeout=10).raise_for_status()
        console.print(f'{count} recipients replied "Interested!" (a reply handler adds them to a list)', style="yellow")
        deadline = time.monotonic() + 15
        with console.status("waiting for the replies to be counted"):
            while time.monotonic() < deadline and campaign["counters"]["replied"] < count:
                time.sleep(0.5)
                campaign = api.campaign(campaign["id"])
        self.listed = int(api.call("GET", f"/v1/lists/{list_id}")["recipient_count"])
        return campaign

    def sent_after_stop(self) -> int:
        """Messages the STOPped numbers were sent more than 2 s after they replied."""
        messages = httpx.get(f"{self.provider_url}/_fake/messages", timeout=30).json()["messages"]
        stopped = {n.removeprefix("+") for n in self.stopped}
        return sum(1 for m in messages if m["to"] in stopped and float(m["accepted_at"]) > self.at + 2)


def wait_for_receipts(api: CampaignApi, campaign: dict[str, Any], seconds: float = 15) -> dict[str, Any]:
    """The campaign once the receipts of what it sent have come back (or `seconds` passed)."""
    deadline = time.monotonic() + seconds
    with console.status("waiting for the delivery receipts"):
        while time.monotonic() < deadline:
            c = campaign["counters"]
            if c["delivered"] + c["undelivered"] >= c["succeeded"]:
                break
            time.sleep(0.5)
            campaign = api.campaign(campaign["id"])
    return campaign


def upload_csv(api: CampaignApi, list_id: str, text: str) -> dict[str, Any]:
    """The list as a CSV file, PUT to S3 through a presigned URL and ingested by the worker, with progress."""
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with tempfile.TemporaryDirectory() as tmp, Progress(*columns, console=console) as progress:
        path = Path(tmp) / "spring-customers.csv"
        path.write_text(text, encoding="utf-8")
        sending = progress.add_task("upload to S3 (bytes)", total=path.stat().st_size)
        created = api.upload_file(list_id, path, sent=lambda n: progress.update(sending, completed=n))
        ingesting = progress.add_task("ingest (rows)", total=text.count("\n") - 1)
        upload = api.wait_upload(
            list_id, created["id"], seen=lambda u: progress.update(ingesting, completed=int(u["rows_read"]))
        )
    if upload["state"] != "completed":
        console.print(f"the upload failed: {upload.get('error')}", style="bold red")
        raise typer.Exit(1)
    return upload


def follow(api: CampaignApi, campaign_id: str, total: int, timeout: float, replies: Replies) -> dict[str, Any]:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[counters]}"),
    )
    deadline = time.monotonic() + timeout
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("running", total=total, counters="")
        while True:
            campaign = api.campaign(campaign_id)
            c = campaign["counters"]
            done = c["succeeded"] + c["failed"] + c["unknown"] + c["skipped"]
            progress.update(
                task,
                completed=done,
                description=campaign["status"],
                counters=f"queued {c['queued']} · in flight {c['in_flight']} · "
                f"succeeded {c['succeeded']} · failed {c['failed']} · unknown {c['unknown']} · "
                f"opted out {c['skipped_by_reason'].get('opted_out', 0)} · delivered {c['delivered']}",
            )
            replies.maybe_send(done, total)
            if campaign["status"] in ("completed", "cancelled") or time.monotonic() > deadline:
                return campaign
            time.sleep(0.5)


def provider_stats(provider_url: str) -> dict[str, Any]:
    return dict(httpx.get(f"{provider_url}/_fake/stats", timeout=10).json())


def summary_table(
    campaign: dict[str, Any], elapsed: float, provider: dict[str, Any], replies: Replies | None = None
) -> Table:
    c = campaign["counters"]
    table = Table(title=f"campaign {campaign['id']}: {campaign['status']}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name in ("total", "queued", "in_flight", "succeeded", "failed", "unknown", "skipped"):
        table.add_row(name, str(c[name]))
    table.add_row("opted out (replied STOP)", str(c["skipped_by_reason"].get("opted_out", 0)))
    table.add_row("delivered (receipts)", str(c["delivered"]))
    table.add_row("undelivered (receipts)", str(c["undelivered"]))
    table.add_row("replied (to the campaign's number)", str(c["replied"]))
    if replies is not None:
        table.add_row("added to Interested by a reply handler", str(replies.listed))
    table.add_row("clicked / clicks (tracked links)", f"{c['clicked']} / {c['clicks']}")
    if replies is not None and replies.stopped:
        table.add_row("sends to a number > 2 s after its STOP", str(replies.sent_after_stop()))
    table.add_row("elapsed", f"{elapsed:.1f} s")
    table.add_row("messages/s", f"{(c['succeeded'] + c['failed'] + c['unknown']) / elapsed:.1f}")
    table.add_row("provider accepted", str(provider["accepted"]))
    table.add_row("provider transient failures", str(provider["transient_failures"]))
    table.add_row("provider throttled (429)", str(provider["throttled"]))
    table.add_row("provider duplicates (same number twice)", str(provider["duplicates"]))
    return table


if __name__ == "__main__":
    cli()
