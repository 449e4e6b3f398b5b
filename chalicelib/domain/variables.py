"""Which variables a campaign's texts need, and how many recipients of its list lack each one, from the
list's field counts (a list counts how many recipients have each attribute and destination type).

Every text counts: the template and its locales, variants' and segments' templates, an email's subject,
HTML part and unsubscribe link, WhatsApp parameters and an HTTP action's URL, headers and body. The service
defines `id` and `to` for every recipient (and `message` for an action), and the address each send goes to
under its type's name (`phone` for SMS); the campaign's `data` defines its keys for everyone.
"""

from __future__ import annotations

from typing import Any

from chalicelib.domain.ncco import strings_of
from chalicelib.domain.recipients import CHANNEL_DESTINATIONS, DestinationType
from chalicelib.domain.template import global_names

ALWAYS = frozenset({"id", "to"})
DESTINATION_TYPES = frozenset(t.value for t in DestinationType)


def texts(campaign: dict[str, Any]) -> list[str]:
    found = [campaign.get("template") or "", *(campaign.get("template_locales") or {}).values()]
    for kind in ("variants", "segments"):
        found += [part["template"] for part in campaign.get(kind) or [] if part.get("template")]
    email = campaign.get("email") or {}
    found += [email[name] for name in ("subject", "html", "unsubscribe_url") if email.get(name)]
    for localised in (campaign.get("email_locales") or {}).values():
        found += [text for text in localised.values() if text]
    found += list((campaign.get("whatsapp") or {}).get("parameters") or [])
    voice = campaign.get("voice") or {}
    found += strings_of([voice.get("ncco") or [], voice.get("connect") or {}])
    action = campaign.get("action") or {}
    found += [action[name] for name in ("url", "body") if action.get(name)]
    found += list((action.get("headers") or {}).values())
    return [text for text in found if text]


def needed(campaign: dict[str, Any]) -> set[str]:
    """The variables the campaign's texts read that neither the service nor its `data` defines."""
    names: set[str] = set()
    for text in texts(campaign):
        names |= global_names(text)
    routed = CHANNEL_DESTINATIONS.get(str(campaign.get("channel") or "sms"), ())
    given = ALWAYS | set(campaign.get("data") or {}) | ({"message"} if campaign.get("action") else set())
    given |= {routed[0].value} if routed else set()  # the address every send of the channel goes to
    return names - given


def missing(campaign: dict[str, Any], recipients: int, field_counts: dict[str, Any]) -> dict[str, int]:
    """For each needed variable, how many of the list's `recipients` lack it (only those lacking one). A name
    that is also a destination type counts as had by whoever has either (so: at least this many lack it)."""
    lacking: dict[str, int] = {}
    for name in sorted(needed(campaign)):
        have = int(field_counts.get(f"attributes.{name}", 0))
        if name in DESTINATION_TYPES:
            have = max(have, int(field_counts.get(f"destinations.{name}", 0)))
        if recipients - have > 0:
            lacking[name] = recipients - have
    return lacking
