"""docs/benchmarks.md from the measured runs: targets first, then each size's details."""

from __future__ import annotations

import os
import platform
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.campaign_run import PRODUCT, PRODUCT_PROCESS, PROVIDER, CampaignRun
from bench.costs import PRICE_LAMBDA_REQUEST, PRICE_READ_UNIT, PRICE_SQS_REQUEST, PRICE_WRITE_UNIT, Units
from bench.floor import CHUNK, FLOOR_CLIENT, LOCAL_AWS, FloorRun
from bench.hot_keys import WINDOW_SECONDS

FLOOR_RATIO_TARGET = 0.7
HOT_KEY_TARGET = 500
SCALE_TARGET = 1.15
WRITE_UNITS_TARGET = 3
SQS_TARGET = 0.3
NONE = "-"  # no figure


@dataclass
class SizeResult:
    """One size's runs, alternated on a shared machine: floor, campaign, floor, campaign, ..., floor.

    Each campaign is compared with the two floors beside it (the one before and the one after it), and the
    size's ratio is the median of the campaigns' ratios: the machine drifts within minutes by as much as a
    change moves the campaign, so one pair of runs cannot tell (decision 54). The figures of one run (its
    requests, write units, CPU) are those of the campaign whose ratio is the median.
    """

    recipients: int
    floors: list[FloorRun] = field(default_factory=list)  # before the first campaign, and after each
    campaigns: list[CampaignRun] = field(default_factory=list)

    def floors_beside(self, index: int) -> list[FloorRun]:
        """The floors before and after campaign `index` (those measured)."""
        return self.floors[index : index + 2]

    @property
    def ratios(self) -> list[float]:
        """Each campaign's throughput over the mean of the floors beside it."""
        ratios = []
        for index, campaign in enumerate(self.campaigns):
            beside = self.floors_beside(index)
            if beside:
                ratios.append(campaign.rate / statistics.fmean(f.rate for f in beside))
        return ratios

    @property
    def median_index(self) -> int | None:
        """The campaign whose ratio is the median (the lower of the two middle ones for an even count); without
        floors, the first campaign."""
        if not self.campaigns:
            return None
        ratios = self.ratios
        if not ratios:
            return 0
        return ratios.index(statistics.median_low(ratios))

    @property
    def campaign(self) -> CampaignRun | None:
        index = self.median_index
        return None if index is None else self.campaigns[index]

    @property
    def beside(self) -> list[FloorRun]:
        """The floors the figures compare with: those beside the median campaign, else every floor."""
        index = self.median_index
        return self.floors if index is None else self.floors_beside(index)

    @property
    def floor_rate(self) -> float | None:
        return statistics.fmean(f.rate for f in self.beside) if self.beside else None

    @property
    def ratio(self) -> float | None:
        ratios = self.ratios
        return statistics.median_low(ratios) if ratios else None


@dataclass
class Settings:
    command: str
    rate: float
    transient_failure_rate: float
    concurrency: int
    repeats: int = 1
    started: datetime = field(default_factory=lambda: datetime.now(UTC))


# Sections other benches keep in the same page: `<!-- name:begin -->` ... `<!-- name:end -->`.
_MARKED = re.compile(r"<!-- ([\w-]+):begin -->.*?<!-- \1:end -->", re.DOTALL)


def keep_marked_sections(new: str, previous: str) -> str:
    """The new page, with the marked sections of the previous one (written by other benches) after it."""
    kept = [m.group(0) for m in _MARKED.finditer(previous) if f"<!-- {m.group(1)}:begin -->" not in new]
    return new if not kept else new.rstrip("\n") + "\n\n" + "\n\n".join(kept) + "\n"


def write_marked_section(output: Path, begin: str, end: str, section: str) -> None:
    """Put `section` (it starts with `begin` and ends with `end`) in the page at `output`: in place of the
    one it replaces, else at the end; the rest of the page is kept."""
    previous = output.read_text(encoding="utf-8") if output.exists() else "# Benchmarks\n"
    if begin in previous:
        head, _, rest = previous.partition(begin)
        _, _, tail = rest.partition(end)
        page = head + section + tail
    else:
        page = previous.rstrip("\n") + "\n\n" + section + "\n"
    output.write_text(page, encoding="utf-8")


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count() or 0} cores, Python {platform.python_version()}"


def report(results: list[SizeResult], settings: Settings) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Measured, not asserted. Every figure in this file was produced by this one command:",
        "",
        f"    {settings.command}",
        "",
        "(`make bench` runs it with `--recipients 10000 --repeats 3`, `make bench-scale` with",
        "`--recipients 10000,100000`.)",
        "",
        f"run {settings.started:%Y-%m-%d %H:%M} UTC on {machine()}. Each size alternates runs on fresh local",
        "AWS: the floor (a fresh moto server doing only the unavoidable calls), then the product (a fresh",
        "local stack: moto's server, chalice's local server and the event runner in the bench's process,",
        f"the fake provider), then the floor again: {settings.repeats} campaign(s) per size, each between two",
        "floors and compared with their mean; the size's ratio is the median (decision 54). Campaign rate",
        f"{settings.rate:g}/s, {settings.transient_failure_rate:.0%} transient provider failures, retries up to 5 "
        "attempts; the list uploaded in",
        f"requests of 10,000 rows; dispatch concurrency {settings.concurrency} (`reserved_concurrency` of `dispatch`, "
        "stage `local`).",
        "",
        "Locally moto answers each call in milliseconds and everything shares the machine's cores: the",
        "rates say how the local stack performs, not AWS. The ratio to the floor and the counts do transfer.",
        "",
        "## Targets",
        "",
        *_targets(results),
    ]
    for result in results:
        lines += _size_section(result, settings)
    lines += _method()
    return "\n".join(lines) + "\n"


def _targets(results: list[SizeResult]) -> list[str]:
    sizes = [r.recipients for r in results]
    rows: list[tuple[str, str, Callable[[SizeResult], str]]] = [
        ("floor: same local AWS, unavoidable calls only (recipients/s; mean of before, after)", "", _floor_rate),
        ("campaign, start to completed (recipients/s)", "", _campaign_rate),
        ("campaign / floor", f"≥ {FLOOR_RATIO_TARGET}", _ratio),
        ("campaign time per recipient (ms)", "", _ms_per_recipient),
        (
            "CPU per recipient in local AWS (ms): floor (before, after); campaign",
            "",
            lambda r: _cpu(r, LOCAL_AWS, (LOCAL_AWS,)),
        ),
        (
            "CPU per recipient beside it (ms): floor's client (before, after); product's process + fake provider",
            "",
            lambda r: _cpu(r, FLOOR_CLIENT, (PRODUCT_PROCESS, PROVIDER)),
        ),
        (f"time per recipient / at {sizes[0]:,}", f"≤ {SCALE_TARGET}", lambda r: _scale(r, results[0])),
        ("list upload (rows/s)", "", _upload_rate),
        ("peak writes/s on one partition key, list upload", "", lambda r: _peak(r, 0, target=None)),
        ("peak writes/s on one partition key, campaign run", f"< {HOT_KEY_TARGET}", lambda r: _peak(r, 1)),
        (
            "DynamoDB write units per recipient, campaign run (base tables + GSIs; its retries included)",
            f"≤ {WRITE_UNITS_TARGET}",
            lambda r: _write_units(r, phase=1),
        ),
        ("DynamoDB write units per recipient, list upload (once per list, whatever sends to it)", "", _upload_units),
        ("SQS requests per recipient", f"≤ {SQS_TARGET}", _sqs),
        ("local-AWS 5xx answers", "0", _server_errors),
        ("provider duplicates", "0", _duplicates),
        ("USD per million recipients (requests only)", "", _usd),
    ]
    lines = [
        "| measure | target | " + " | ".join(f"{n:,} recipients" for n in sizes) + " |",
        "|---|---|" + "---:|" * len(sizes),
    ]
    lines += [f"| {name} | {target} | " + " | ".join(cell(r) for r in results) + " |" for name, target, cell in rows]
    return [*lines, "", "✓ target met, ✗ missed.", ""]


def _mark(ok: bool) -> str:
    return "✓" if ok else "✗"


def _floor_rate(r: SizeResult) -> str:
    if r.floor_rate is None:
        return NONE
    each = f" ({', '.join(f'{f.rate:,.0f}' for f in r.beside)})" if len(r.beside) > 1 else ""
    return f"{r.floor_rate:,.0f}{each}"


def _campaign_rate(r: SizeResult) -> str:
    return f"{r.campaign.rate:,.0f}" if r.campaign else NONE


def _ratio(r: SizeResult) -> str:
    """The median ratio, and with several campaigns each one's, in the order they ran."""
    if r.ratio is None:
        return NONE
    each = f" (median of {', '.join(f'{ratio:.2f}' for ratio in r.ratios)})" if len(r.ratios) > 1 else ""
    return f"{r.ratio:.2f} {_mark(r.ratio >= FLOOR_RATIO_TARGET)}{each}"


def _ms_per_recipient(r: SizeResult) -> str:
    return f"{1000 * r.campaign.run_seconds / r.recipients:.2f}" if r.campaign else NONE


def _scale(r: SizeResult, base: SizeResult) -> str:
    if r is base or not (r.campaign and base.campaign):
        return NONE
    ratio = (r.campaign.run_seconds / r.recipients) / (base.campaign.run_seconds / base.recipients)
    return f"{ratio:.2f} {_mark(ratio <= SCALE_TARGET)}"


def _cpu_cell(floors: list[float], campaign: float | None) -> str:
    """`floor; campaign`, each in ms per recipient, the floor as the mean of its runs and each run."""
    if not floors and campaign is None:
        return NONE
    each = f" ({', '.join(f'{ms:.2f}' for ms in floors)})" if len(floors) > 1 else ""
    floor = f"{sum(floors) / len(floors):.2f}{each}" if floors else NONE
    return f"{floor}; {NONE if campaign is None else f'{campaign:.2f}'}"


def _cpu(r: SizeResult, in_floor: str, in_campaign: tuple[str, ...]) -> str:
    """CPU per recipient of process `in_floor` in each floor, and of the processes `in_campaign` together."""
    floors = [1000 * f.cpu[in_floor] / f.recipients for f in r.beside if in_floor in f.cpu]
    cpu = r.campaign.run.cpu if r.campaign else {}
    spent = [cpu[name] for name in in_campaign if name in cpu]
    return _cpu_cell(floors, 1000 * sum(spent) / r.recipients if spent else None)


def _upload_rate(r: SizeResult) -> str:
    return f"{r.recipients / r.campaign.upload.seconds:,.0f}" if r.campaign else NONE


def _peak(r: SizeResult, phase: int, target: int | None = HOT_KEY_TARGET) -> str:
    if not r.campaign or not r.campaign.phases[phase].hot_keys:
        return NONE
    top = r.campaign.phases[phase].hot_keys[0]
    mark = f" {_mark(top.peak < target)}" if target else ""
    return f"{top.peak:,}{mark} `{top.kind}`"


def _write_units(r: SizeResult, phase: int) -> str:
    if not r.campaign:
        return NONE
    units = Units.of(r.campaign, phase)
    total = units.writes + units.index_writes
    return f"{total:.3f} {_mark(total <= WRITE_UNITS_TARGET)}"


def _upload_units(r: SizeResult) -> str:
    if not r.campaign:
        return NONE
    units = Units.of(r.campaign, 0)
    return f"{units.writes + units.index_writes:.3f}"


def _sqs(r: SizeResult) -> str:
    if not r.campaign:
        return NONE
    sqs = Units.of(r.campaign).sqs
    return f"{sqs:.3f} {_mark(sqs <= SQS_TARGET)}"


def _server_errors(r: SizeResult) -> str:
    if not r.campaign:
        return NONE
    errors = sum(p.counts.server_errors() for p in r.campaign.phases)
    return f"{errors} {_mark(errors == 0)}"


def _duplicates(r: SizeResult) -> str:
    if not r.campaign or "duplicates" not in r.campaign.provider:
        return NONE
    duplicates = int(r.campaign.provider["duplicates"])
    return f"{duplicates} {_mark(duplicates == 0)}"


def _usd(r: SizeResult) -> str:
    return f"{sum(Units.of(r.campaign).cost().values()):.2f}" if r.campaign else NONE


def _size_section(result: SizeResult, settings: Settings) -> list[str]:
    n = result.recipients
    lines = [f"## {n:,} recipients", ""]
    if result.floors:
        lines += _floor_section(result.floors, len(result.campaigns))
    if len(result.campaigns) > 1:
        lines += _campaign_runs(result)
    if result.campaign:
        lines += _campaign_sections(result.campaign, settings)
    return lines


def _floor_names(campaigns: int) -> list[str]:
    if campaigns <= 1:
        return ["before the campaign", "after the campaign"]
    return ["before campaign 1", *(f"after campaign {i}" for i in range(1, campaigns + 1))]


def _campaign_runs(result: SizeResult) -> list[str]:
    """Each campaign with its ratio to the floors beside it; the sections below are the median one's."""
    median = result.median_index
    lines = [
        "### Campaigns, in the order they ran",
        "",
        "| campaign | seconds | recipients/s | floors beside it (recipients/s) | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    ratios = result.ratios
    for index, run in enumerate(result.campaigns):
        name = f"{index + 1}" + (" (median: the sections below)" if index == median else "")
        beside = ", ".join(f"{f.rate:,.0f}" for f in result.floors_beside(index)) or NONE
        ratio = f"{ratios[index]:.2f}" if index < len(ratios) else NONE
        lines.append(f"| {name} | {run.run_seconds:.1f} | {run.rate:,.0f} | {beside} | {ratio} |")
    return [*lines, ""]


def _floor_section(floors: list[FloorRun], campaigns: int) -> list[str]:
    n, first = floors[0].recipients, floors[0]
    lines = [
        "### Floor",
        "",
        f"{first.concurrency} dispatch threads, deliveries spread over {first.buckets} partition keys.",
        "",
        "| run | seconds | recipients/s | load average (start, end) |",
        "|---|---:|---:|---|",
    ]
    for name, floor in zip(_floor_names(campaigns), floors, strict=False):
        lines.append(f"| {name} | {floor.seconds:.1f} | {floor.rate:,.0f} | {_load(floor.load)} |")
    lines += [
        "",
        "Its requests (first run):",
        "",
        "| service | operation | requests | per recipient |",
        "|---|---|---:|---:|",
    ]
    for (_, service, operation), calls in sorted(first.counts.calls.items()):
        lines.append(f"| {service} | {operation} | {calls:,} | {calls / n:.4f} |")
    return [*lines, ""]


def _load(load: tuple[float, float]) -> str:
    return f"{load[0]:.2f}, {load[1]:.2f}"


def _campaign_sections(run: CampaignRun, settings: Settings) -> list[str]:
    n = run.recipients
    upload = run.upload
    lines = [
        "### Campaign",
        "",
        "| phase | seconds | recipients/s | load average (start, end) |",
        "|---|---:|---:|---|",
        f"| list upload ({run.upload_requests} request(s) of up to 10,000 rows) | {upload.seconds:.1f} | "
        f"{n / upload.seconds:,.0f} | {_load(upload.load)} |",
        f"| campaign, start to completed | {run.run_seconds:.1f} | {run.rate:,.0f} | {_load(run.run.load)} |",
        "",
        f"Final counters: `{run.final.get('counters')}`. Provider (`/_fake/stats`): `{run.provider}`.",
        "",
        "Lambda invocations (the event runner's), by function:",
        "",
        "| phase | function | invocations | per recipient | raised |",
        "|---|---|---:|---:|---:|",
    ]
    for phase in run.phases:
        for function, count in sorted(phase.invocations.items()):
            errors = phase.function_errors.get(function, 0)
            lines.append(f"| {phase.name} | {function} | {count:,} | {count / n:.4f} | {errors} |")
    lines += [
        "",
        f"Hot partition keys: the most writes one key took within any {WINDOW_SECONDS:g} s, by key kind. The",
        "local stack runs far below the campaign's rate, so the last column says what the busiest key of",
        f"the kind would take at the campaign's rate ({settings.rate:g}/s) with the same writes per recipient.",
        "",
        "| phase | table | key kind | keys | writes | peak writes/s on one key | at the campaign's rate |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for phase in run.phases:
        for row in phase.hot_keys:
            projected = f"{row.most_on_one_key / n * settings.rate:,.0f}" if phase is run.run else NONE
            lines.append(
                f"| {phase.name} | {row.table} | `{row.kind}` | {row.keys:,} | {row.writes:,} | {row.peak:,} "
                f"| {projected} |"
            )
    lines += [
        "",
        "AWS requests:",
        "",
        "| phase | made by | service | operation | requests | per recipient | 5xx | retried |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for phase in run.phases:
        counts = phase.counts
        for (who, service, operation), calls in sorted(counts.calls.items()):
            errors = counts.answers[(who, service, operation, "5xx")]
            retried = counts.retried[(who, service, operation)]
            lines.append(
                f"| {phase.name} | {who} | {service} | {operation} | {calls:,} | {calls / n:.4f} "
                f"| {errors} | {retried} |"
            )
    lines += [
        "",
        "Where the DynamoDB write units go (GSI: entries added to or removed from a global secondary index):",
        "",
        "| phase | table | operation or index | write units | per recipient |",
        "|---|---|---|---:|---:|",
    ]
    for phase in run.phases:
        for (who, table, operation), written in sorted(phase.counts.write_units_by.items()):
            if who == PRODUCT:
                lines.append(f"| {phase.name} | {table} | {operation} | {written:,} | {written / n:.4f} |")
        for (who, table, index), written in sorted(phase.counts.index_units.items()):
            if who == PRODUCT:
                lines.append(f"| {phase.name} | {table} | GSI `{index}` | {written:,} | {written / n:.4f} |")
    units = Units.of(run)
    cost = units.cost()
    lines += [
        "",
        "Per recipient, and what a million recipients cost:",
        "",
        "| measure | per recipient | target | USD per million recipients |",
        "|---|---:|---:|---:|",
        f"| DynamoDB write units, base tables | {units.writes:.3f} | | {units.writes * PRICE_WRITE_UNIT:.2f} |",
        f"| DynamoDB write units, GSIs | {units.index_writes:.3f} | | {units.index_writes * PRICE_WRITE_UNIT:.2f} |",
        f"| DynamoDB write units, total | {units.writes + units.index_writes:.3f} | ≤ {WRITE_UNITS_TARGET} | "
        f"{cost['DynamoDB writes']:.2f} |",
        f"| DynamoDB read units (estimated) | {units.reads:.3f} | | {cost['DynamoDB reads']:.2f} |",
        f"| SQS requests (product and event source mapping) | {units.sqs:.3f} | ≤ {SQS_TARGET} | "
        f"{cost['SQS requests']:.2f} |",
        f"| Lambda invocations | {units.lambdas:.4f} | | {cost['Lambda requests']:.2f} |",
        f"| **total** | | | **{sum(cost.values()):.2f}** |",
        "",
    ]
    return lines


def _method() -> list[str]:
    return [
        "## How it is measured",
        "",
        "- The floor: a fresh moto server (`infra/local/moto_server.py`, started by",
        "  `infra.local.stack.start_moto`) with the resources of `infra/template.json`, asked only for what",
        "  a recipient cannot do without: a conditional PutItem claim and a conditional UpdateItem outcome on",
        f"  the deliveries table, and its share of SendMessageBatch (10 chunks of {CHUNK} recipients, paced at",
        "  the campaign's rate), ReceiveMessage and DeleteMessageBatch, from as many threads as the stack's",
        "  dispatch runs. Keys `<account>#C#<campaign>#<bucket>`, a bucket per 150 recipients/s of rate.",
        "- Campaign throughput: from the start request to the campaign's own `finished_at` (status",
        "  `completed`). Time per recipient is its inverse; the scale ratio compares it with the first size.",
        "- Requests: botocore `before-parameter-build` events on every client created in the bench's",
        "  process while the stack runs (the product's, the runner's). 5xx and retried attempts: botocore",
        "  `needs-retry` events, one per HTTP answer, so retried answers count too.",
        "- CPU per recipient: user and system CPU seconds of each process over the phase (`/proc/<pid>/stat`;",
        "  this process's own clock for itself), over the recipients. Local AWS is moto's server. The product's",
        "  process holds the API, the event runner and the handlers, and also the bench's request counting and",
        "  its polling of the campaign; the floor's client holds the same counting.",
        "- Hot keys: each written item's partition key (PutItem's `Item`, UpdateItem's and DeleteItem's",
        "  `Key`, each item of a BatchWriteItem or TransactWriteItems), timed when the request is made.",
        "- Write units: every item here is under 1 KB, so each PutItem, UpdateItem, DeleteItem or",
        "  BatchWriteItem item is one unit (two in a transaction). GSI units: a PutItem carrying a GSI key",
        "  attribute that is not a base-table key (MainTable `active`, DeliveriesTable `due_at` for index",
        "  `due`), or an UpdateItem whose SET/REMOVE/ADD names one, is one unit. AWS also bills a GSI unit",
        "  for an update of an indexed item's other projected attributes and two for a changed GSI key: the",
        "  figure is a floor of the GSI cost. A DeleteItem's GSI entry is not counted.",
        "- Reads: a consistent GetItem or Query page is taken as one read unit and each BatchGetItem key as",
        "  half of one. SQS: every request except the runner's bookkeeping (GetQueueAttributes,",
        "  GetQueueUrl); DynamoDB Streams reads by Lambda triggers are free. Empty long polls of an idle",
        "  queue are a fixed cost of the event source mapping, counted here all the same.",
        f"- Prices: us-east-1 on-demand list prices, USD per million: write request unit {PRICE_WRITE_UNIT}, read",
        f"  request unit {PRICE_READ_UNIT}, SQS request {PRICE_SQS_REQUEST}, Lambda request {PRICE_LAMBDA_REQUEST}. "
        "Not included:",
        "  Lambda duration, API Gateway for the upload requests, data transfer, the provider's own price.",
    ]


def summary(results: list[SizeResult], settings: Settings) -> list[str]:
    """The headline figures as lines for the terminal, each with the command that produced it."""
    lines = [f"{settings.command}  ({machine()}, {settings.started:%Y-%m-%d %H:%M} UTC)"]
    for r in results:
        parts: list[Any] = [f"{r.recipients:,} recipients:"]
        parts.append(f"floor {_floor_rate(r)}/s, campaign {_campaign_rate(r)}/s, ratio {_ratio(r)} (target ≥ 0.7)")
        if r.campaign:
            parts.append(f"time/recipient {_ms_per_recipient(r)} ms, scale {_scale(r, results[0])} (≤ 1.15)")
            parts.append(f"upload {_upload_rate(r)} rows/s, peak key upload {_peak(r, 0, None)}")
            parts.append(f"peak key run {_peak(r, 1)} (< 500), campaign write units {_write_units(r, phase=1)} (≤ 3)")
            parts.append(f"SQS {_sqs(r)}, 5xx {_server_errors(r)}, duplicates {_duplicates(r)}, USD/M {_usd(r)}")
        lines.append("\n  ".join(str(p) for p in parts))
    return lines
