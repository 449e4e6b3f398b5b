"""Send times under the account's sender and country limits (decision 25).

Every campaign of an account sending from one sender, or to one country, takes its sends' places on that
limit's ledger (store/limits.py): a chunk takes one span per limit, for the recipients it covers, and
each of those recipients is sent at the later of its place in the campaign's span and its place in the
limit's. Chunks take spans in the order they reach dispatch, so campaigns sharing a limit share it in
proportion to what they release (each releases at most its own rate).
"""

from __future__ import annotations

import time

import phonenumbers

from chalicelib.domain import pacing
from chalicelib.store import limits

SENDER, COUNTRY = "sender", "country"


def sender_name(sender: str) -> str:
    """A sender as its limit names it: a number without its `+`, an alphanumeric id as it is."""
    return sender.strip().removeprefix("+")


def country_of(address: str) -> str | None:
    """The ISO 3166-1 country of an E.164 number (None for an email address or SIP URI, or a number
    phonenumbers cannot place)."""
    if not address.startswith("+"):
        return None
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(address, None))
    except phonenumbers.NumberParseException:
        return None
    return region if region and region != "ZZ" else None


def limit_keys(sender: str, address: str) -> list[tuple[str, str]]:
    """The (kind, name) of every limit a send from `sender` to `address` could come under."""
    keys = [(SENDER, sender_name(sender))]
    country = country_of(address)
    if country:
        keys.append((COUNTRY, country))
    return keys


def send_times(
    account_id: str,
    rates: dict[tuple[str, str], float],
    covered: list[list[tuple[str, str]]],
    paced: list[float],
    lead: float = 0.0,
) -> list[float]:
    """`paced` (each recipient's place in its campaign's span), moved later where the limits in `rates` that
    cover it (`covered[i]`) are busy: one span per limit for the recipients of the chunk it covers, starting
    no sooner than `lead` seconds from now."""
    members: dict[tuple[str, str], list[int]] = {}
    for index, keys in enumerate(covered):
        for key in keys:
            if key in rates:
                members.setdefault(key, []).append(index)
    times = list(paced)
    for (kind, name), indexes in members.items():
        rate = pacing.paced_rate(rates[(kind, name)])
        earliest = max(paced[indexes[0]], time.time() + lead)
        start = limits.take_span(account_id, kind, name, count=len(indexes), rate=rate, earliest=earliest)
        if start is None:  # deleted since this invocation read it
            continue
        for place, index in enumerate(indexes):
            times[index] = max(times[index], start + place / rate)
    return times
