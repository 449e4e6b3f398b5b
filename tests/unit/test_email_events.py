"""SES's documented event records read as receipts and suppressions (decision 44)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chalicelib.domain.email_events import NotAnEmailEvent, account_of_configuration_set, parse

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ses_events"


def sample(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / f"{name}.json").read_text()))


@pytest.mark.parametrize(
    ("name", "receipt", "suppress", "source"),
    [
        ("bounce_permanent", "undeliverable", ("recipient@example.org",), "bounce"),
        ("bounce_transient", "undeliverable", (), None),
        ("complaint", "delivered", ("recipient@example.org",), "complaint"),
        ("delivery", "delivered", (), None),
        ("open", "read", (), None),
    ],
)
def test_each_type_is_a_receipt_and_hard_bounces_and_complaints_suppress(
    name: str, receipt: str, suppress: tuple[str, ...], source: str | None
) -> None:
    found = parse(sample(name))
    assert (found.receipt, found.suppress, found.source) == (receipt, suppress, source)
    assert found.client_ref == "cmp_0123456789abcdef0123:r1:1" and found.configuration_set == "my-config-set"
    assert found.message_id.startswith("0100018e0a3bc9d1") and found.at > 1.7e9


def test_the_reference_comes_from_the_tags_when_the_headers_are_not_in_the_event() -> None:
    event = sample("delivery")
    event["detail"]["mail"]["headers"] = []
    event["detail"]["mail"]["headersTruncated"] = True
    event["detail"]["mail"]["tags"].update(recipient=["r9"], attempt=["2"])
    assert parse(event).client_ref == "cmp_0123456789abcdef0123:r9:2"
    del event["detail"]["mail"]["tags"]["attempt"]
    assert parse(event).client_ref is None


def test_a_bounce_says_why_and_other_events_are_refused() -> None:
    assert parse(sample("bounce_permanent")).error == "Permanent/General bounce: smtp; 550 5.1.1 user unknown"
    with pytest.raises(NotAnEmailEvent):
        parse({**sample("open"), "source": "aws.s3"})
    with pytest.raises(NotAnEmailEvent):
        parse({"source": "aws.ses", "detail-type": "Sending Status Disabled", "detail": {}})


def test_the_account_of_a_configuration_set() -> None:
    assert account_of_configuration_set("bulk-dev-acc_1", "bulk", "dev") == "acc_1"
    assert account_of_configuration_set("bulk-prod-acc_1", "bulk", "dev") is None
    assert account_of_configuration_set("bulk-dev-", "bulk", "dev") is None
    assert account_of_configuration_set(None, "bulk", "dev") is None


def test_a_click_is_read_a_reject_is_rejected_and_a_delay_is_only_noted() -> None:
    event = sample("open")
    event["detail"]["eventType"] = "Click"
    event["detail"]["click"] = event["detail"].pop("open") | {"link": "https://acme.example/u"}
    assert parse(event).receipt == "read"
    event["detail"]["eventType"] = "Reject"
    event["detail"]["reject"] = {"reason": "Bad content"}
    rejected = parse(event)
    assert (rejected.receipt, rejected.error, rejected.suppress) == ("rejected", "rejected by SES: Bad content", ())
    event["detail"]["eventType"] = "DeliveryDelay"
    assert parse(event).receipt is None and parse(event).suppress == ()
