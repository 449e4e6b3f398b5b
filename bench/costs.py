"""What a recipient costs: DynamoDB write and read units, SQS requests and Lambda invocations, priced."""

from __future__ import annotations

from dataclasses import dataclass

from bench.aws_calls import AwsCallCounter
from bench.campaign_run import PRODUCT, CampaignRun

# us-east-1 on-demand list prices (USD per million), as published by AWS in 2026.
PRICE_WRITE_UNIT = 0.625
PRICE_READ_UNIT = 0.125
PRICE_SQS_REQUEST = 0.40
PRICE_LAMBDA_REQUEST = 0.20
# Calls the local runner makes that Lambda's event source mappings do not bill per recipient.
NOT_BILLED = {"GetQueueAttributes", "GetQueueUrl", "DescribeStream", "GetShardIterator", "GetRecords", "DescribeTable"}


@dataclass
class Units:
    """Per-recipient units of one campaign: both phases, or the one whose index is given (0 the list upload,
    1 the campaign run)."""

    writes: float
    index_writes: float
    reads: float
    sqs: float
    lambdas: float

    @classmethod
    def of(cls, run: CampaignRun, phase: int | None = None) -> Units:
        n, phases = run.recipients, run.phases if phase is None else run.phases[phase : phase + 1]
        return cls(
            writes=sum(p.counts.write_units[PRODUCT] for p in phases) / n,
            index_writes=sum(v for p in phases for (w, *_), v in p.counts.index_units.items() if w == PRODUCT) / n,
            reads=sum(read_units(p.counts) for p in phases) / n,
            sqs=sum(billed(p.counts, "sqs") for p in phases) / n,
            lambdas=sum(sum(p.invocations.values()) for p in phases) / n,
        )

    def cost(self) -> dict[str, float]:
        return {
            "DynamoDB writes": (self.writes + self.index_writes) * PRICE_WRITE_UNIT,
            "DynamoDB reads": self.reads * PRICE_READ_UNIT,
            "SQS requests": self.sqs * PRICE_SQS_REQUEST,
            "Lambda requests": self.lambdas * PRICE_LAMBDA_REQUEST,
        }


def read_units(counts: AwsCallCounter) -> float:
    single = sum(v for (who, _, op), v in counts.calls.items() if who == PRODUCT and op in ("GetItem", "Query"))
    return single + 0.5 * counts.batch_get_keys[PRODUCT]


def billed(counts: AwsCallCounter, service: str) -> int:
    return sum(v for (_, s, op), v in counts.calls.items() if s == service and op not in NOT_BILLED)
