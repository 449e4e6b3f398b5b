"""MMS, Viber and Messenger in the domain (decision 47): the Messenger destination (a page-scoped id), each
channel's sender, the MMS image URL checked at creation, Messenger's tagging, what segments and fallbacks put in
place of the campaign's, and the suppression scopes these channels are checked against."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from chalicelib.domain import segments
from chalicelib.domain.models import MessengerContent, MmsContent, ViberContent, image_url_problem, sender_problem
from chalicelib.domain.recipients import AddressError, DestinationType, check_row, normalize_address
from chalicelib.domain.responses import send_scope, stop_scopes, suppressed_destination
from chalicelib.domain.tabular import default_mapping


@pytest.mark.parametrize("raw", ["7000000000000001", " 1234567890 ", "1" * 50])
def test_a_page_scoped_id_is_digits_up_to_fifty(raw: str) -> None:
    assert normalize_address(DestinationType.MESSENGER, raw) == raw.strip()


@pytest.mark.parametrize(
    "raw", ["+14155550100", "ana.souza", "https://m.me/ana", "1" * 51, "12 34", "\uff11\uff12\uff13"]
)  # fullwidth digits are not ASCII ones
def test_anything_else_is_not_a_page_scoped_id(raw: str) -> None:
    with pytest.raises(AddressError, match="page-scoped id"):
        normalize_address(DestinationType.MESSENGER, raw)


def test_a_recipient_reached_on_messenger_sends_its_messenger_id_and_sms_its_phone() -> None:
    recipient = check_row(
        {
            "destinations": [
                {"type": "messenger", "address": "7000000000000001"},
                {"type": "phone", "address": "+14155550100"},
            ]
        }
    )
    assert recipient.id == "7000000000000001"
    assert recipient.destination_for("messenger") == (0, recipient.destinations[0])
    assert recipient.destination_for("mms") == (1, recipient.destinations[1])
    assert recipient.destination_for("viber_service") == (1, recipient.destinations[1])
    assert recipient.destination_for("sms") == (1, recipient.destinations[1])


def test_an_upload_column_named_messenger_or_psid_is_a_messenger_destination() -> None:
    mapping = default_mapping(["id", "PSID", "phone"])
    assert [(d.column, d.type) for d in mapping.destinations] == [
        ("PSID", DestinationType.MESSENGER),
        ("phone", DestinationType.PHONE),
    ]


@pytest.mark.parametrize(
    ("channel", "sender", "problem"),
    [
        ("mms", "+14155550100", None),
        ("mms", "Acme", "no sender ids"),
        ("messenger", "112233445566778", None),
        ("messenger", "Acme Page", "page id"),
        ("messenger", "1" * 51, "page id"),
        ("viber_service", "AcmeViberService", None),
    ],
)
def test_each_channel_sends_from_its_own_kind_of_sender(channel: str, sender: str, problem: str | None) -> None:
    found = sender_problem(channel, sender)
    assert (found is None) if problem is None else (found is not None and problem in found), found


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://cdn.acme.example/spring.png", None),
        ("https://93.184.215.14/a.jpg", None),
        ("http://cdn.acme.example/spring.png", "https"),
        ("ftp://cdn.acme.example/spring.png", "https"),
        ("https://10.1.2.3/a.png", "public address"),
        ("https://169.254.169.254/latest", "public address"),
        ("https://[::1]/a.png", "public address"),
        ("https://localhost/a.png", "public host"),
        ("https://images/a.png", "public host"),
        ("https://cdn.corp.internal/a.png", "public host"),
        ("https://user:pw@cdn.acme.example/a.png", "credentials"),
        ("https://cdn.acme.example:99999/a.png", "not a valid URL"),
        ("https:///a.png", "no host"),
    ],
)
def test_an_mms_image_url_is_a_public_https_url(url: str, problem: str | None) -> None:
    found = image_url_problem(url)
    assert (found is None) if problem is None else (found is not None and problem in found), found
    if problem is not None:
        with pytest.raises(ValidationError, match="image_url"):
            MmsContent.model_validate({"image_url": url})


def test_messenger_tags_go_with_message_tag_only_and_viber_ttl_is_bounded() -> None:
    assert MessengerContent().category == "update"
    assert MessengerContent.model_validate({"category": "message_tag", "tag": "ACCOUNT_UPDATE"}).tag == "ACCOUNT_UPDATE"
    for given in ({"category": "message_tag"}, {"category": "update", "tag": "ACCOUNT_UPDATE"}, {"tag": "SALE"}):
        with pytest.raises(ValidationError):
            MessengerContent.model_validate(given)
    assert ViberContent.model_validate({"ttl": 30}).ttl == 30
    for ttl in (29, 259_201):
        with pytest.raises(ValidationError):
            ViberContent.model_validate({"ttl": ttl})


def test_a_segment_or_fallback_on_these_channels_replaces_the_campaigns_content() -> None:
    campaign: dict[str, Any] = {
        "channel": "sms",
        "sender": "Acme",
        "template": "Hi",
        "segments": [
            {"name": "fb", "channel": "messenger", "sender": "112233445566778", "messenger": {"category": "update"}},
            {
                "name": "pic",
                "channel": "mms",
                "sender": "+14155550100",
                "mms": {"image_url": "https://a.example/p.png"},
            },
        ],
        "fallback": {"channel": "viber_service", "sender": "AcmeViber", "viber": {"ttl": 60}},
    }
    fb = segments.effective(campaign, "fb")
    assert (fb["channel"], fb["sender"], fb["messenger"], fb["mms"]) == (
        "messenger",
        "112233445566778",
        {"category": "update"},
        None,
    )
    pic = segments.effective(campaign, "pic")
    assert (pic["channel"], pic["mms"], pic["template"]) == ("mms", {"image_url": "https://a.example/p.png"}, "Hi")
    fallback = segments.effective(campaign, "fb", channel_step=1)
    assert (fallback["channel"], fallback["viber"], fallback["messenger"]) == ("viber_service", {"ttl": 60}, None)


def test_mms_is_checked_against_sms_opt_outs_and_viber_and_messenger_against_their_own() -> None:
    assert [send_scope(channel, "marketing") for channel in ("mms", "viber_service", "messenger")] == [
        "sms",
        "viber",
        "messenger",
    ]
    assert stop_scopes("mms", every_category=False) == ("sms",)  # a STOP by MMS ends SMS and MMS alike


def test_a_messenger_suppression_is_a_page_scoped_id_and_the_others_stay_numbers() -> None:
    assert suppressed_destination("7000000000000001", "messenger") == "7000000000000001"
    assert suppressed_destination("+14155550100", "viber_service") == "+14155550100"
    with pytest.raises(AddressError):
        suppressed_destination("+14155550100", "messenger")
    with pytest.raises(AddressError):
        suppressed_destination("7000000000000001", "sms")
