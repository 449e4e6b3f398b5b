"""Tracked link tokens (decision 43): signed, verified, short; URLs checked; the `track` filter."""

from __future__ import annotations

import base64

import pytest

from chalicelib.domain import links
from chalicelib.domain.delivery import engagement_deltas
from chalicelib.domain.template import TRACKER, TemplateError, compile_template, render

KEY = b"k" * 32
CODE = links.link_code(KEY, "acc_1", "cmp_1", "https://acme.example/sale")


@pytest.mark.parametrize(
    ("recipient_id", "query"),
    [
        ("+447700900123", ""),
        ("+12025550100", "c=ABC123"),
        ("cust-000123", "c=A&utm_source=sms#top"),
        ("ünïcode id", "q=%20x"),
        ("x" * 127, ""),
    ],
)
def test_a_signed_token_verifies_to_what_was_signed(recipient_id: str, query: str) -> None:
    token = links.sign(KEY, CODE, recipient_id, query)
    assert links.verify(KEY, token) == links.LinkRef(CODE, recipient_id, query)


def test_a_static_links_token_for_a_phone_recipient_is_26_characters() -> None:
    token = links.sign(KEY, CODE, "+447700900123", "")
    assert len(token) == 26
    # A base URL of 24 characters (https://lnk.acme.example) makes the link 53: a third of an SMS segment.
    assert len(f"https://lnk.acme.example{links.PATH}{token}") == 53
    assert len(links.sign(KEY, CODE, "+447700900123", "c=ABC123")) == 36


def test_a_token_changed_anywhere_or_signed_with_another_key_is_refused() -> None:
    token = links.sign(KEY, CODE, "+447700900123", "c=ABC123")
    with pytest.raises(links.LinkError):
        links.verify(b"other" * 8, token)
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for position in range(len(raw)):
        forged = bytearray(raw)
        forged[position] ^= 0x01
        text = base64.urlsafe_b64encode(bytes(forged)).rstrip(b"=").decode()
        with pytest.raises(links.LinkError):
            links.verify(KEY, text)
    for garbage in ("", "a", "!!!!", "x" * 20, token[:-1], token + "A", "a/b"):
        with pytest.raises(links.LinkError):
            links.verify(KEY, garbage)


def test_codes_differ_by_campaign_base_and_salt_and_repeat_for_the_same() -> None:
    assert links.link_code(KEY, "acc_1", "cmp_1", "https://acme.example/sale") == CODE
    others = {
        links.link_code(KEY, "acc_1", "cmp_2", "https://acme.example/sale"),
        links.link_code(KEY, "acc_2", "cmp_1", "https://acme.example/sale"),
        links.link_code(KEY, "acc_1", "cmp_1", "https://acme.example/other"),
        links.link_code(KEY, "acc_1", "cmp_1", "https://acme.example/sale", salt=1),
    }
    assert CODE not in others and len(others) == 4 and {len(c) for c in others} == {links.CODE_BYTES}


@pytest.mark.parametrize(
    "url", ["ftp://acme.example/x", "javascript:alert(1)", "acme.example/x", "https:///x", "https://a b.example/"]
)
def test_only_absolute_http_urls_with_a_host_are_tracked(url: str) -> None:
    with pytest.raises(links.LinkError):
        links.check_url(url)


def test_a_url_splits_into_the_catalogs_base_and_the_tokens_query() -> None:
    assert links.split_url("https://acme.example/sale?c=A1#top") == ("https://acme.example/sale", "c=A1#top")
    assert links.split_url("https://acme.example/sale") == ("https://acme.example/sale", "")
    assert links.join_url("https://acme.example/sale", "c=A1") == "https://acme.example/sale?c=A1"


def test_the_track_filter_calls_the_renders_tracker_and_refuses_a_bad_url() -> None:
    made: list[str] = []

    def tracker(url: str) -> str:
        made.append(url)
        return "https://l.example/l/TOKEN"

    source = 'Sale: {{ "https://acme.example/sale?c=" | append: code | track }}'
    assert render(source, {"code": "A1", TRACKER: tracker}) == "Sale: https://l.example/l/TOKEN"
    assert made == ["https://acme.example/sale?c=A1"]
    with pytest.raises(TemplateError, match=r"track: .*not an http or https URL"):
        render('{{ scheme | append: "://x.example" | track }}', {"scheme": "ftp", TRACKER: tracker})
    with pytest.raises(TemplateError, match="only where a message is sent or previewed"):
        render(source, {"code": "A1"})


def test_a_static_url_piped_into_track_is_checked_with_the_template() -> None:
    with pytest.raises(TemplateError, match=r"track: .*not an http or https URL"):
        compile_template('Hi {{ "ftp://acme.example/x" | track }}')
    compile_template("Hi {{ 'https://acme.example/x' | track }} {{ base | append: code | track }}")


def test_engagement_deltas_count_recipients_once_and_every_click() -> None:
    assert engagement_deltas({}, {"clicks": 1}) == {"clicked": 1, "clicks": 1}
    assert engagement_deltas({"clicks": 1}, {"clicks": 2}) == {"clicks": 1}
    assert engagement_deltas({"clicks": 2}, {"clicks": 2, "conversions": 1}) == {"converted": 1, "conversions": 1}
    assert engagement_deltas({"clicks": 2}, {"clicks": 2}) == {}
