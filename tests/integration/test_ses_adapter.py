"""The SES adapter against an HTTP server that answers as SES v2 does (its REST-JSON errors), counting the
requests that reach it: a send that timed out is never resent, by botocore or by us."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chalicelib.channels.base import EmailParts, OutgoingMessage
from chalicelib.channels.ses import SesEmail, ses_email
from chalicelib.domain.delivery import OutcomeKind, OutcomeReason
from chalicelib.store import aws


@dataclass
class Script:
    status: int = 200
    error: str = ""
    delay: float = 0.0
    requests: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def ses_like() -> Iterator[tuple[str, Script]]:
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            script.requests.append(json.loads(body))
            time.sleep(script.delay)
            answer = json.dumps({"MessageId": "ses-1"} if script.status == 200 else {"message": "refused"}).encode()
            self.send_response(script.status)
            self.send_header("Content-Type", "application/json")
            if script.error:
                self.send_header("x-amzn-ErrorType", script.error)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            with contextlib.suppress(BrokenPipeError):  # the client gave up waiting
                self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", script
    server.shutdown()


@pytest.fixture
def adapter(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, float], SesEmail]]:
    """The adapter as dispatch gets it, pointed at `url` with a provider timeout of `timeout` s."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")

    def make(url: str, timeout: float) -> SesEmail:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        monkeypatch.setenv("PROVIDER_TIMEOUT_SECONDS", str(timeout))
        aws.reset_clients()
        return ses_email()

    yield make
    aws.reset_clients()


MESSAGE = OutgoingMessage(
    channel="email",
    to="ann@example.org",
    sender="news@example.com",
    text="Hello",
    idempotency_key="cmp:r1:1",
    email=EmailParts(subject="Hi", configuration_set="bulk-dev-acc_1"),
    tags={"campaign": "cmp_1", "recipient": "r 1/é"},
)


def test_a_send_that_times_out_is_ambiguous_and_reaches_ses_once(
    ses_like: tuple[str, Script], adapter: Callable[[str, float], SesEmail]
) -> None:
    url, script = ses_like
    script.delay = 1.5
    outcome = adapter(url, 0.5).send(MESSAGE)
    time.sleep(1.2)  # a retry, had botocore made one, would have arrived by now
    assert outcome.kind == OutcomeKind.AMBIGUOUS, outcome
    assert len(script.requests) == 1, "botocore's retries must not resend an email"


def test_the_request_names_the_account_configuration_set_and_safe_tags(
    ses_like: tuple[str, Script], adapter: Callable[[str, float], SesEmail]
) -> None:
    url, script = ses_like
    outcome = adapter(url, 2.0).send(MESSAGE)
    assert outcome.kind == OutcomeKind.ACCEPTED and outcome.provider_message_id == "ses-1", outcome
    (request,) = script.requests
    assert request["ConfigurationSetName"] == "bulk-dev-acc_1"
    assert request["EmailTags"] == [{"Name": "campaign", "Value": "cmp_1"}, {"Name": "recipient", "Value": "r_1__"}]
    assert request["Destination"] == {"ToAddresses": ["ann@example.org"]}


@pytest.mark.parametrize(
    ("status", "error", "kind", "reason"),
    [
        (429, "TooManyRequestsException", OutcomeKind.TRANSIENT, OutcomeReason.THROTTLED),
        (500, "InternalFailure", OutcomeKind.TRANSIENT, OutcomeReason.PROVIDER_ERROR),
        (400, "SendingPausedException", OutcomeKind.ACCOUNT, None),
        (400, "AccountSuspendedException", OutcomeKind.ACCOUNT, None),
        (400, "BadRequestException", OutcomeKind.PERMANENT, None),
    ],
)
def test_ses_errors_map_to_outcomes(
    ses_like: tuple[str, Script],
    adapter: Callable[[str, float], SesEmail],
    status: int,
    error: str,
    kind: OutcomeKind,
    reason: OutcomeReason | None,
) -> None:
    url, script = ses_like
    script.status, script.error = status, error
    outcome = adapter(url, 2.0).send(MESSAGE)
    assert outcome.kind == kind, outcome
    assert reason is None or outcome.reason == reason
    assert len(script.requests) == 1, "one request per send, whatever came back"


def test_ses_unreachable_is_transient_nothing_sent(adapter: Callable[[str, float], SesEmail]) -> None:
    outcome = adapter("http://127.0.0.1:9", 1.0).send(MESSAGE)
    assert outcome.kind == OutcomeKind.TRANSIENT and outcome.reason == OutcomeReason.UNREACHABLE
