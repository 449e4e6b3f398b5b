"""Config and fault drawing for the fake Vonage provider (``infra.local.fake_provider``).

Stdlib only. Everything here is pure: the provider calls it with its lock held and its seeded random
source, so a run with the same seed, config and request order draws the same outcomes.

Two draws at most per send, each only when it can change something:

* before accepting, a number with a script (``scripted_by_number``) is answered the next status of its
  script, with no draw, until the script is used up; otherwise one draw picks a scripted failure: 503
  with probability ``transient_failure_rate + fail_statuses["503"]``, then each other status of
  ``fail_statuses`` in ascending order;
* after accepting (a newly recorded message only), one draw picks an answer fault: ``missing_uuid`` with
  probability ``missing_uuid_rate``, then ``timeout_after_accept`` with ``timeout_after_accept_rate``.
"""

from __future__ import annotations

import argparse
import json
import random
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

Json = dict[str, Any]

ERROR_DOCS = "https://developer.nexmo.com/api-errors"
FAIL_STATUSES = ("400", "401", "402", "403", "429", "500", "503")
CONFIG_FIELDS = (
    "rate_limit_per_second",
    "transient_failure_rate",
    "latency_ms",
    "status_webhook_url",
    "inbound_webhook_url",
    "dedup_client_ref",
    "missing_uuid_rate",
    "timeout_after_accept_rate",
    "timeout_after_accept_ms",
    "fail_statuses",
    "scripted_by_number",
    "balance_messages",
    "receipts_by_number",
)
# `submitted`: the carrier never reports how it ended (many do not): only the submitted callback is posted.
RECEIPT_ENDS = ("delivered", "rejected", "undeliverable", "submitted")
MISSING_UUID = "missing_uuid"
TIMEOUT_AFTER_ACCEPT = "timeout_after_accept"
_RATE_SLACK = 1e-9  # 0.1 + 0.2 + 0.7 may add up to a hair above 1


@dataclass
class ProviderConfig:
    """Runtime-adjustable behaviour of the fake provider."""

    rate_limit_per_second: float = 0.0
    transient_failure_rate: float = 0.0
    latency_ms: int = 0
    status_webhook_url: str | None = None
    # Where recipients' messages to the account's numbers are posted (POST /_fake/inbound plays one).
    inbound_webhook_url: str | None = None
    dedup_client_ref: bool = False
    missing_uuid_rate: float = 0.0
    timeout_after_accept_rate: float = 0.0
    timeout_after_accept_ms: int = 30_000
    fail_statuses: dict[str, float] = field(default_factory=dict)
    # A number (as sent in `to`) -> the statuses its sends are answered in turn (202: accept as usual).
    scripted_by_number: dict[str, list[int]] = field(default_factory=dict)
    # A number (as sent in `to`) -> how its accepted messages end in the status callbacks: delivered (the
    # default; WhatsApp also read), rejected, undeliverable, or submitted (no final callback ever comes).
    receipts_by_number: dict[str, str] = field(default_factory=dict)
    # Messages the account can still pay for (None: no limit): each one accepted takes one; at 0, every
    # send is answered 402, as Vonage answers an account out of credit.
    balance_messages: int | None = None


def problem(kind: str, title: str, detail: str, **extra: Any) -> Json:
    """An RFC 7807 problem shaped like Vonage's, with a fresh trace id as ``instance``."""
    return {"type": f"{ERROR_DOCS}#{kind}", "title": title, "detail": detail, "instance": uuid.uuid4().hex, **extra}


def failure_answer(status: int) -> tuple[Json, dict[str, str]]:
    """The body and extra headers of a scripted failure with this status."""
    if status == 400:
        reason = "The number is not a valid destination for this channel (scripted fault)."
        detail = "The value of one or more parameters is invalid."
        return problem(
            "invalid-params", "Invalid params", detail, invalid_parameters=[{"name": "to", "reason": reason}]
        ), {}
    if status == 401:
        return problem("unauthorized", "Unauthorized", "You did not provide correct credentials."), {}
    if status == 402:
        detail = "This request could not be performed due to your account balance being low."
        return problem("low-balance", "Low balance", detail), {}
    if status == 403:
        return problem("forbidden", "Forbidden", "Your account does not have permission to perform this action."), {}
    if status == 429:
        detail = "Please wait, then retry your request."
        return problem("throttled", "Rate Limit Hit", detail), {}  # Vonage sends no Retry-After
    if status == 500:
        return problem("internal-error", "Internal Error", "Something went wrong; please retry later."), {}
    if status == 503:
        detail = "The service is temporarily unavailable; please retry later."
        return problem("service-unavailable", "Service Unavailable", detail), {}
    raise ValueError(f"no scripted failure for status {status}")


def draw_failure(config: ProviderConfig, rng: random.Random) -> int | None:
    """The status of a scripted failure for this send, or None to go on and accept it."""
    buckets = [(503, config.transient_failure_rate + config.fail_statuses.get("503", 0.0))]
    buckets += [(int(status), rate) for status, rate in sorted(config.fail_statuses.items()) if status != "503"]
    if not any(rate > 0 for _, rate in buckets):
        return None
    draw = rng.random()
    cumulative = 0.0
    for status, rate in buckets:
        cumulative += rate
        if rate > 0 and draw < cumulative:
            return status
    return None


def draw_answer_fault(config: ProviderConfig, rng: random.Random) -> str | None:
    """``MISSING_UUID``, ``TIMEOUT_AFTER_ACCEPT`` or None (a normal 202) for a newly accepted message."""
    missing, timeout = config.missing_uuid_rate, config.timeout_after_accept_rate
    if missing <= 0 and timeout <= 0:
        return None
    draw = rng.random()
    if draw < missing:
        return MISSING_UUID
    if draw < missing + timeout:
        return TIMEOUT_AFTER_ACCEPT
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse_fail_statuses(value: Any) -> tuple[dict[str, float] | None, str]:
    """The normalised mix (status strings to rates) or None and the reason it is invalid."""
    if value is None:
        return {}, ""
    if not isinstance(value, dict):
        return None, 'must be an object of status to rate, e.g. {"503": 0.05}'
    parsed: dict[str, float] = {}
    for status, rate in value.items():
        key = str(status)
        if key not in FAIL_STATUSES:
            return None, f"status {key!r} is not one of {', '.join(FAIL_STATUSES)}"
        if not (_is_number(rate) and 0 <= rate <= 1):
            return None, f"rate for {key} must be a number in 0..1"
        parsed[key] = float(rate)
    return parsed, ""


def _parse_scripts(value: Any) -> tuple[dict[str, list[int]] | None, str]:
    """Per-number scripts (number to a list of statuses, 202 for an accepted send) or None and the reason."""
    if value is None:
        return {}, ""
    allowed = {int(s) for s in FAIL_STATUSES} | {202}
    if not isinstance(value, dict) or not all(isinstance(v, list) for v in value.values()):
        return None, 'must be an object of number to a list of statuses, e.g. {"15550001": [503, 400]}'
    for number, statuses in value.items():
        if not all(isinstance(s, int) and not isinstance(s, bool) and s in allowed for s in statuses):
            return None, f"statuses for {number} must each be one of {', '.join(map(str, sorted(allowed)))}"
    return {str(n): list(v) for n, v in value.items()}, ""


def parse_config(body: Any, current: ProviderConfig | None = None) -> tuple[Json, list[Json]]:
    """Validated config changes and Vonage-style ``invalid_parameters`` for ``POST /_fake/config``.

    The rates that share a draw are checked together with the ``current`` config they would join:
    ``transient_failure_rate`` plus the ``fail_statuses`` rates, and ``missing_uuid_rate`` plus
    ``timeout_after_accept_rate``, must each stay within 1.
    """
    if not isinstance(body, dict):
        return {}, [{"name": "body", "reason": "must be a JSON object"}]
    changes: Json = {}
    problems: list[Json] = []
    for name, value in body.items():
        number = _is_number(value)
        valid = {
            "rate_limit_per_second": number and value >= 0,
            "transient_failure_rate": number and 0 <= value <= 1,
            "latency_ms": number and value >= 0,
            "status_webhook_url": value is None or isinstance(value, str),
            "inbound_webhook_url": value is None or isinstance(value, str),
            "dedup_client_ref": isinstance(value, bool),
            "missing_uuid_rate": number and 0 <= value <= 1,
            "timeout_after_accept_rate": number and 0 <= value <= 1,
            "timeout_after_accept_ms": number and value >= 0,
            "fail_statuses": True,
            "scripted_by_number": True,
            "balance_messages": value is None
            or (isinstance(value, int) and not isinstance(value, bool) and value >= 0),
            "receipts_by_number": isinstance(value, dict)
            and all(v in RECEIPT_ENDS for v in value.values())
            and all(isinstance(k, str) for k in value),
        }
        if name not in valid:
            expected = ", ".join(CONFIG_FIELDS)
            problems.append({"name": name, "reason": f"unknown field; expected one of {expected}"})
        elif name in ("fail_statuses", "scripted_by_number"):
            parsed, reason = (_parse_fail_statuses if name == "fail_statuses" else _parse_scripts)(value)
            if parsed is None:
                problems.append({"name": name, "reason": reason})
            else:
                changes[name] = parsed
        elif not valid[name]:
            problems.append({"name": name, "reason": "invalid value"})
        elif name in ("latency_ms", "timeout_after_accept_ms"):
            changes[name] = int(value)
        elif name in ("status_webhook_url", "inbound_webhook_url"):
            changes[name] = value or None
        elif name == "dedup_client_ref":
            changes[name] = value
        elif name == "balance_messages":
            changes[name] = None if value is None else int(value)
        elif name == "receipts_by_number":
            changes[name] = dict(value)
        else:
            changes[name] = float(value)
    if not problems:
        problems = _check_shared_draws({**asdict(current or ProviderConfig()), **changes}, changes)
    return changes, problems


def _check_shared_draws(merged: Json, changes: Json) -> list[Json]:
    problems: list[Json] = []
    if merged["transient_failure_rate"] + sum(merged["fail_statuses"].values()) > 1 + _RATE_SLACK:
        name = "fail_statuses" if "fail_statuses" in changes else "transient_failure_rate"
        problems.append({"name": name, "reason": "transient_failure_rate plus the fail_statuses rates exceeds 1"})
    if merged["missing_uuid_rate"] + merged["timeout_after_accept_rate"] > 1 + _RATE_SLACK:
        name = "timeout_after_accept_rate" if "timeout_after_accept_rate" in changes else "missing_uuid_rate"
        problems.append({"name": name, "reason": "missing_uuid_rate plus timeout_after_accept_rate exceeds 1"})
    return problems


def parse_fail_statuses_arg(text: str) -> dict[str, float]:
    """A command-line ``fail_statuses`` mix: a JSON object, or ``503=0.05,400=0.01``. Raises ValueError."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        value = json.loads(text)
    else:
        value = {}
        for pair in text.split(","):
            status, sep, rate = pair.partition("=")
            if not sep:
                raise ValueError(f"expected STATUS=RATE, got {pair!r}")
            value[status.strip()] = float(rate)
    statuses, reason = _parse_fail_statuses(value)
    if statuses is None:
        raise ValueError(reason)
    return statuses


def initial_counters() -> Json:
    """The counters of ``GET /_fake/stats`` apart from ``accepted`` and ``unique_recipients``."""
    return {
        "requests": 0,
        "duplicates": 0,
        "throttled": 0,
        "transient_failures": 0,
        "missing_uuid": 0,
        "timed_out_after_accept": 0,
        "failed_by_status": dict.fromkeys(FAIL_STATUSES, 0),
        # Send requests being answered now, and the most at once since the last reset.
        "in_flight": 0,
        "peak_in_flight": 0,
        "callbacks_retried": 0,  # status callbacks posted again after the receiver refused or did not answer
        "inbound": 0,  # recipients' messages played (POST /_fake/inbound)
        "outside_window": 0,  # WhatsApp texts refused outside the recipient's 24-hour window (1340)
    }


def add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line flags of the fault fields, shared by the provider's and the local stack's CLIs."""
    parser.add_argument("--latency-ms", type=int, default=0, help="delay before answering sends (default: 0)")
    parser.add_argument(
        "--dedup-client-ref",
        action="store_true",
        help="answer a repeated client_ref with the original uuid and record nothing (default: record it again)",
    )
    parser.add_argument(
        "--missing-uuid-rate",
        type=float,
        default=0.0,
        help="fraction 0..1 of accepted sends answered 200 without message_uuid (default: 0)",
    )
    parser.add_argument(
        "--timeout-after-accept-rate",
        type=float,
        default=0.0,
        help="fraction 0..1 of accepted sends whose 202 is held --timeout-after-accept-ms (default: 0)",
    )
    parser.add_argument(
        "--timeout-after-accept-ms", type=int, default=30_000, help="how long such an answer is held (default: 30000)"
    )
    parser.add_argument(
        "--fail-statuses",
        type=_fail_statuses_arg,
        default=None,
        metavar="MIX",
        help=f"scripted failures, e.g. '503=0.05,400=0.01' or a JSON object; statuses {', '.join(FAIL_STATUSES)}",
    )


def fault_options(args: argparse.Namespace) -> Json:
    """The ``FakeProvider`` keyword arguments of the flags added by ``add_fault_arguments``."""
    return {
        "latency_ms": args.latency_ms,
        "dedup_client_ref": args.dedup_client_ref,
        "missing_uuid_rate": args.missing_uuid_rate,
        "timeout_after_accept_rate": args.timeout_after_accept_rate,
        "timeout_after_accept_ms": args.timeout_after_accept_ms,
        "fail_statuses": args.fail_statuses,
    }


def _fail_statuses_arg(text: str) -> dict[str, float]:
    try:
        return parse_fail_statuses_arg(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
