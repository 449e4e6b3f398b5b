"""What the event sources share: the function a source invokes, its Lambda context, an invocation's
outcome, a poll loop's idle bookkeeping, and the `EventSource` base class."""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from chalice.app import BaseEventSourceConfig

if TYPE_CHECKING:
    from infra.local.runner import LocalEventRunner

ACCOUNT_ID = "123456789012"


class EventSourceError(RuntimeError):
    """An event source of the app cannot be mapped to a local resource."""


@dataclass
class LambdaContext:
    """What the Python runtime passes as `context` (the attributes handlers and Powertools read)."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: int
    log_group_name: str
    log_stream_name: str
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    identity: Any = None
    client_context: Any = None
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class Function:
    """One Lambda function of the app, as deployed for a stage."""

    name: str
    handler: Callable[[dict[str, Any], Any], Any]
    full_name: str
    arn: str
    memory_mb: int
    timeout_seconds: int
    reserved_concurrency: int | None

    def context(self) -> LambdaContext:
        day = datetime.now(UTC).strftime("%Y/%m/%d")
        return LambdaContext(
            function_name=self.full_name,
            invoked_function_arn=self.arn,
            memory_limit_in_mb=self.memory_mb,
            timeout_seconds=self.timeout_seconds,
            log_group_name=f"/aws/lambda/{self.full_name}",
            log_stream_name=f"{day}/[$LATEST]{uuid.uuid4().hex}",
        )


@dataclass
class Invocation:
    """How an invocation ended, as the event source mapping sees it."""

    ok: bool
    result: Any = None
    timed_out: bool = False  # ran past the function's timeout: failed, whatever it returns later


@dataclass
class Poller:
    """Idle bookkeeping of one poll loop: consecutive empty polls since the last relevant activity.

    `source` is "stream" for a loop whose work any invocation can produce, else the loop's work comes
    only from SQS and stream invocations (see `LocalEventRunner.idle`).
    """

    source: str
    empty_streak: int = 0
    streak_since: int = -1


class EventSource:
    """One event source of the app, run locally. Subclasses set `config_type` and implement `start`."""

    config_type: ClassVar[type[BaseEventSourceConfig]]

    def __init__(self, runner: LocalEventRunner, config: BaseEventSourceConfig) -> None:
        self.runner = runner
        self.config = config

    def connections(self) -> int:
        """HTTP connections its loops may hold at once (sizes the runner's connection pools)."""
        return 1

    def start(self) -> None:
        """Resolve the resources it reads and start its loops with `runner.spawn`."""
        raise NotImplementedError

    def queue_urls(self) -> list[str]:
        """Queues `LocalEventRunner.idle` asks for visible or delayed messages."""
        return []


def lambda_attribute_value(value: Any) -> Any:
    """Attribute values as JSON: binary values base64-encoded (boto3 hands them over as bytes)."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {k: lambda_attribute_value(v) for k, v in value.items()}
    if isinstance(value, list | set | tuple):
        return [lambda_attribute_value(v) for v in value]
    return value
