"""The local stack: moto's server as AWS, `chalice local` as API Gateway, the event runner as Lambda's
event source mappings and EventBridge, and the fake provider, all in one process tree.

    python -m infra.local.stack      # make dev: start, create an account, print how to call the API

Every subprocess runs in its own process group with its output in a log file under `log_dir`;
`stop()` (also on Ctrl-C, SIGTERM and interpreter exit) terminates them all.

The event runner runs in this process by default (`stack.runner`, so a benchmark sees its AWS calls).
`LocalStack(runner_process=True)` runs it as its own process (`python -m infra.local.runner`), which
`kill_runner()` ends with SIGKILL and `restart_runner()` replaces; `wait_runner_idle()` and
`runner_status()` work in both modes.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import json
import logging
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, ModuleType, TracebackType
from typing import IO, Any, Self

import boto3
import httpx
from chalice.config import Config as ChaliceConfig

from infra.local.fake_provider_faults import add_fault_arguments
from infra.local.resources import DEFAULT_PREFIX, DEFAULT_TEMPLATE_PATH, REPO_ROOT, create_resources
from infra.local.runner import (
    DEFAULT_CONFIG_PATH,
    LocalEventRunner,
    read_status,
    request_idle_check,
    write_env_file,
)

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
REGION = "us-east-1"
LOCAL_CREDENTIAL = "local"  # the fake provider's API key and secret on the local stack
# The Vonage application voice calls are made as on the local stack, and its secrets' names.
VOICE_APPLICATION = "local-voice-application"
VOICE_KEY_SECRET = "local/vonage/application-private-key"
VOICE_SIGNATURE_SECRET = "local/vonage/signature-secret"
STAGE = "local"
STOP_GRACE_SECONDS = 5.0
START_TIMEOUT_SECONDS = 60.0


class StackStartError(RuntimeError):
    """A part of the stack did not come up; the message ends with the tail of its log."""


@dataclass
class ManagedProcess:
    """A subprocess in its own process group, its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM to the whole group, then SIGKILL after `grace` seconds."""
        if self.alive:
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                logger.warning("%s did not stop within %.0fs; killing it", self.name, grace)
        # Children of the leader may outlive it: always sweep the group.
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(grace)
        self.log_file.close()

    def kill(self) -> None:
        """SIGKILL to the whole group at once, as a crash ends a process: nothing runs its cleanup."""
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(STOP_GRACE_SECONDS)
        self.log_file.close()

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signum)


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def spawn(
    name: str,
    args: Sequence[str],
    log_dir: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ManagedProcess:
    log_path = log_dir / f"{name}.log"
    log_file = log_path.open("ab")
    try:
        popen = subprocess.Popen(
            list(args),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,  # its own process group: stop() signals the group
        )
    except BaseException:
        log_file.close()
        raise
    logger.debug("started %s (pid %d): %s", name, popen.pid, shlex.join(args))
    return ManagedProcess(name=name, popen=popen, log_path=log_path, log_file=log_file)


def wait_http(
    url: str,
    process: ManagedProcess,
    timeout: float = START_TIMEOUT_SECONDS,
    ready: Callable[[httpx.Response], bool] = lambda response: True,
) -> None:
    """Wait until `url` answers (and `ready(response)`); fail early when the process exits."""
    deadline = time.monotonic() + timeout
    last_error = "no answer"
    while time.monotonic() < deadline:
        if not process.alive:
            raise StackStartError(
                f"{process.name} exited with {process.popen.returncode} before answering {url}; "
                f"log {process.log_path}:\n{process.tail()}"
            )
        try:
            response = httpx.get(url, timeout=2.0)
            if ready(response):
                return
            last_error = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last_error = repr(exc)
        time.sleep(0.1)
    raise StackStartError(
        f"{process.name} did not answer {url} within {timeout:.0f}s ({last_error}); "
        f"log {process.log_path}:\n{process.tail()}"
    )


def start_moto(log_dir: Path, port: int | None = None, timeout: float = START_TIMEOUT_SECONDS) -> ManagedProcess:
    """moto's server on HOST:port; its URL is `moto_url(port)`."""
    port = port or free_port()
    process = spawn(
        "moto", [sys.executable, "-m", "infra.local.moto_server", "-H", HOST, "-p", str(port)], log_dir, env=_aws_env()
    )
    try:
        wait_http(f"http://{HOST}:{port}/moto-api/", process, timeout)
    except BaseException:
        process.stop()
        raise
    return process


def spawn_runner(
    log_dir: Path,
    env: Mapping[str, str],
    function_env: Mapping[str, str],
    endpoint_url: str,
    *,
    app_dir: Path = REPO_ROOT,
    app_module: str = "app",
    template_path: Path = DEFAULT_TEMPLATE_PATH,
    config_path: Path = DEFAULT_CONFIG_PATH,
    prefix: str = DEFAULT_PREFIX,
    stage: str = STAGE,
    schedule_tick_seconds: float = 1.0,
    extra_args: Sequence[str] = (),
    timeout: float = START_TIMEOUT_SECONDS,
) -> ManagedProcess:
    """`python -m infra.local.runner` in its own process group, returned once it polls.

    `env` is the process's environment, `function_env` the functions' (written to an env file in
    `log_dir`). Its status file is `runner_status_path(log_dir)`; its stream positions are kept in
    `log_dir`, so that a runner started again in the same `log_dir` resumes them.
    """
    env_path = log_dir / "runner.env.json"
    write_env_file(env_path, function_env)
    status_path = runner_status_path(log_dir)
    status_path.unlink(missing_ok=True)
    args = [
        sys.executable, "-m", "infra.local.runner",
        "--env-file", str(env_path),
        "--endpoint-url", endpoint_url,
        "--region", REGION,
        "--stage", stage,
        "--app-dir", str(app_dir),
        "--app-module", app_module,
        "--template", str(template_path),
        "--config", str(config_path),
        "--prefix", prefix,
        "--schedule-tick", str(schedule_tick_seconds),
        "--status-file", str(status_path),
        "--checkpoint-file", str(log_dir / "runner.checkpoints.json"),
        *extra_args,
    ]  # fmt: skip
    # cwd: where the `infra` package is (the app may be elsewhere: --app-dir).
    process = spawn("event_runner", args, log_dir, env=env, cwd=REPO_ROOT)
    deadline = time.monotonic() + timeout
    try:
        while (status := read_status(status_path)) is None or status.get("pid") != process.popen.pid:
            if not process.alive:
                raise StackStartError(
                    f"the event runner exited with {process.popen.returncode} before polling; "
                    f"log {process.log_path}:\n{process.tail()}"
                )
            if time.monotonic() > deadline:
                raise StackStartError(
                    f"the event runner did not start within {timeout:.0f}s; log {process.log_path}:\n{process.tail()}"
                )
            time.sleep(0.1)
    except BaseException:
        process.stop()
        raise
    return process


def runner_status_path(log_dir: Path) -> Path:
    return log_dir / "runner.status.json"


def runner_process_status(process: ManagedProcess, log_dir: Path) -> dict[str, Any] | None:
    """What a runner process started by `spawn_runner` last reported (None unless it is up)."""
    if not process.alive:
        return None
    status = read_status(runner_status_path(log_dir))
    return status if status is not None and status.get("pid") == process.popen.pid else None


def wait_runner_process_idle(process: ManagedProcess, log_dir: Path, timeout: float = 60.0) -> bool:
    """Until a runner process started by `spawn_runner` is idle (True), or False after `timeout`."""
    deadline = time.monotonic() + timeout
    since = time.time()  # an answer checked before the call does not count
    while time.monotonic() < deadline:
        request_idle_check(runner_status_path(log_dir))
        status = runner_process_status(process, log_dir)
        if status is not None and status.get("idle") and float(status.get("idle_at") or 0) >= since:
            return True
        time.sleep(0.1)
    return False


def chalice_command() -> list[str]:
    """The `chalice` CLI of this interpreter (its script, or the same entry point through -c)."""
    script = Path(sys.executable).with_name("chalice")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from chalice.cli import main; sys.exit(main())"]


def _aws_env() -> dict[str, str]:
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    }


class LocalStack:
    def __init__(
        self,
        *,
        provider_rate_limit: float = 500,
        provider_transient_failure_rate: float = 0.02,
        seed: int = 1,
        schedule_tick_seconds: float = 1.0,
        api_port: int | None = None,
        provider_port: int | None = None,
        moto_port: int | None = None,
        admin_token: str | None = None,
        provider_status_webhook_path: str | None = None,
        provider_latency_ms: int = 0,
        provider_dedup_client_ref: bool = False,
        provider_missing_uuid_rate: float = 0.0,
        provider_timeout_after_accept_rate: float = 0.0,
        provider_timeout_after_accept_ms: int = 30_000,
        provider_fail_statuses: Mapping[str, float] | None = None,
        provider_extra_args: Sequence[str] = (),
        provider_base_url: str | None = None,
        log_dir: Path | None = None,
        keep_logs: bool = False,
        api_in_process: bool = False,
        runner_process: bool = False,
        repo_root: Path = REPO_ROOT,
        template_path: Path = DEFAULT_TEMPLATE_PATH,
        config_path: Path = DEFAULT_CONFIG_PATH,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self.provider_rate_limit = provider_rate_limit
        self.provider_transient_failure_rate = provider_transient_failure_rate
        self.seed = seed
        self.schedule_tick_seconds = schedule_tick_seconds
        self.provider_status_webhook_path = provider_status_webhook_path
        self.provider_latency_ms = provider_latency_ms
        self.provider_dedup_client_ref = provider_dedup_client_ref
        self.provider_missing_uuid_rate = provider_missing_uuid_rate
        self.provider_timeout_after_accept_rate = provider_timeout_after_accept_rate
        self.provider_timeout_after_accept_ms = provider_timeout_after_accept_ms
        self.provider_fail_statuses = dict(provider_fail_statuses or {})
        self.provider_extra_args = list(provider_extra_args)
        # A provider run elsewhere (a real one, or a mock): no fake provider is started, and the adapters
        # talk to this base URL with VONAGE_API_KEY / VONAGE_API_SECRET from the environment.
        self.provider_base_url = provider_base_url.rstrip("/") if provider_base_url else None
        self.repo_root = Path(repo_root)
        self.template_path = Path(template_path)
        self.config_path = Path(config_path)
        self.prefix = prefix
        self.admin_token = admin_token or secrets.token_urlsafe(24)
        self._ports = {"api": api_port, "provider": provider_port, "moto": moto_port}
        self._own_log_dir = log_dir is None
        self._keep_logs = keep_logs
        # In-process API (chalice's local server in a thread): lets a benchmark see every AWS call.
        self.api_in_process = api_in_process
        self._api_server: Any = None
        # The event runner as its own process (`python -m infra.local.runner`), which `kill_runner()`
        # can SIGKILL; by default it runs in this process (`self.runner`), where a benchmark sees its calls.
        self.runner_process = runner_process
        self._runner_process: ManagedProcess | None = None
        self._runner_env: dict[str, str] = {}
        self.log_dir = Path(log_dir) if log_dir is not None else Path(tempfile.mkdtemp(prefix="bulk-local-"))
        self.log_dir.mkdir(parents=True, exist_ok=True)

        self.api_url = ""
        # The Vonage application made for this run (`_voice_application`), given to the fake provider.
        self._public_key_file: Path | None = None
        self._signature_secret = ""
        self.provider_url = ""
        self.aws_endpoint_url = ""
        self.env: dict[str, str] = {}
        self.resource_env: dict[str, str] = {}
        self.runner: LocalEventRunner | None = None
        self.app_module: ModuleType | None = None
        self._processes: list[ManagedProcess] = []
        self._saved_environ: dict[str, str | None] = {}
        self._stop_lock = threading.Lock()
        self._running = False
        self._sigterm_installed = False

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._running:
            return self
        self._running = True
        atexit.register(self.stop)
        self._exit_on_sigterm()
        try:
            self._start()
        except BaseException:  # KeyboardInterrupt included: leave nothing behind but the logs
            self._keep_logs = True
            self.stop()
            raise
        return self

    def _start(self) -> None:
        ports = {name: port or free_port() for name, port in self._ports.items()}
        self.aws_endpoint_url = f"http://{HOST}:{ports['moto']}"
        self.provider_url = f"http://{HOST}:{ports['provider']}"
        self.api_url = f"http://{HOST}:{ports['api']}"

        self._processes.append(start_moto(self.log_dir, ports["moto"]))
        self._apply_environment(self._aws_variables())
        self.resource_env = create_resources(
            self.template_path, self.prefix, endpoint_url=self.aws_endpoint_url, region=REGION
        )

        if self.provider_base_url:
            self.provider_url = self.provider_base_url
        else:
            self._voice_application()
            provider_args = self._provider_args(ports["provider"])
            provider = spawn("fake_provider", provider_args, self.log_dir, cwd=self.repo_root)
            self._processes.append(provider)
            wait_http(f"{self.provider_url}/health", provider, ready=lambda r: r.status_code == 200)

        overrides = self._stack_variables()
        self.env = {**os.environ, **overrides}
        if not self.api_in_process:
            self._spawn_chalice_local(ports["api"])
        self._apply_environment(overrides)
        self.app_module = self._import_app()
        if self.api_in_process:
            self._serve_api_in_process(ports["api"])
        self._runner_env = overrides
        self._start_runner()
        logger.info("local stack up: api %s, aws %s, provider %s", self.api_url, self.aws_endpoint_url,
                    self.provider_url)  # fmt: skip

    # -- the event runner ------------------------------------------------------------------------

    def _start_runner(self) -> None:
        if self.runner_process:
            self._spawn_runner()
            return
        assert self.app_module is not None
        self.runner = LocalEventRunner(
            self.app_module,
            self._runner_env,
            self.aws_endpoint_url,
            REGION,
            schedule_tick_seconds=self.schedule_tick_seconds,
            stage=STAGE,
            template_path=self.template_path,
            config_path=self.config_path,
            prefix=self.prefix,
        )
        self.runner.start()

    def _spawn_runner(self) -> None:
        self._runner_process = spawn_runner(
            self.log_dir,
            self.env,
            self._runner_env,
            self.aws_endpoint_url,
            app_dir=self.repo_root,
            template_path=self.template_path,
            config_path=self.config_path,
            prefix=self.prefix,
            schedule_tick_seconds=self.schedule_tick_seconds,
        )

    def kill_runner(self) -> None:
        """SIGKILL to the event runner's process group, mid-whatever (needs `runner_process=True`).

        What it received stays in flight: SQS messages come back after their visibility timeout,
        stream records after the last checkpoint are read again by the next runner.
        """
        if not self.runner_process:
            raise RuntimeError("kill_runner() needs LocalStack(runner_process=True): the runner runs in this process")
        if self._runner_process is not None:
            self._runner_process.kill()
            self._runner_process = None

    def restart_runner(self) -> None:
        """A fresh event runner against the same moto, API and provider (stopping the running one first).

        In a process (`runner_process=True`) it resumes the streams at their checkpoints; in this
        process the new runner reads the streams from the start again.
        """
        if self._runner_process is not None:
            self._runner_process.stop()
            self._runner_process = None
        if self.runner is not None:
            self.runner.stop()
            self.runner = None
        self._start_runner()

    def runner_status(self) -> dict[str, Any] | None:
        """The runner process's last status (pid, idle, invocations, errors, timeouts), if it is up."""
        if self._runner_process is None:
            return None
        return runner_process_status(self._runner_process, self.log_dir)

    def wait_runner_idle(self, timeout: float = 60.0) -> bool:
        """Until the event runner (in this process or its own) is idle: True, or False after `timeout`."""
        if self.runner is not None:
            return self.runner.wait_idle(timeout)
        if self._runner_process is None:
            return False
        return wait_runner_process_idle(self._runner_process, self.log_dir, timeout)

    def _provider_args(self, port: int) -> list[str]:
        """The fake provider's command line, with this stack's provider settings."""
        provider_args = [
            sys.executable, "-m", "infra.local.fake_provider",
            "--port", str(port),
            "--rate-limit", str(self.provider_rate_limit),
            "--transient-failure-rate", str(self.provider_transient_failure_rate),
            "--seed", str(self.seed),
            "--latency-ms", str(self.provider_latency_ms),
            "--missing-uuid-rate", str(self.provider_missing_uuid_rate),
            "--timeout-after-accept-rate", str(self.provider_timeout_after_accept_rate),
            "--timeout-after-accept-ms", str(self.provider_timeout_after_accept_ms),
            "--fail-statuses", json.dumps(self.provider_fail_statuses),
            "--api-key", LOCAL_CREDENTIAL, "--api-secret", LOCAL_CREDENTIAL,  # the only ones it takes
        ]  # fmt: skip
        if self._public_key_file is not None:
            provider_args += [
                "--voice-public-key-file", str(self._public_key_file),
                "--voice-application-id", VOICE_APPLICATION,
                f"--signature-secret={self._signature_secret}",  # a token may start with "-"
            ]  # fmt: skip
        if self.provider_dedup_client_ref:
            provider_args.append("--dedup-client-ref")
        if self.provider_status_webhook_path:
            provider_args += ["--status-webhook-url", f"{self.api_url}{self.provider_status_webhook_path}"]
        # Recipients' replies (STOP, HELP) go to the API's inbound webhook, signed like the call events.
        provider_args += ["--inbound-webhook-url", f"{self.api_url}/v1/webhooks/vonage/inbound"]
        return provider_args + self.provider_extra_args

    def _voice_application(self) -> None:
        """The Vonage application voice calls are made as (decision 38): a key pair made for this run, its private
        key and the signature secret in the local Secrets Manager, its public key given to the fake provider."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = serialization.Encoding.PEM
        private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
        public = key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo)
        self._public_key_file = self.log_dir / "vonage-application.pub"
        self._public_key_file.write_bytes(public)
        self._signature_secret = secrets.token_urlsafe(32)
        manager = boto3.client("secretsmanager", endpoint_url=self.aws_endpoint_url, region_name=REGION)
        for name, value in ((VOICE_KEY_SECRET, private), (VOICE_SIGNATURE_SECRET, self._signature_secret)):
            manager.create_secret(Name=name, SecretString=value)

    def _spawn_chalice_local(self, port: int) -> None:
        api = spawn(
            "chalice_local",
            [*chalice_command(), "local", "--stage", STAGE, "--host", HOST, "--port", str(port), "--no-autoreload"],
            self.log_dir,
            env=self.env,
            cwd=self.repo_root,
        )
        self._processes.append(api)
        wait_http(f"{self.api_url}/", api)

    def _serve_api_in_process(self, port: int) -> None:
        """chalice's own local server, in a thread of this process."""
        from chalice.cli.factory import CLIFactory
        from chalice.local import create_local_server

        assert self.app_module is not None
        config = CLIFactory(str(self.repo_root)).create_config_obj(chalice_stage_name=STAGE)
        self._api_server = create_local_server(self.app_module.app, config, HOST, port)
        # The socket is bound once the server exists: it answers as soon as the thread runs.
        threading.Thread(target=self._api_server.serve_forever, name="chalice-local", daemon=True).start()

    @property
    def process_ids(self) -> dict[str, int]:
        """The stack's own processes by name (`moto`, `fake_provider`, ...): what a bench measures."""
        return {process.name: process.popen.pid for process in self._processes}

    def stop(self) -> None:
        with self._stop_lock:
            if not self._running:
                return
            self._running = False
            if self._runner_process is not None:
                try:
                    self._runner_process.stop()
                except Exception:
                    logger.exception("stopping the event runner process failed")
                self._runner_process = None
            if self.runner is not None:
                try:
                    self.runner.stop()
                except Exception:
                    logger.exception("stopping the event runner failed")
                self.runner = None
            if self._api_server is not None:
                self._api_server.server.shutdown()
                self._api_server = None
            # The API and the provider first, AWS last: nothing calls a stopped moto.
            for process in reversed(self._processes):
                try:
                    process.stop()
                except Exception:
                    logger.exception("stopping %s failed", process.name)
            self._processes = []
            self._restore_environment()
            atexit.unregister(self.stop)
            if self._sigterm_installed and threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                self._sigterm_installed = False
            if self._own_log_dir and not self._keep_logs:
                _remove_tree(self.log_dir)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _exit_on_sigterm(self) -> None:
        """Unhandled, SIGTERM ends Python without running atexit: unwind instead, unless already handled."""
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return

        def exit_cleanly(signum: int, frame: FrameType | None) -> None:
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, exit_cleanly)
        self._sigterm_installed = True

    # -- environment -----------------------------------------------------------------------------

    def _stack_variables(self) -> dict[str, str]:
        """What the functions see on top of os.environ: config.json's stage env, resources, endpoints."""
        with self.config_path.open(encoding="utf-8") as f:
            config_from_disk = json.load(f)
        stage_env = ChaliceConfig(STAGE, "", config_from_disk=config_from_disk).environment_variables or {}
        return {
            **{key: str(value) for key, value in stage_env.items()},
            **self.resource_env,
            **self._aws_variables(),
            "STAGE": STAGE,
            "RELEASE_HORIZON_SECONDS": str(stage_env.get("RELEASE_HORIZON_SECONDS", "1")),
            "ADMIN_TOKEN": self.admin_token,
            "PAGE_TOKEN_SECRET": secrets.token_urlsafe(32),
            "ADDRESS_KEY_SECRET": secrets.token_urlsafe(32),
            "VONAGE_BASE_URL": self.provider_url,
            "VONAGE_API_KEY": os.environ.get("VONAGE_API_KEY", "") if self.provider_base_url else LOCAL_CREDENTIAL,
            "VONAGE_API_SECRET": os.environ.get("VONAGE_API_SECRET", "")
            if self.provider_base_url
            else LOCAL_CREDENTIAL,
            # Voice: the application made for this run (none with a provider run elsewhere: its own, from the env).
            **(
                {
                    "VONAGE_APPLICATION_ID": VOICE_APPLICATION,
                    "VONAGE_PRIVATE_KEY_SECRET": VOICE_KEY_SECRET,
                    "VONAGE_SIGNATURE_SECRET": VOICE_SIGNATURE_SECRET,
                }
                if not self.provider_base_url
                else {}
            ),
            "WEBHOOK_BASE_URL": self.api_url,
            "LINKS_BASE_URL": self.api_url,  # tracked links lead to the local API (decision 43)
            # HTTP actions may call the fake endpoints on this machine (decision 29's exceptions).
            "OUTBOUND_ALLOW_HTTP": "true",
            "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1,localhost",
        }

    def _aws_variables(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.aws_endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION,
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        }

    def _apply_environment(self, variables: Mapping[str, str]) -> None:
        for key, value in variables.items():
            self._saved_environ.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def _restore_environment(self) -> None:
        for key, value in self._saved_environ.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._saved_environ = {}

    def _import_app(self) -> ModuleType:
        root = str(self.repo_root)
        if root not in sys.path:
            sys.path.insert(0, root)
        # Settings and boto3 clients cached by an earlier import would point at another endpoint.
        settings = sys.modules.get("chalicelib.settings")
        get_settings = getattr(settings, "get_settings", None)
        if get_settings is not None and hasattr(get_settings, "cache_clear"):
            get_settings.cache_clear()
        store = sys.modules.get("chalicelib.store.aws")
        reset_clients = getattr(store, "reset_clients", None)
        if callable(reset_clients):
            reset_clients()
        return importlib.import_module("app")


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


# -- make dev --------------------------------------------------------------------------------------


def create_local_account(api_url: str, admin_token: str, name: str = "local") -> dict[str, Any] | None:
    """POST /v1/accounts as the admin; the account (with `id` and `api_key`), or None if refused."""
    response = httpx.post(
        f"{api_url}/v1/accounts",
        json={"name": name},
        headers={"Authorization": f"Bearer {admin_token}", "Idempotency-Key": str(uuid.uuid4())},
        timeout=30.0,
    )
    if response.status_code >= 300:
        logger.warning("creating the local account failed: HTTP %d %s", response.status_code, response.text)
        return None
    account: dict[str, Any] = response.json()
    return account


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m infra.local.stack", description="Run the local stack (make dev).")
    parser.add_argument("--api-port", type=int, default=8000)
    parser.add_argument("--provider-port", type=int, default=8081)
    parser.add_argument("--moto-port", type=int, default=None, help="default: any free port")
    parser.add_argument("--rate-limit", type=float, default=500, help="fake provider sends per second")
    parser.add_argument(
        "--provider-url",
        default=None,
        help="a provider run elsewhere (e.g. https://api.nexmo.com, or a mock) instead of the fake provider; "
        "credentials from VONAGE_API_KEY and VONAGE_API_SECRET",
    )
    parser.add_argument("--transient-failure-rate", type=float, default=0.02)
    add_fault_arguments(parser)  # the fake provider's --latency-ms, --fail-statuses, ... passed through
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--schedule-tick", type=float, default=1.0, help="seconds between schedule firings")
    parser.add_argument("--admin-token", default=None, help="default: a random token")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "botocore.credentials"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    stack = LocalStack(
        provider_rate_limit=args.rate_limit,
        provider_transient_failure_rate=args.transient_failure_rate,
        provider_latency_ms=args.latency_ms,
        provider_dedup_client_ref=args.dedup_client_ref,
        provider_missing_uuid_rate=args.missing_uuid_rate,
        provider_timeout_after_accept_rate=args.timeout_after_accept_rate,
        provider_timeout_after_accept_ms=args.timeout_after_accept_ms,
        provider_fail_statuses=args.fail_statuses,
        seed=args.seed,
        schedule_tick_seconds=args.schedule_tick,
        api_port=args.api_port,
        provider_port=args.provider_port,
        moto_port=args.moto_port,
        admin_token=args.admin_token,
        provider_base_url=args.provider_url,
        keep_logs=True,
    )
    try:
        stack.start()
        if stopping.is_set():
            return 0
        account = create_local_account(stack.api_url, stack.admin_token)
        print(f"API:            {stack.api_url}/v1")
        if account is not None:
            key = account.get("api_key", "")
            print(f"Account:        {account.get('id', '')}")
            print(f"API key:        {key}")
        else:
            key = "<api key>"
            print("Account:        not created (POST /v1/accounts failed); create one with the admin token")
        print(f"Admin token:    {stack.admin_token}")
        print(f"{'Provider:' if stack.provider_base_url else 'Fake provider:':<16}{stack.provider_url}")
        print(f"AWS (moto):     {stack.aws_endpoint_url}")
        print(f"Logs:           {stack.log_dir}")
        print(
            f'Try:            curl -s -X POST -H "Authorization: Bearer {key}" '
            f"-H 'Content-Type: application/json' -d '{{\"name\": \"my list\"}}' {stack.api_url}/v1/lists"
        )
        print("Ctrl-C stops the stack.", flush=True)
        while not stopping.wait(1.0):
            pass
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
