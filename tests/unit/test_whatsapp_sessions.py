"""The WhatsApp session window rule (decision 46): text only within 24 hours, less a margin, of the person's
last message; a template always."""

from __future__ import annotations

from chalicelib.domain.sessions import MARGIN_SECONDS, WINDOW_SECONDS, sends_session, window_open

NOW = 1_800_000_000.0


def test_a_window_is_open_for_24_hours_less_the_margin_after_the_last_message() -> None:
    assert window_open(NOW - 60, NOW)
    assert window_open(NOW - (WINDOW_SECONDS - MARGIN_SECONDS - 1), NOW)
    assert not window_open(NOW - (WINDOW_SECONDS - MARGIN_SECONDS), NOW)  # the margin's edge: closed
    assert not window_open(NOW - 25 * 3600, NOW)
    assert not window_open(None, NOW)  # never wrote (or the item is gone)


def test_a_window_read_earlier_closes_on_time_while_the_chunk_is_paced() -> None:
    read = NOW - (WINDOW_SECONDS - MARGIN_SECONDS - 30)  # the chunk's read found this; 30 s left
    assert window_open(read, NOW)
    assert not window_open(read, NOW + 30)  # the same value, judged later: closed, no re-read needed


def test_the_margin_is_the_callers_to_choose() -> None:
    assert window_open(NOW - WINDOW_SECONDS + 10, NOW, margin=0)
    assert not window_open(NOW - WINDOW_SECONDS, NOW, margin=0)


def test_only_whatsapp_without_an_approved_template_is_a_session_message() -> None:
    assert sends_session({"channel": "whatsapp", "whatsapp": None, "template": "Hi"})
    assert not sends_session({"channel": "whatsapp", "whatsapp": {"template_name": "t", "locale": "en"}})
    assert not sends_session({"channel": "sms", "template": "Hi"})
    assert not sends_session({"template": "Hi"})  # a segment on the campaign's channel says nothing itself
