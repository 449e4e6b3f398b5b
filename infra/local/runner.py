"""Local stand-in for Lambda's event source mappings and EventBridge schedules.

Calls the very handler objects of the Chalice app (the module-level functions of app.py, which
Chalice wraps into Lambda-callable `handler(event, context)` objects) with events shaped exactly as
Lambda sends them. Each kind of event source has its module under infra/local/events/ (`sqs`,
`streams`, `schedules`); this module keeps what they share: the lifecycle (`start`/`stop`), the
functions' environment, the functions themselves (name, memory, timeout, from .chalice/config.json),
the invocation, and the idle bookkeeping (`idle`/`wait_idle`).

An invocation runs on its own thread, and the event source waits for it at most the function's
timeout, as Lambda does: past it, the invocation has failed (an SQS batch is not deleted and comes
back after the visibility timeout; a stream batch is retried), even though the thread cannot be
stopped and runs on; what it returns then is ignored.

The runner runs in the caller's process (threads; what LocalStack does by default, so that a
benchmark sees every AWS call), or as its own process:

    python -m infra.local.runner --env-file runner.env.json --endpoint-url http://127.0.0.1:5000 \\
        [--app-dir DIR --app-module app --template T --config C --prefix P --stage local \\
         --status-file runner.status.json --checkpoint-file runner.checkpoints.json]

`LocalStack(runner_process=True)` starts it so (and `kill_runner()`/`restart_runner()` kill it with
SIGKILL and start a fresh one). The env file is a JSON object: the functions' environment, applied
before the app is imported. The status file, rewritten every half second, tells the parent the
process is up, its counters, and whether it is idle when asked (`request_idle_check`); the
checkpoint file keeps the stream positions across runs.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType, ModuleType, TracebackType
from typing import Any, Self

import boto3
from botocore.config import Config as BotoConfig
from chalice.app import BaseEventSourceConfig
from chalice.config import Config as ChaliceConfig
from chalice.constants import DEFAULT_LAMBDA_MEMORY_SIZE, DEFAULT_LAMBDA_TIMEOUT

from infra.local.events.base import (
    ACCOUNT_ID,
    EventSource,
    EventSourceError,
    Function,
    Invocation,
    LambdaContext,
    Poller,
)
from infra.local.events.scheduler import ScheduleTargets
from infra.local.events.schedules import ScheduleEventSource
from infra.local.events.sqs import DEFAULT_SQS_CONCURRENCY, SQS_MAX_BATCH, SqsEventSource
from infra.local.events.streams import Checkpoints, StreamEventSource, records_as_sent
from infra.local.resources import DEFAULT_PREFIX, DEFAULT_TEMPLATE_PATH, REPO_ROOT, load_template

logger = logging.getLogger(__name__)

__all__ = [
    "ACCOUNT_ID",
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_SQS_CONCURRENCY",
    "EVENT_SOURCES",
    "SQS_MAX_BATCH",
    "EventSourceError",
    "LambdaContext",
    "LocalEventRunner",
    "main",
    "read_env_file",
    "read_status",
    "request_idle_check",
    "write_env_file",
]

DEFAULT_CONFIG_PATH = REPO_ROOT / ".chalice" / "config.json"
# The event sources run locally, by the type of the app's event source config (first match wins).
EVENT_SOURCES: tuple[type[EventSource], ...] = (SqsEventSource, StreamEventSource, ScheduleEventSource)
STATUS_INTERVAL_SECONDS = 0.5
# While someone waits for the runner process to be idle (see `request_idle_check`), it checks this often.
IDLE_CHECK_SECONDS = 0.1
IDLE_REQUEST_TTL_SECONDS = 2.0


class LocalEventRunner:
    def __init__(
        self,
        app_module: ModuleType,
        env: Mapping[str, str],
        endpoint_url: str | None,
        region: str = "us-east-1",
        schedule_tick_seconds: float = 1.0,
        stream_poll_seconds: float = 0.2,
        sqs_wait_seconds: int = 1,
        stage: str = "local",
        *,
        template_path: Path = DEFAULT_TEMPLATE_PATH,
        config_path: Path = DEFAULT_CONFIG_PATH,
        prefix: str = DEFAULT_PREFIX,
        idle_polls: int = 2,
        checkpoint_path: Path | None = None,
    ) -> None:
        self.app_module = app_module
        self.env = dict(env)
        self.endpoint_url = endpoint_url
        self.region = region
        self.schedule_tick_seconds = schedule_tick_seconds
        self.stream_poll_seconds = stream_poll_seconds
        self.sqs_wait_seconds = sqs_wait_seconds
        self.stage = stage
        self.template_path = Path(template_path)
        self.config_path = Path(config_path)
        self.prefix = prefix
        self.idle_polls = idle_polls
        self.checkpoints = Checkpoints(checkpoint_path) if checkpoint_path is not None else None

        self.template = load_template(self.template_path)
        with self.config_path.open(encoding="utf-8") as f:
            self._config_from_disk: dict[str, Any] = json.load(f)

        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sources: list[EventSource] = []
        self._pollers: list[Poller] = []
        self._invocations: dict[str, int] = {}
        self._errors: dict[str, int] = {}
        self._timeouts: dict[str, int] = {}
        self._in_flight = 0
        # Invocations past their timeout whose threads still run.
        self._overdue: set[threading.Thread] = set()
        # Bumped when an SQS/stream invocation ends (`_work_seq`) or any invocation ends (`_any_seq`).
        self._work_seq = 0
        self._any_seq = 0
        self._saved_environ: dict[str, str | None] = {}
        self._started = False
        self._sqs: Any = None
        self._dynamodb: Any = None
        self._streams: Any = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._apply_environment()
        sources = [self._event_source(config) for config in self.app_module.app.event_sources]
        self._sources = [source for source in sources if source is not None]
        pool = 4 + sum(source.connections() for source in self._sources)
        boto_config = BotoConfig(max_pool_connections=pool, retries={"mode": "standard", "max_attempts": 5})
        kwargs: dict[str, Any] = {"region_name": self.region, "config": boto_config}
        self._sqs = boto3.client("sqs", endpoint_url=self.endpoint_url, **kwargs)
        self._dynamodb = boto3.client("dynamodb", endpoint_url=self.endpoint_url, **kwargs)
        # An explicit endpoint: botocore's account-based endpoints for Streams are not routed by moto.
        self._streams = boto3.client("dynamodbstreams", endpoint_url=self.endpoint_url, **kwargs)
        records_as_sent(self._streams)
        self.stopping.clear()
        try:
            for source in self._sources:
                source.start()
            if self.env.get("SCHEDULE_GROUP"):  # EventBridge Scheduler's one-time schedules
                ScheduleTargets(self, self.env["SCHEDULE_GROUP"]).start()
        except Exception:
            self.stop()
            raise
        self._started = True
        logger.info("local event runner started %d threads", len(self._threads))

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            logger.warning("event runner threads still running after %.1fs: %s", timeout, alive)
        with self._lock:
            overdue = sorted(t.name for t in self._overdue if t.is_alive())
        if overdue:
            logger.warning("invocations past their timeout still running: %s", overdue)
        self._threads = []
        self._pollers = []
        self._sources = []
        self._restore_environment()
        self._started = False

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _event_source(self, config: BaseEventSourceConfig) -> EventSource | None:
        for source_type in EVENT_SOURCES:
            if isinstance(config, source_type.config_type):
                return source_type(self, config)
        logger.warning("event source %s (%s) is not run locally", config.name, type(config).__name__)
        return None

    # -- observability ---------------------------------------------------------------------------

    @property
    def aws_clients(self) -> list[Any]:
        """The clients the runner polls with (what Lambda's event source mappings would call)."""
        return [client for client in (self._sqs, self._dynamodb, self._streams) if client is not None]

    @property
    def invocations(self) -> dict[str, int]:
        with self._lock:
            return dict(self._invocations)

    @property
    def errors(self) -> dict[str, int]:
        """Failed invocations per function: raised, or ran past the timeout (also in `timeouts`)."""
        with self._lock:
            return dict(self._errors)

    @property
    def timeouts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._timeouts)

    def idle(self) -> bool:
        """True when nothing runs and the last `idle_polls` polls of every queue and stream were empty.

        Empty polls count only when they began after the last invocation that could have produced
        work for them ended; queues are also asked whether they hold visible or delayed messages.
        Messages waiting out a visibility timeout after a failure do not count. An invocation past
        its timeout counts as running until its thread ends.
        """
        with self._lock:
            if self._in_flight:
                return False
            for poller in self._pollers:
                since = self._any_seq if poller.source == "stream" else self._work_seq
                if poller.streak_since != since or poller.empty_streak < self.idle_polls:
                    return False
            queue_urls = [url for source in self._sources for url in source.queue_urls()]
        for url in queue_urls:
            attributes = self._sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesDelayed"],
            )["Attributes"]
            if any(int(value) for value in attributes.values()):
                return False
        return True

    def wait_idle(self, timeout: float = 60.0, poll_seconds: float = 0.1) -> bool:
        """Block until `idle()` (True) or until `timeout` seconds have passed (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(poll_seconds)
        return self.idle()

    # -- what event sources use ------------------------------------------------------------------

    @property
    def sqs(self) -> Any:
        return self._sqs

    @property
    def dynamodb(self) -> Any:
        return self._dynamodb

    @property
    def streams(self) -> Any:
        return self._streams

    def chalice_config(self, function_name: str) -> ChaliceConfig:
        """The stage's settings of one function (.chalice/config.json)."""
        return ChaliceConfig(self.stage, function_name, config_from_disk=self._config_from_disk)

    def function(self, source: BaseEventSourceConfig) -> Function:
        """The Lambda function an event source invokes, as deployed for the stage."""
        module_name, _, attribute = source.handler_string.rpartition(".")
        if module_name in ("", "app", self.app_module.__name__):
            module = self.app_module
        else:
            module = importlib.import_module(module_name)  # a blueprint's module
        handler = getattr(module, attribute)
        config = self.chalice_config(source.name)
        app_name = config.app_name or self.app_module.app.app_name
        full_name = f"{app_name}-{self.stage}-{source.name}"
        return Function(
            name=source.name,
            handler=handler,
            full_name=full_name,
            arn=f"arn:aws:lambda:{self.region}:{ACCOUNT_ID}:function:{full_name}",
            memory_mb=int(config.lambda_memory_size or DEFAULT_LAMBDA_MEMORY_SIZE),
            timeout_seconds=int(config.lambda_timeout or DEFAULT_LAMBDA_TIMEOUT),
            reserved_concurrency=config.reserved_concurrency,
        )

    def invoke(self, function: Function, event: dict[str, Any], *, work: bool) -> Invocation:
        """Call the handler like Lambda does, waiting at most the function's timeout.

        `work`: the invocation may leave work for the SQS and stream loops (see `idle`).
        """
        context = function.context()
        done = threading.Event()
        outcome: dict[str, Any] = {}

        def run() -> None:
            try:
                outcome["result"] = function.handler(event, context)
            except Exception as exc:
                outcome["error"] = exc
            finally:
                with self._lock:
                    self._in_flight -= 1
                    self._any_seq += 1
                    if work:
                        self._work_seq += 1
                    self._overdue.discard(threading.current_thread())
                done.set()

        thread = threading.Thread(target=run, name=f"lambda-{function.name}-{context.aws_request_id}", daemon=True)
        with self._lock:
            self._in_flight += 1
            self._invocations[function.name] = self._invocations.get(function.name, 0) + 1
        thread.start()
        if not done.wait(function.timeout_seconds):
            with self._lock:
                if not done.is_set():
                    self._overdue.add(thread)
                self._errors[function.name] = self._errors.get(function.name, 0) + 1
                self._timeouts[function.name] = self._timeouts.get(function.name, 0) + 1
            logger.error(
                "%s: task timed out after %d seconds (request %s); its result will be ignored",
                function.name,
                function.timeout_seconds,
                context.aws_request_id,
            )
            return Invocation(ok=False, timed_out=True)
        if "error" in outcome:
            logger.error("%s failed (request %s)", function.name, context.aws_request_id, exc_info=outcome["error"])
            with self._lock:
                self._errors[function.name] = self._errors.get(function.name, 0) + 1
            return Invocation(ok=False)
        return Invocation(ok=True, result=outcome.get("result"))

    def new_poller(self, source: str) -> Poller:
        """Idle bookkeeping for one more poll loop ("stream", or "sqs" for a loop fed by invocations)."""
        poller = Poller(source=source)
        with self._lock:
            self._pollers.append(poller)
        return poller

    def poll_started(self, poller: Poller) -> int:
        """Call before a poll; hand the value to `poll_result`."""
        with self._lock:
            return self._any_seq if poller.source == "stream" else self._work_seq

    def poll_result(self, poller: Poller, found: bool, started_at: int) -> None:
        with self._lock:
            if found:
                poller.empty_streak = 0
                poller.streak_since = -1
                return
            if poller.streak_since != started_at:
                poller.streak_since = started_at
                poller.empty_streak = 0
            poller.empty_streak += 1

    def spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        """Run a poll loop on a thread of the runner; `stop()` joins it."""
        thread = threading.Thread(target=self._guarded, args=(target, *args), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _guarded(self, target: Callable[..., None], *args: Any) -> None:
        """A poll loop never dies: an unexpected error is logged and the loop starts over."""
        while not self.stopping.is_set():
            try:
                target(*args)
                return
            except Exception:
                logger.exception("event runner loop %s crashed; restarting", threading.current_thread().name)
                self.stopping.wait(1.0)

    # -- environment -----------------------------------------------------------------------------

    def _apply_environment(self) -> None:
        """The functions' environment: config.json's (global + stage), then `env`, like Lambda's."""
        environment = dict(self.chalice_config("").environment_variables or {})
        environment.update(self.env)
        environment.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
        for key, value in environment.items():
            self._saved_environ.setdefault(key, os.environ.get(key))
            os.environ[key] = str(value)

    def _restore_environment(self) -> None:
        for key, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_environ = {}


# -- the runner as its own process ------------------------------------------------------------------


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    """The functions' environment for `python -m infra.local.runner --env-file` (readable by its owner only)."""
    path = Path(path)
    temporary = path.with_name(f"{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as f:
        json.dump(dict(env), f)
    os.replace(temporary, path)


def read_env_file(path: Path) -> dict[str, str]:
    loaded = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a JSON object of environment variables")
    return {str(key): str(value) for key, value in loaded.items()}


def read_status(path: Path) -> dict[str, Any] | None:
    """What a runner process last wrote to its status file (None before it is up)."""
    try:
        status = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None


def idle_request_path(status_path: Path) -> Path:
    return Path(status_path).with_name(f"{Path(status_path).name}.idle-request")


def request_idle_check(status_path: Path) -> float:
    """Ask the runner process writing `status_path` to check `idle()` (for the next 2 seconds).

    Checking costs SQS calls (see `LocalEventRunner.idle`), so the process checks only when asked,
    every 0.1 s, as `wait_idle` does in-process. Returns the time asked: a status whose `idle_at`
    is later answers.
    """
    asked_at = time.time()
    idle_request_path(status_path).write_text(str(asked_at), encoding="utf-8")
    return asked_at


def _idle_requested(status_path: Path) -> bool:
    try:
        return time.time() - idle_request_path(status_path).stat().st_mtime < IDLE_REQUEST_TTL_SECONDS
    except OSError:
        return False


def _write_status(path: Path, runner: LocalEventRunner, started_at: float, *, check_idle: bool) -> None:
    """pid, counters, and, when asked, whether the runner is idle (`idle`, as of `idle_at`)."""
    status: dict[str, Any] = {
        "pid": os.getpid(),
        "started_at": started_at,
        "time": time.time(),
        "idle": None,
        "idle_at": None,
        "invocations": runner.invocations,
        "errors": runner.errors,
        "timeouts": runner.timeouts,
    }
    if check_idle:
        checked_at = time.time()
        status["idle"] = runner.idle()
        status["idle_at"] = checked_at
    temporary = path.with_name(f"{path.name}.tmp")
    temporary.write_text(json.dumps(status), encoding="utf-8")
    os.replace(temporary, path)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m infra.local.runner",
        description="Run the local event runner (Lambda's event source mappings and schedules) as a process.",
    )
    parser.add_argument("--env-file", type=Path, help="JSON object: the functions' environment")
    parser.add_argument("--endpoint-url", default=None, help="the local AWS; default: AWS_ENDPOINT_URL of the env")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--stage", default="local")
    parser.add_argument("--app-dir", type=Path, default=REPO_ROOT, help="the directory the app module is in")
    parser.add_argument("--app-module", default="app")
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE_PATH)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    parser.add_argument("--prefix", default=DEFAULT_PREFIX)
    parser.add_argument("--schedule-tick", type=float, default=1.0, help="seconds between schedule firings")
    parser.add_argument("--stream-poll", type=float, default=0.2, help="seconds between empty stream polls")
    parser.add_argument("--sqs-wait", type=int, default=1, help="ReceiveMessage WaitTimeSeconds")
    parser.add_argument(
        "--status-file", type=Path, default=None, help="rewritten every half second (see request_idle_check)"
    )
    parser.add_argument("--checkpoint-file", type=Path, default=None, help="stream positions, kept across runs")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s")
    for noisy in ("botocore.credentials", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    env = read_env_file(args.env_file) if args.env_file else {}
    os.environ.update(env)  # before the app is imported: its settings may read the environment
    app_dir = str(Path(args.app_dir).resolve())
    if app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    app_module = importlib.import_module(args.app_module)
    runner = LocalEventRunner(
        app_module,
        env,
        args.endpoint_url or env.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL"),
        args.region,
        schedule_tick_seconds=args.schedule_tick,
        stream_poll_seconds=args.stream_poll,
        sqs_wait_seconds=args.sqs_wait,
        stage=args.stage,
        template_path=args.template,
        config_path=args.config,
        prefix=args.prefix,
        checkpoint_path=args.checkpoint_file,
    )
    started_at = time.time()
    runner.start()
    logger.info("event runner process %d up (endpoint %s)", os.getpid(), runner.endpoint_url)
    try:
        written_at = 0.0
        while True:
            if args.status_file is not None:
                asked = _idle_requested(args.status_file)
                if asked or time.monotonic() - written_at >= STATUS_INTERVAL_SECONDS:
                    try:
                        _write_status(args.status_file, runner, started_at, check_idle=asked)
                    except Exception:
                        logger.exception("writing the status file failed")
                    written_at = time.monotonic()
            if stopping.wait(IDLE_CHECK_SECONDS):
                break
    finally:
        runner.stop()
    logger.info("event runner process %d stopped", os.getpid())
    return 0


if __name__ == "__main__":
    sys.exit(main())
