"""What recipients answer (decision 40): the keywords of an inbound message (STOP, START, HELP), the
suppression scopes a channel's sends are checked against, and how a provider's delivery receipts move a
delivery and the campaign's receipt counters. Pure."""

from __future__ import annotations

import unicodedata

from chalicelib.domain.delivery import RECEIPT_PREFIX
from chalicelib.domain.recipients import normalize_e164, normalize_email, normalize_page_scoped_id

# Opting out: the carriers' (CTIA's) STOP family, and the words French, Spanish, German, Italian and
# Portuguese speakers send. Matched on the whole message, case, accents, spaces and punctuation ignored.
STOP_WORDS = frozenset(
    {
        "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE",
        "ARRET", "DESABONNER", "DESINSCRIRE", "BAJA", "ALTO", "PARAR", "CANCELAR", "STOPP", "ABMELDEN",
        "BASTA", "PARE", "SAIR",
    }
)  # fmt: skip
# Every scope of the channel at once (on WhatsApp, utility messages as well as marketing ones).
STOP_ALL_WORDS = frozenset({"STOPALL"})
START_WORDS = frozenset({"START", "UNSTOP", "YES", "SUBSCRIBE", "ALTA", "ANMELDEN"})
HELP_WORDS = frozenset({"HELP", "INFO", "AIDE", "AYUDA", "HILFE", "AIUTO", "AJUDA"})

# A channel's sends are checked against one scope; an opt-out adds to one, or to every scope of a channel.
# WhatsApp keeps marketing and utility apart (Meta's categories): a STOP ends marketing messages only.
SCOPES_OF_CHANNEL: dict[str, tuple[str, ...]] = {
    "sms": ("sms",),
    "mms": ("sms",),
    "whatsapp": ("whatsapp.marketing", "whatsapp.utility"),
    "viber_service": ("viber",),
    "messenger": ("messenger",),
    "voice": ("voice",),
    "email": ("email",),
}
SCOPES = tuple(dict.fromkeys(scope for scopes in SCOPES_OF_CHANNEL.values() for scope in scopes))
# The channels a suppression can be asked for through the API: each channel, or `all` of them.
SUPPRESSION_CHANNELS = ("sms", "whatsapp", "viber_service", "messenger", "voice", "email", "all")


def keyword(text: str) -> str:
    """The message as one word: accents, case, spaces and punctuation dropped ("  Arrêt! " is ARRET,
    "opt-out" is OPTOUT)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if c.isalnum()).upper()


def intent(text: str) -> str | None:
    """What an inbound message asks: `stop_all`, `stop`, `start`, `help`, or None (a reply like any other)."""
    word = keyword(text)
    if word in STOP_ALL_WORDS:
        return "stop_all"
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return None


def send_scope(channel: str, category: str | None) -> str | None:
    """The scope a send on `channel` is checked against (None: an HTTP action, never suppressed)."""
    if channel == "whatsapp":
        return "whatsapp.marketing" if category == "marketing" else "whatsapp.utility"
    scopes = SCOPES_OF_CHANNEL.get(channel)
    return scopes[0] if scopes else None


def scopes_for(channel: str) -> tuple[str, ...]:
    """The scopes a suppression asked for `channel` (or `all`) covers."""
    return SCOPES if channel == "all" else SCOPES_OF_CHANNEL[channel]


def stop_scopes(channel: str, every_category: bool) -> tuple[str, ...]:
    """The scopes an inbound STOP on `channel` suppresses: on WhatsApp marketing only, unless STOPALL."""
    if channel == "whatsapp" and not every_category:
        return ("whatsapp.marketing",)
    return SCOPES_OF_CHANNEL.get(channel, ("sms",))


def suppressed_destination(raw: str, channel: str) -> str:
    """A destination to suppress on `channel` as recipients' destinations hold it: an email for `email`, a
    page-scoped id for `messenger`, a number for the others (a number or an email for `all`); AddressError
    otherwise. (A Messenger id is digits like a number written without '+': only `messenger` reads it so.)"""
    if channel == "email" or (channel == "all" and "@" in raw):
        return normalize_email(raw)
    if channel == "messenger":
        return normalize_page_scoped_id(raw)
    return normalize_e164(raw)


# The channels whose inbound messages go to an id the account registered (POST /v1/numbers with its channel)
# rather than to a number: Viber to the service id, Messenger to the page id.
ID_CHANNELS = frozenset({"viber_service", "messenger"})


def registered_as(channel: str) -> str:
    """The `channel` of the registration (POST /v1/numbers) a message on `channel` goes to: `sms` for a number
    (SMS, MMS, WhatsApp), else the channel's own id."""
    return channel if channel in ID_CHANNELS else "sms"


def inbound_addresses(channel: str, to: str, sender: str) -> tuple[str, str]:
    """An inbound message's two ends as the account registered its end and as recipients' destinations hold
    the other: numbers in E.164 with '+'; a Viber service id, a page id and a person's page-scoped id as
    they are (digits, never a '+')."""
    to = to.strip() if channel in ID_CHANNELS else normal_address(to)
    return to, sender.strip() if channel == "messenger" else normal_address(sender)


def normal_address(address: str) -> str:
    """A number as recipients' destinations hold it: E.164 with its '+' (Vonage sends numbers without)."""
    address = address.strip()
    if "@" in address or address.startswith("+"):
        return address
    return f"+{address}"


# --- delivery receipts ------------------------------------------------------------------------------

# How far along a message a receipt says it got: a receipt moves a delivery forward only, so a late or
# repeated one (delivered after read, a second delivered) changes nothing.
RECEIPT_RANK = {"submitted": 1, "delivered": 2, "rejected": 2, "undeliverable": 2, "read": 3}
RECEIPT_COUNTERS = ("delivered", "read", "undelivered")
# Deliveries in flight waiting for their receipt before a fallback (decision 48; those with `receipt_due`):
# kept beside the counters, not shown; the pacer does not count them as sends under way.
RECEIPTS_WAITING = f"{RECEIPT_PREFIX}waiting"


def receipt_counters(receipt: str | None) -> set[str]:
    """The receipt counters a delivery with this receipt is counted in (read implies delivered)."""
    if receipt == "read":
        return {"delivered", "read"}
    if receipt == "delivered":
        return {"delivered"}
    if receipt in ("rejected", "undeliverable"):
        return {"undelivered"}
    return set()


def receipt_deltas(old: str | None, new: str | None) -> dict[str, int]:
    """How a delivery's receipt changing from `old` to `new` moves the campaign's receipt counters."""
    before, after = receipt_counters(old), receipt_counters(new)
    deltas = {f"{RECEIPT_PREFIX}{name}": 1 for name in after - before}
    deltas.update({f"{RECEIPT_PREFIX}{name}": -1 for name in before - after})
    return deltas
