"""`make bench`: a campaign on the local stack, measured against the floor of the same local AWS.

    python -m bench.campaign_bench --recipients 10000 --repeats 3 # make bench
    python -m bench.campaign_bench --recipients 10000,100000      # make bench-scale
    python -m bench.campaign_bench --recipients 1000 --floor-only --output /tmp/floor.md

For each size: the floor on a fresh moto server (bench/floor.py), then the campaign on a fresh local
stack (bench/campaign_run.py), then the floor again; `--repeats N` alternates N campaigns with N + 1
floors and reports the median of the campaigns' ratios (decision 54). Writes docs/benchmarks.md
(bench/report.py) and prints the headline figures, each with the command that produced it.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from bench.campaign_run import run_campaign_in_fresh_process
from bench.floor import dispatch_concurrency, run_floor
from bench.report import Settings, SizeResult, keep_marked_sections, report, summary
from infra.local.client import generated_recipients

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"

cli = typer.Typer(add_completion=False)


def parse_sizes(values: list[str]) -> list[int]:
    """`10000,100000` or a repeated option; `_` allowed as a thousands separator."""
    sizes = [int(part.replace("_", "")) for value in values for part in value.split(",") if part.strip()]
    if not sizes or any(size <= 0 for size in sizes):
        raise typer.BadParameter("give one or more positive sizes, e.g. --recipients 10000,100000")
    return sizes


def default_timeout(recipients: int) -> float:
    """Generous: the local stack has run at ~50 recipients/s, the floor at ~80."""
    return 600 + recipients / 10


@cli.command()
def main(
    recipients: list[str] = typer.Option(["10000"], help="List sizes, e.g. 10000,100000; each in a fresh stack."),
    rate: float = typer.Option(1000, help="Campaign rate (messages/s); high, so throughput is the limit."),
    transient_failure_rate: float = typer.Option(0.02, help="Share of sends the fake provider fails transiently."),
    output: Path = typer.Option(DEFAULT_OUTPUT, help="Where to write the report."),
    timeout: float | None = typer.Option(None, help="Seconds per run before giving up; default 600 + size/10."),
    floor_only: bool = typer.Option(False, help="Measure only the floor (e.g. while the product is broken)."),
    no_floor: bool = typer.Option(False, help="Measure only the campaign (its time per recipient at a size)."),
    repeats: int = typer.Option(
        1, min=1, help="Campaigns per size, each between two floors; the ratio reported is their median."
    ),
) -> None:
    sizes = parse_sizes(recipients)
    concurrency = dispatch_concurrency()
    settings = Settings(command=_command(), rate=rate, transient_failure_rate=transient_failure_rate,
                        concurrency=concurrency, repeats=repeats)  # fmt: skip
    results = []
    for size in sizes:
        rows = generated_recipients(size)
        if len({row["phone"] for row in rows}) != size:
            raise typer.BadParameter(f"the generator cannot make {size:,} distinct recipients")
        limit = timeout or default_timeout(size)
        result = SizeResult(size)
        results.append(result)
        if not no_floor:
            _say(f"{size:,} recipients: floor ({concurrency} dispatch threads) ...")
            result.floors.append(run_floor(rows, rate=rate, concurrency=concurrency, timeout=limit))
            _say(f"  floor {result.floors[-1].rate:,.0f} recipients/s")
        if floor_only:
            continue
        for repeat in range(1, repeats + 1):
            _say(f"{size:,} recipients: campaign {repeat} of {repeats} on a fresh local stack ...")
            try:
                result.campaigns.append(
                    run_campaign_in_fresh_process(
                        rows, rate=rate, transient_failure_rate=transient_failure_rate, timeout=limit
                    )
                )
            except Exception as exc:
                # Nothing is written: a failed run must not replace the figures of the last good one.
                _say("\n".join(summary(results, settings)))
                raise SystemExit(f"the campaign run at {size:,} recipients failed: {exc!r}") from exc
            _say(f"  campaign {result.campaigns[-1].rate:,.0f} recipients/s")
            if no_floor:
                continue
            # The machine is shared: a floor on each side of each campaign shows how much it drifted.
            result.floors.append(run_floor(rows, rate=rate, concurrency=concurrency, timeout=limit))
            _say(f"  floor {result.floors[-1].rate:,.0f} recipients/s")
    previous = output.read_text(encoding="utf-8") if output.exists() else ""
    output.write_text(keep_marked_sections(report(results, settings), previous), encoding="utf-8")
    typer.echo("\n".join(summary(results, settings)))
    typer.echo(f"wrote {output}")


def _command() -> str:
    return shlex.join(["python", "-m", "bench.campaign_bench", *sys.argv[1:]])


def _say(message: str) -> None:
    typer.echo(message, err=True)


if __name__ == "__main__":
    cli()
