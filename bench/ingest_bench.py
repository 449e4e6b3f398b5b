"""`make bench-ingest`: a large CSV uploaded through S3 and ingested into a list on the local stack, against
the floor of the same local AWS: plain BatchWriteItem of the same rows, on the same moto, in the same run.

    python -m bench.ingest_bench --rows 1000000        # make bench-ingest

The file goes the way a user's does: POST .../uploads, a PUT of the file to the presigned URL (or its
parts), S3's notification through SQS to the `ingest` function (the event runner in this process), and
the upload's counters polled through the API. Measured: rows/s end to end and the ratio to the floor,
the process's peak RSS during the ingest (the runner and the ingest worker live in this process; the
file is never read into memory by the bench), AWS requests and DynamoDB write units per row (botocore
events on every client of this process), and the largest share of the list's writes one partition key
took. Writes its section of docs/benchmarks.md (between the `ingest-bench` markers).
"""

from __future__ import annotations

import csv
import multiprocessing
import os
import platform
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.aws_calls import AwsCallCounter
from bench.report import write_marked_section
from chalicelib.domain.recipients import check_row
from chalicelib.domain.tabular import default_mapping, to_row
from chalicelib.store import keys, lists
from infra.local.client import AREA_CODES, CampaignApi
from infra.local.stack import LocalStack

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "benchmarks.md"


def markers(segment_bytes: int) -> tuple[str, str]:
    """The section of docs/benchmarks.md this run replaces: one for files read in one piece, one for segments."""
    name = "ingest-bench-segmented" if segment_bytes else "ingest-bench"
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


HEADER = ["id", "phone", "email", "first_name", "plan", "score"]
PLANS = ("free", "pro", "team", "enterprise")
BATCH_WRITE_ITEMS = 25
FLOOR_WRITERS = 8  # the floor's BatchWriteItem calls in flight at once
PRODUCT, FLOOR = "product", "floor"
POLL_SECONDS = 1.0
REPORTED = ("state", "rows_read", "accepted", "invalid", "duplicates")
RSS_SAMPLE_SECONDS = 0.2

cli = typer.Typer(add_completion=False)


def phone(n: int) -> str:
    """A distinct valid US number for each n below 80,000,000 (exchanges 200-999 of ten area codes)."""
    return f"+1{AREA_CODES[n // 8_000_000]}{200 + n // 10_000 % 800}{n % 10_000:04d}"


def write_csv(path: Path, rows: int) -> int:
    """A CSV of `rows` distinct recipients (an id, a phone number, an email, three attributes); its size."""
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for n in range(rows):
            out.writerow(
                [f"cust-{n:07d}", phone(n), f"user{n}@example.com",
                 f"Name{n % 997}", PLANS[n % 4], str(n % 100)]
            )  # fmt: skip
    return path.stat().st_size


def floor_items(path: Path, account: str, list_id: str) -> Any:
    """The items the product writes for the file's rows (the same checks and shape), in batches of 25."""
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        mapping = default_mapping(header)
        batch: list[dict[str, Any]] = []
        for values in reader:
            recipient = check_row(to_row(mapping, header, values), mapping.default_region)
            item = {
                "pk": keys.list_recipient_pk(account, list_id, recipient.id),
                "sk": keys.recipient_sk(recipient.id),
                **lists.item_fields(recipient),
                "added_at": 1,
            }
            batch.append({"PutRequest": {"Item": _typed(item)}})
            if len(batch) == BATCH_WRITE_ITEMS:
                yield batch
                batch = []
        if batch:
            yield batch


def _typed(item: dict[str, Any]) -> dict[str, Any]:
    from chalicelib.store import aws

    return aws.to_item(item)


@dataclass
class IngestRun:
    rows: int
    file_bytes: int
    floor_seconds: float
    seconds: float
    upload: dict[str, Any]
    rss_before_mb: float
    rss_peak_mb: float
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    write_units: int = 0
    index_units: int = 0
    list_key_writes: Counter[str] = field(default_factory=Counter)
    peak_key_writes_per_second: int = 0
    load: tuple[float, float] = (0.0, 0.0)

    @property
    def rate(self) -> float:
        return self.rows / self.seconds

    @property
    def floor_rate(self) -> float:
        return self.rows / self.floor_seconds


def run_floor(stack: LocalStack, path: Path, counter: AwsCallCounter) -> float:
    """BatchWriteItem of the file's items into a scratch table shaped like MainTable, on the stack's moto."""
    db = boto3.client("dynamodb", endpoint_url=stack.aws_endpoint_url, region_name="us-east-1")
    counter.attach(FLOOR, db)  # not the product's
    main = db.describe_table(TableName=stack.resource_env["MAIN_TABLE"])["Table"]
    scratch = f"floor-{int(time.time())}"
    db.create_table(
        TableName=scratch,
        KeySchema=main["KeySchema"],
        AttributeDefinitions=[a for a in main["AttributeDefinitions"] if a["AttributeName"] in ("pk", "sk")],
        BillingMode="PAY_PER_REQUEST",
    )
    started = time.monotonic()

    def write(batch: list[dict[str, Any]]) -> None:
        request = {scratch: batch}
        while request:
            request = db.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

    slots = threading.BoundedSemaphore(FLOOR_WRITERS * 4)  # batches prepared ahead: memory stays bounded

    def write_then_free(batch: list[dict[str, Any]]) -> None:
        try:
            write(batch)
        finally:
            slots.release()

    with ThreadPoolExecutor(max_workers=FLOOR_WRITERS) as pool:
        futures = []
        for batch in floor_items(path, "acc_floor", "lst_floor"):
            slots.acquire()
            futures.append(pool.submit(write_then_free, batch))
            if len(futures) > 1000:
                for done in futures:
                    done.result()
                futures = []
        for done in futures:
            done.result()
    seconds = time.monotonic() - started
    db.delete_table(TableName=scratch)
    return seconds


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class RssSampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = rss_mb()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(RSS_SAMPLE_SECONDS):
            self.peak = max(self.peak, rss_mb())


def run_ingest(rows: int, timeout: float, segment_bytes: int = 0) -> IngestRun:
    if segment_bytes:  # read by the ingest worker's settings, in this (fresh) process
        os.environ["INGEST_SEGMENT_BYTES"] = str(segment_bytes)
    counter = AwsCallCounter()
    counter.keep_key_writes = False  # millions of writes: counted per key and second, not kept one by one
    with tempfile.TemporaryDirectory() as tmp, counter.counting_new_clients(PRODUCT):
        path = Path(tmp) / "recipients.csv"
        size = write_csv(path, rows)
        with LocalStack(api_in_process=True) as stack:
            assert stack.runner is not None
            counter.attach(PRODUCT, *stack.runner.aws_clients)
            floor_seconds = run_floor(stack, path, counter)
            api = CampaignApi.for_new_account(stack.api_url, stack.admin_token, name="ingest bench")
            listed = api.create_list("ingest bench")
            sampler = RssSampler()
            rss_before = sampler.peak
            before, load = counter.snapshot(), os.getloadavg()[0]
            started = time.monotonic()
            sampler.start()
            upload = _ingest(api, listed["id"], path, rows, timeout)
            seconds = time.monotonic() - started
            sampler.stopped.set()
            counts = counter.since(before)

    def list_item_key(who: str, key: str) -> bool:  # <acc>#L#<list>#<bucket>: a list's items
        return who == PRODUCT and "#L#" in key and key.count("#") == 3

    list_writes: Counter[str] = Counter(
        {key: n for (who, _, key), n in counts.key_counts.items() if list_item_key(who, key)}
    )
    peak = max((n for (who, _, key, _), n in counts.key_seconds.items() if list_item_key(who, key)), default=0)
    return IngestRun(
        rows=rows,
        file_bytes=size,
        floor_seconds=floor_seconds,
        seconds=seconds,
        upload=upload,
        rss_before_mb=rss_before,
        rss_peak_mb=sampler.peak,
        calls=Counter({(service, op): n for (who, service, op), n in counts.calls.items() if who == PRODUCT}),
        write_units=counts.write_units[PRODUCT],
        index_units=sum(n for (who, _, _), n in counts.index_units.items() if who == PRODUCT),
        list_key_writes=list_writes,
        peak_key_writes_per_second=peak,
        load=(load, os.getloadavg()[0]),
    )


def _ingest(api: CampaignApi, list_id: str, path: Path, rows: int, timeout: float) -> dict[str, Any]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as progress:
        sending = progress.add_task("upload (bytes)", total=path.stat().st_size)
        created = api.upload_file(list_id, path, sent=lambda n: progress.update(sending, completed=n))
        ingesting = progress.add_task("ingest (rows)", total=rows)
        return api.wait_upload(
            list_id, created["id"], timeout=timeout,
            seen=lambda u: progress.update(ingesting, completed=int(u["rows_read"])),
        )  # fmt: skip


def report(run: IngestRun, command: str, segment_bytes: int = 0) -> str:
    per_row = run.rows
    ratio = run.rate / run.floor_rate
    units = (run.write_units + run.index_units) / per_row
    busiest = max(run.list_key_writes.values(), default=0)
    share = busiest / max(1, sum(run.list_key_writes.values()))
    tick = {True: "✓", False: "✗"}
    begin, end = markers(segment_bytes)
    mode = (
        f" Segmented: `INGEST_SEGMENT_BYTES={segment_bytes}`, so the file is cut into segments of whole records "
        "ingested in parallel by the runner's ingest invocations (a conditional PutItem per row)."
        if segment_bytes
        else ""
    )
    lines = [
        begin,
        "## List ingest through S3" + (", in parallel segments" if segment_bytes else ""),
        "",
        "Produced by:",
        "",
        f"    {command}",
        "",
        f"run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()}, {os.cpu_count()} cores. A CSV of "
        f"{run.rows:,} rows ({run.file_bytes / 1e6:,.0f} MB: id, phone, email and three attributes) PUT to the "
        "presigned URL of `POST /v1/lists/{id}/uploads`, ingested by the `ingest` function through S3's "
        "notification; the floor is BatchWriteItem of the same items (same checks, same shape) into a scratch "
        f"table on the same moto server in the same run, {FLOOR_WRITERS} calls in flight." + mode,
        "",
        "| measure | target | measured |",
        "|---|---|---:|",
        f"| floor: BatchWriteItem of the same rows (rows/s) |  | {run.floor_rate:,.0f} |",
        f"| ingest, PUT start to upload completed (rows/s) |  | {run.rate:,.0f} |",
        f"| ingest / floor | ≥ 0.6 | {ratio:.2f} {tick[ratio >= 0.6]} |",
        f"| peak RSS of the process running the ingest worker (MB; {run.rss_before_mb:,.0f} before) | flat, < 250 "
        f"| {run.rss_peak_mb:,.0f} {tick[run.rss_peak_mb < 250]} |",
        f"| DynamoDB write units per row (base table + GSIs) | ≤ 1.05 | {units:.3f} {tick[units <= 1.05]} |",
        f"| AWS requests per row | | {sum(run.calls.values()) / per_row:.4f} |",
        f"| largest share of the list's writes on one key | | {share:.1%} ({len(run.list_key_writes)} keys) |",
        f"| at 1,000 rows/s that key would take (writes/s) | < 500 | {share * 1000:,.0f} {tick[share * 1000 < 500]} |",
        f"| most writes one list key took within a clock second | | {run.peak_key_writes_per_second:,} |",
        "",
        f"Upload as the API reports it: `{ {k: run.upload.get(k) for k in REPORTED} }`. "
        f"Load average {run.load[0]:.2f} at the start, {run.load[1]:.2f} at the end.",
        "",
        "| service | operation | requests | per row |",
        "|---|---|---:|---:|",
        *(f"| {s} | {op} | {n:,} | {n / per_row:.4f} |" for (s, op), n in sorted(run.calls.items())),
        end,
    ]
    return "\n".join(lines)


@cli.command()
def main(
    rows: int = typer.Option(1_000_000, help="Rows in the generated CSV."),
    timeout: float = typer.Option(7200, help="Give up after this many seconds."),
    output: Path = typer.Option(OUTPUT, help="The page whose ingest-bench section is replaced."),
    segment_bytes: int = typer.Option(0, help="Cut the file into segments of this size, ingested in parallel."),
) -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:  # a fresh interpreter, a clean RSS
        run = pool.submit(run_ingest, rows, timeout, segment_bytes).result()
    command = f"python -m bench.ingest_bench --rows {rows}"
    if segment_bytes:
        command += f" --segment-bytes {segment_bytes}"
    else:
        command = "make bench-ingest  # " + command
    section = report(run, command, segment_bytes)
    begin, end = markers(segment_bytes)
    write_marked_section(output, begin, end, section)
    typer.echo(section)


if __name__ == "__main__":
    cli()
