"""What an inbound message asks, and how receipts move the counters (domain/responses.py)."""

from __future__ import annotations

import pytest

from chalicelib.domain.responses import intent, receipt_deltas, send_scope, stop_scopes


@pytest.mark.parametrize(
    ("text", "asked"),
    [
        ("STOP", "stop"),
        ("stop", "stop"),
        ("  Stop!! ", "stop"),
        ("S.T.O.P", "stop"),
        ("Arrêt", "stop"),
        ("ARRET.", "stop"),
        ("baja", "stop"),
        ("opt-out", "stop"),
        ("Unsubscribe me", None),  # not the word alone: a reply, kept for a person to read
        ("Stop all", "stop_all"),
        ("STOPALL", "stop_all"),
        ("start", "start"),
        ("Unstop", "start"),
        ("help?", "help"),
        ("Aide", "help"),
        ("", None),
        ("Thanks, see you Tuesday", None),
        ("stopping by later", None),
    ],
)
def test_the_message_is_taken_as_one_word_whatever_its_case_accents_or_punctuation(
    text: str, asked: str | None
) -> None:
    assert intent(text) == asked


def test_a_whatsapp_stop_ends_marketing_only_unless_it_is_stopall() -> None:
    assert stop_scopes("whatsapp", every_category=False) == ("whatsapp.marketing",)
    assert stop_scopes("whatsapp", every_category=True) == ("whatsapp.marketing", "whatsapp.utility")
    assert stop_scopes("sms", every_category=False) == ("sms",)
    assert send_scope("whatsapp", "marketing") == "whatsapp.marketing"
    assert send_scope("whatsapp", "transactional") == "whatsapp.utility"
    assert (send_scope("mms", None), send_scope("action", None)) == ("sms", None)


def test_receipts_count_delivered_read_and_undelivered_once_each() -> None:
    assert receipt_deltas(None, "submitted") == {}
    assert receipt_deltas("submitted", "delivered") == {"receipts.delivered": 1}
    assert receipt_deltas("delivered", "read") == {"receipts.read": 1}
    assert receipt_deltas("submitted", "read") == {"receipts.delivered": 1, "receipts.read": 1}
    assert receipt_deltas(None, "undeliverable") == {"receipts.undelivered": 1}
    assert receipt_deltas("read", "read") == {}
