"""The API's request and response bodies; the OpenAPI document is generated from these."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Generic, Literal, TypeVar
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from chalicelib.domain.campaign import CampaignStatus, EndHandle
from chalicelib.domain.delivery import DeliveryState, OutcomeReason, SkipReason
from chalicelib.domain.ncco import LANGUAGE_PATTERN, MAX_ACTIONS, Endpoint, NccoAction, strings_of
from chalicelib.domain.recipients import (
    LARGEST_FLOAT,
    LOCALE_PATTERN,
    MAX_BATCH,
    MAX_DESTINATIONS,
    MESSENGER_ID,
    DestinationIn,
    DestinationType,
    Param,
    storable_attributes,
)
from chalicelib.domain.recurrence import parse as parse_expression
from chalicelib.domain.retry import RetryPolicy
from chalicelib.domain.segments import MAX_DAYS, value_problem
from chalicelib.domain.tabular import ColumnMapping
from chalicelib.domain.template import TemplateError, compile_template
from chalicelib.domain.uploads import MAX_UPLOAD_BYTES, MULTIPART_FROM_BYTES, UploadFormat, UploadState
from chalicelib.domain.windows import SendWindow, validate_zone

MAX_EXCLUSION_LISTS = 5


MIN_MAX_AGE_SECONDS = 60
MAX_MAX_AGE_SECONDS = 366 * 86400
# Template versions are numbered from 1 (six digits in their keys).
MAX_TEMPLATE_VERSION = 999_999


# A campaign's global template data: typed and bounded as a recipient's attributes are.
TemplateData = Annotated[dict[str, Param], AfterValidator(storable_attributes)]


def checked_template(source: str) -> str:
    """A Liquid template that compiles in the bounded environment (ValueError naming why otherwise)."""
    try:
        compile_template(source)
    except TemplateError as exc:
        raise ValueError(f"not a valid Liquid template: {exc}") from exc
    return source


# A campaign's concurrency limit: each slot under way is an item (decision 28), so the limit is bounded.
MAX_CONCURRENT = 1_000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)


# --- accounts -------------------------------------------------------------------------------


class AccountCreate(Strict):
    name: str = Field(min_length=1, max_length=200)


class AccountCreated(BaseModel):
    id: str
    name: str
    api_key: str = Field(description="Shown once; only its hash is stored.")


# --- lists ----------------------------------------------------------------------------------


class ListCreate(Strict):
    name: str = Field(min_length=1, max_length=200)


class RecipientList(BaseModel):
    id: str
    name: str
    recipient_count: int
    created_at: str


class RecipientsAdd(Strict):
    recipients: list[Any] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description=(
            "Up to 10,000 list items ({id, destinations, attributes, locale, timezone}) or shorthand rows "
            "({phone, params}); bad rows are skipped and reported, not fatal."
        ),
    )
    default_region: str | None = Field(
        None,
        pattern=r"^[A-Z]{2}$",
        description="ISO 3166 country code for phone numbers written without '+' and a country code, e.g. GB.",
    )


RejectionReason = Literal["invalid_phone", "invalid_email", "invalid_address", "invalid_row", "duplicate"]


class RejectedRecipient(BaseModel):
    index: int = Field(description="Position of the row in the request's `recipients` array.")
    reason: RejectionReason
    field: str | None = Field(None, description="The field at fault, e.g. destinations[1].address.")
    detail: str
    id: str | None = Field(None, description="The row's recipient id, where it has one.")


class RecipientsAdded(BaseModel):
    received: int
    accepted: int
    invalid: int
    duplicates: int
    rejected: list[RejectedRecipient]
    recipient_count: int = Field(description="Recipients in the list after this batch.")


class DestinationOut(BaseModel):
    type: DestinationType
    address: str


class ListRecipient(BaseModel):
    id: str
    destinations: list[DestinationOut]
    attributes: dict[str, Any]
    locale: str | None = None
    timezone: str | None = None
    added_at: str


# --- campaigns ------------------------------------------------------------------------------


# What a campaign can send: its channel picks the adapter (chalicelib.channels) and the recipients'
# destinations it sends to (a phone number for SMS, an email address for email).
ChannelName = Literal["sms", "mms", "whatsapp", "viber_service", "messenger", "voice", "email", "http"]
MAX_SENDER = 254  # an email From address; an SMS sender id is 20 at most (sender_problem)
MAX_SMS_SENDER = 20
MAX_PAGE_ID = 50  # the Messages API's `FromId`


def _is_number(sender: str) -> bool:
    digits = sender.removeprefix("+")
    return digits.isascii() and digits.isdigit() and 7 <= len(digits) <= 15


def sender_problem(channel: str, sender: str) -> str | None:
    """Why `sender` cannot send on `channel`, or None."""
    if channel == "http":
        return None  # the action says who is calling
    if channel == "whatsapp":
        digits = sender.removeprefix("+")
        if not (digits.isascii() and digits.isdigit() and 7 <= len(digits) <= 15):
            return "a WhatsApp campaign's sender is its WhatsApp Business number, 7 to 15 digits (E.164)"
        return None
    if channel == "viber_service":
        return None if len(sender) <= 50 else "a Viber sender is the business's Viber service id, 50 characters at most"
    if channel == "mms":
        if not _is_number(sender):
            return "an MMS campaign's sender is the number it sends from, 7 to 15 digits (E.164): MMS has no sender ids"
        return None
    if channel == "messenger":
        if not (sender.isascii() and sender.isdigit() and len(sender) <= MAX_PAGE_ID):
            return f"a Messenger campaign's sender is its Facebook page id, digits ({MAX_PAGE_ID} at most)"
        return None
    if channel == "voice":
        digits = sender.removeprefix("+")
        if not (digits.isascii() and digits.isdigit() and 7 <= len(digits) <= 15):
            return "a voice campaign's sender is the number it calls from, 7 to 15 digits (E.164)"
        return None
    if channel == "email":
        try:
            validate_email(sender, check_deliverability=False)
        except EmailNotValidError as exc:
            return f"an email campaign's sender is its From address: {exc}"
        return None
    if len(sender) > MAX_SMS_SENDER:
        return f"at most {MAX_SMS_SENDER} characters on {channel} (an alphanumeric sender id or a number)"
    return None


class EmailContent(Strict):
    """What an email campaign sends beside its `template` (the plain-text part): every text here is a Liquid
    template over the same variables."""

    brand_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="An email brand of the account (POST /v1/brands): its layout wraps the HTML and text parts, "
        "with its logo, colours, postal address and the unsubscribe link. Copied in at creation.",
    )
    subject: str | None = Field(
        None,
        min_length=1,
        max_length=998,
        description="The Subject line (RFC 5322: 998 at most); required unless `template_id` names an email template "
        "(then its subject and HTML part are used, per locale).",
    )
    html: str | None = Field(
        None,
        min_length=1,
        max_length=100_000,
        description="The HTML part, sent beside the text part (multipart/alternative). Omit for text only.",
    )
    from_name: str | None = Field(
        None, min_length=1, max_length=100, description="The display name of the From address (the `sender`)."
    )
    reply_to: str | None = Field(None, min_length=3, max_length=254, description="A Reply-To address.")
    unsubscribe_url: str | None = Field(
        None,
        min_length=9,
        max_length=2000,
        description="An https URL (a Liquid template: each recipient's own link) that unsubscribes with one POST "
        "(RFC 8058): sent as List-Unsubscribe with List-Unsubscribe-Post, as Gmail and Yahoo require of bulk "
        "senders. Required for a `marketing` campaign.",
    )
    unsubscribe_mailto: str | None = Field(
        None, min_length=3, max_length=254, description="An address to write to for unsubscribing (List-Unsubscribe)."
    )

    @field_validator("subject", "html", "unsubscribe_url")
    @classmethod
    def _template_compiles(cls, value: str | None) -> str | None:
        return None if value is None else checked_template(value)

    @field_validator("unsubscribe_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not value.lower().startswith("https://"):
            raise ValueError("must be an https URL (a one-click unsubscribe link)")
        return value

    @field_validator("reply_to", "unsubscribe_mailto")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return validate_email(value, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise ValueError(f"not a valid email address: {exc}") from None


class VoiceRecording(Strict):
    """Record the whole call (Vonage's `record` NCCO action, first in the call's NCCO), and optionally have it
    transcribed: the links come on their own events and `GET /v1/calls` shows them."""

    format: Literal["mp3", "wav", "ogg"] = Field("mp3", description="The recording's audio format.")
    beep_start: bool = Field(False, description="A beep when the recording starts.")
    transcribe: bool = Field(False, description="Have Vonage transcribe the recording too.")
    transcription_language: str | None = Field(
        None,
        pattern=LANGUAGE_PATTERN,
        description="With `transcribe`: the language spoken (en-US, pt-BR, ...); omitted, the call's language.",
    )

    @model_validator(mode="after")
    def _language_with_transcription(self) -> VoiceRecording:
        if self.transcription_language is not None and not self.transcribe:
            raise ValueError("`transcription_language` goes with `transcribe: true`")
        return self


class VoiceContent(Strict):
    """A voice campaign's call (Vonage Voice API): the rendered `template` spoken in the recipient's language
    (then, given `connect`, the answered call connected to an agent), or an NCCO of its own. The outcome
    arrives on the call's event webhook: `completed` succeeds; `busy`, `timeout`/`unanswered` (no answer),
    `rejected`, `failed` and (with machine detection set to hang up) `machine` go to the retry policy; a
    call never reported is `unknown` after `ringing_timer` + `length_timer` + 5 minutes."""

    language: str = Field(
        "en-US",
        pattern=LANGUAGE_PATTERN,
        description="Text-to-speech language when the recipient's `locale` names none with a region (pt-BR).",
    )
    style: int | None = Field(None, ge=0, le=20, description="Vonage's vocal style for that language.")
    premium: bool = Field(False, description="Vonage's premium voices.")
    ncco: list[NccoAction] | None = Field(
        None,
        min_length=1,
        max_length=MAX_ACTIONS,
        description="An NCCO of its own instead of the spoken `template` (every string a Liquid template).",
    )
    connect: Endpoint | None = Field(
        None,
        description="After the speech, connect the answered call here: a number, a SIP URI or a websocket (an "
        "agent, or an AI agent on the socket). The campaign's `max_concurrent` then stands for the agents: a "
        "slot is held from the call's start until its last event.",
    )
    machine_detection: Literal["continue", "hangup"] | None = Field(
        None, description="`hangup`: an answering machine ends the call (`machine`, retried per the policy)."
    )
    ringing_timer: int = Field(60, ge=1, le=120, description="Seconds the call rings before `timeout`.")
    length_timer: int = Field(900, ge=1, le=7200, description="Seconds an answered call may last.")
    record: VoiceRecording | None = Field(
        None,
        description="Record each answered call (and optionally transcribe it): `GET /v1/calls` then shows its "
        "`recording_url` (and `transcript_url`) once Vonage posts them.",
    )

    @field_validator("ncco", mode="after")
    @classmethod
    def _strings_compile(cls, value: list[Any] | None) -> list[Any] | None:
        for action in value or []:
            for source in strings_of(action.model_dump(by_alias=True, exclude_none=True)):
                checked_template(source)
        return value

    @field_validator("connect", mode="after")
    @classmethod
    def _endpoint_compiles(cls, value: Any) -> Any:
        for source in strings_of(value.model_dump(by_alias=True, exclude_none=True) if value else {}):
            checked_template(source)
        return value


class WhatsAppContent(Strict):
    """A WhatsApp message template approved for the sender's WhatsApp Business Account, sent through the
    Vonage Messages API. It reaches anyone; free text (a session message: the campaign's `template` instead)
    reaches only someone who wrote to the sending number in the last 24 hours (decision 46)."""

    template_name: str = Field(
        pattern=r"^([A-Za-z0-9_-]{1,64}:)?[a-z0-9_]{1,512}$",
        description="The approved template's name (lower case, digits, _), after your WhatsApp namespace and a "
        "colon where Vonage asks for it (`<namespace>:<name>`).",
    )
    locale: str = Field(
        pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$",
        description="The template's language as WhatsApp names it, e.g. `en_US`, `pt_BR`, `de`.",
    )
    parameters: list[Annotated[str, StringConstraints(min_length=1, max_length=1024)]] = Field(
        default_factory=list,
        max_length=20,
        description="The template's body parameters in order ({{1}}, {{2}}, ...), each a Liquid template over the "
        "recipient's variables; each rendered value is at most 1,024 characters.",
    )

    @field_validator("parameters")
    @classmethod
    def _templates_compile(cls, value: list[str]) -> list[str]:
        for source in value:
            checked_template(source)
        return value


def image_url_problem(url: str) -> str | None:
    """Why the provider could not fetch an image from `url` for anyone, or None: https only, a host that is a
    public name (with a dot, not localhost) or a public address, no credentials. Nothing is resolved or fetched
    here: the provider fetches it when it sends."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        return "not a valid URL"
    if parts.scheme.lower() != "https":
        return "must be an https URL: the provider fetches the image from it"
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        return "the URL has no host"
    if parts.username is not None or parts.password is not None:
        return "credentials in the URL are not accepted: the image must be public"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if "." not in host or host.endswith((".localhost", ".local", ".internal")) or " " in host:
            return f"{host} is not a public host name: the provider fetches the image over the internet"
        return None
    return None if address.is_global else f"{host} is not a public address: the provider could not fetch the image"


class MmsContent(Strict):
    """An MMS (Vonage Messages API, channel `mms`): a picture to each recipient's phone, with the campaign's
    rendered `template` as its caption when it gives one (2,000 characters at most). From a number: MMS has no
    alphanumeric sender ids, and Vonage sends it from US numbers (10DLC, toll-free, short codes) to US numbers."""

    image_url: str = Field(
        min_length=12,
        max_length=2000,
        description="A public https URL of the image (.jpg, .jpeg, .png or .gif), which the provider fetches when "
        "it sends. Checked at creation: https, a public host, no credentials.",
    )

    @field_validator("image_url")
    @classmethod
    def _public_https(cls, value: str) -> str:
        problem = image_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class ViberContent(Strict):
    """Viber's own options for a `viber_service` campaign (its category follows the campaign's: `marketing` is a
    Viber `promotion`, `transactional` a `transaction`)."""

    ttl: int | None = Field(
        None,
        ge=30,
        le=259_200,
        description="Seconds Viber keeps trying to deliver the message, 30 to 259,200 (3 days); then it is dropped "
        "(Vonage's error 1390, no charge). Omit for Viber's default.",
    )


# The tags Facebook allows on a message sent outside the 24 hours after the person's last message.
MessengerTag = Literal["CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE", "HUMAN_AGENT"]


class MessengerContent(Strict):
    """How a Messenger campaign's texts are tagged (Facebook's messaging types, as Vonage's `messenger.category`
    names them). `response` and `update` reach only people who wrote to the page in the last 24 hours (the others
    are refused by Facebook: failed with reason `no_session`); outside it only a `message_tag` with a `tag`, and
    never promotional content, so not on a `marketing` campaign."""

    category: Literal["response", "update", "message_tag"] = Field(
        "update", description="`update` (the default): a message of the page's own within the 24-hour window."
    )
    tag: MessengerTag | None = Field(None, description="With `message_tag` only: the kind of update it is.")

    @model_validator(mode="after")
    def _tag_with_its_category(self) -> MessengerContent:
        if self.category == "message_tag" and self.tag is None:
            raise ValueError("a `message_tag` message names its `tag`")
        if self.category != "message_tag" and self.tag is not None:
            raise ValueError("`tag` goes with category `message_tag`")
        return self


class Variant(Strict):
    """One arm of an A/B test: its share of the recipients sent to, and what it changes."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,20}$", description="Letters, digits, - and _; unique.")
    weight: int = Field(strict=False, ge=1, le=100, description="Its share, in percent of the recipients not held out.")
    template: str | None = Field(None, min_length=1, max_length=1600, description="Omit: the campaign's template.")
    sender: str | None = Field(None, min_length=1, max_length=MAX_SENDER, description="Omit: the campaign's sender.")
    mms: MmsContent | None = Field(None, description="An MMS campaign's variant: its own image. Omit: the campaign's.")

    @field_validator("template")
    @classmethod
    def _template_compiles(cls, value: str | None) -> str | None:
        return None if value is None else checked_template(value)


SegmentValue = Param | list[Param]
MAX_SEGMENTS = 20


def _value_of(ops: list[str], value: dict[str, Any] | None) -> dict[str, Any]:
    """One op group's shape: these operators, with this value (None: no value)."""
    shape: dict[str, Any] = {"properties": {"op": {"enum": ops}}}
    if value is None:
        shape["properties"]["value"] = {"type": "null"}
    else:
        shape["required"] = ["value"]
        shape["properties"]["value"] = value
    return shape


_NUMBER = {"type": "number", "minimum": -LARGEST_FLOAT, "maximum": LARGEST_FLOAT}  # what DynamoDB stores
_SCALAR = {"anyOf": [{"type": "string"}, _NUMBER, {"type": "boolean"}]}


class Condition(Strict):
    """One condition of a segment (chalicelib/domain/segments.py says how each operator compares)."""

    # Which value each operator takes, in the schema too (a fuzzer or a client generator then builds
    # conditions that hold together).
    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [
                _value_of(["exists", "not_exists"], None),
                _value_of(["eq", "ne"], _SCALAR),
                _value_of(["in", "not_in"], {"type": "array", "minItems": 1, "maxItems": 100, "items": _SCALAR}),
                _value_of(["contains", "starts_with"], {"type": "string"}),
                _value_of(["gt", "gte", "lt", "lte"], _NUMBER),
                _value_of(["older_than_days"], {"type": "number", "minimum": 0, "maximum": MAX_DAYS}),
                _value_of(["before", "after"], {"type": "string"}),  # an ISO 8601 date or date-time
            ]
        }
    )

    field: str = Field(
        pattern=r"^(id|locale|timezone|attributes\.[A-Za-z0-9_-]{1,64}|destinations\.(phone|email|whatsapp|voice|messenger))$",
        description="`id`, `locale`, `timezone`, `attributes.<name>`, or `destinations.<type>` (the recipient's "
        "first address of that type).",
    )
    op: Literal[
        "eq",
        "ne",
        "in",
        "not_in",
        "contains",
        "starts_with",
        "gt",
        "gte",
        "lt",
        "lte",
        "exists",
        "not_exists",
        "before",
        "after",
        "older_than_days",
    ] = Field(description="How the field is compared with `value`.")
    value: SegmentValue | None = Field(
        None,
        description="A string, number or boolean; a list for `in`/`not_in` (100 at most); an ISO 8601 date for "
        "`before`/`after`; days for `older_than_days`; none for `exists`/`not_exists`.",
    )

    @field_validator("value")
    @classmethod
    def _suits_op(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, list) and len(value) > 100:
            raise ValueError("at most 100 values")
        problem = value_problem(str(info.data.get("op", "")), value)
        if problem and "op" in info.data:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _value_given(self) -> Condition:
        problem = value_problem(self.op, self.value)
        if problem:  # the field validator does not run for an omitted value
            raise ValueError(problem)
        return self


# The content fields a campaign, a segment or a fallback gives for its channel (each only with that channel).
CHANNEL_CONTENT = ("email", "whatsapp", "voice", "mms", "viber", "messenger", "action_id")


class Segment(Strict):
    """Recipients matching its conditions get what it names instead of the campaign's own (first match wins)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,20}$", description="Letters, digits, - and _; unique.")
    match: Literal["all", "any"] = Field("all", description="All conditions must hold, or any one.")
    conditions: list[Condition] = Field(min_length=1, max_length=10)
    template: str | None = Field(None, min_length=1, max_length=1600, description="Omit: the campaign's template.")
    sender: str | None = Field(
        None, min_length=1, max_length=MAX_SENDER, description="Omit: the campaign's (required with `channel`)."
    )
    channel: ChannelName | None = Field(
        None,
        description="Another channel for these recipients, with its `sender` and its content as a campaign of that "
        "channel gives it (`email`, `whatsapp`, `voice`, `mms`, `viber`, `messenger` or `action_id`; `template` "
        "omitted: the campaign's).",
    )
    email: EmailContent | None = Field(None, description="With channel `email`.")
    whatsapp: WhatsAppContent | None = Field(None, description="With channel `whatsapp`.")
    voice: VoiceContent | None = Field(None, description="With channel `voice`.")
    mms: MmsContent | None = Field(None, description="With channel `mms`.")
    viber: ViberContent | None = Field(None, description="With channel `viber_service` (optional).")
    messenger: MessengerContent | None = Field(None, description="With channel `messenger` (optional).")
    action_id: str | None = Field(None, min_length=1, max_length=64, description="With channel `http`.")

    @field_validator("template")
    @classmethod
    def _template_compiles(cls, value: str | None) -> str | None:
        return None if value is None else checked_template(value)

    @model_validator(mode="after")
    def _content_with_its_channel(self) -> Segment:
        for field in CHANNEL_CONTENT:
            if getattr(self, field) is not None and self.channel is None:
                raise ValueError(f"`{field}` goes with a `channel` of the segment's own")
        if self.channel is not None and self.channel != "http" and self.sender is None:
            raise ValueError(f"a segment sending {self.channel} gives the `sender` it sends from")
        return self


FallbackReason = Literal[
    "rejected",
    "no_destination",
    "busy",
    "no_answer",
    "machine",
    "provider_error",
    "unreachable",
    "no_session",
    "no_delivery",
]
# Channels whose sends get delivery receipts (the Messages API's status callbacks, SES's events): the ones a
# fallback `on: no_delivery` can wait on (decision 48).
RECEIPT_CHANNELS = ("sms", "mms", "whatsapp", "viber_service", "messenger", "email")


def _default_fallback_reasons() -> list[FallbackReason]:
    return ["rejected", "no_destination"]


class Fallback(Strict):
    """Another channel for a recipient the campaign's channel did not reach (decision 39): WhatsApp, then SMS
    when the number is refused or has no WhatsApp; SMS, then email for someone without a phone. One more
    attempt, on the fallback's channel, with its own sender and content."""

    channel: ChannelName
    sender: str | None = Field(
        None, min_length=1, max_length=MAX_SENDER, description="Required unless the channel is `http`."
    )
    on: list[FallbackReason] = Field(
        default_factory=_default_fallback_reasons,
        min_length=1,
        max_length=8,
        description="What sends the recipient to the fallback: the primary channel's last outcome, once its "
        "retries and failover are spent (`rejected`: the provider refused the message or number for good), "
        "`no_destination`: the recipient has no address the primary channel sends to, or `no_session`: a "
        "WhatsApp session message (text, no approved template) to someone with no open 24-hour window, found "
        "before the send or refused by WhatsApp (1340); `no_delivery`: the provider took the message but no "
        "delivered (or read) receipt came within `within_minutes`, or a rejected/undeliverable receipt came first "
        "(the recipient stays `in_flight` while it waits; decision 48).",
    )
    within_minutes: int | None = Field(
        None,
        strict=False,
        ge=1,
        le=1440,
        description="With `no_delivery` in `on` (and only then): how long a send the provider took waits for its "
        "delivered receipt before the fallback's attempt goes.",
    )
    template: str | None = Field(None, min_length=1, max_length=1600, description="Omit: the campaign's template.")
    email: EmailContent | None = Field(None, description="With channel `email`.")
    whatsapp: WhatsAppContent | None = Field(None, description="With channel `whatsapp`.")
    voice: VoiceContent | None = Field(None, description="With channel `voice`.")
    mms: MmsContent | None = Field(None, description="With channel `mms`.")
    viber: ViberContent | None = Field(None, description="With channel `viber_service` (optional).")
    messenger: MessengerContent | None = Field(None, description="With channel `messenger` (optional).")
    action_id: str | None = Field(None, min_length=1, max_length=64, description="With channel `http`.")

    @field_validator("template")
    @classmethod
    def _template_compiles(cls, value: str | None) -> str | None:
        return None if value is None else checked_template(value)

    @model_validator(mode="after")
    def _sender_for_its_channel(self) -> Fallback:
        if self.channel != "http" and self.sender is None:
            raise ValueError(f"a fallback sending {self.channel} gives the `sender` it sends from")
        if len(set(self.on)) != len(self.on):
            raise ValueError("`on` lists an outcome more than once")
        if "no_delivery" in self.on and self.within_minutes is None:
            raise ValueError("`on: no_delivery` waits `within_minutes` for the receipt: give it (1 to 1440)")
        if self.within_minutes is not None and "no_delivery" not in self.on:
            raise ValueError("`within_minutes` goes with `no_delivery` in `on`")
        return self


def check_segments(segments: list[Segment] | None) -> None:
    names = [s.name for s in segments or []]
    if len(set(names)) != len(names):
        raise ValueError("segment names must be unique")


def check_variants(variants: list[Variant] | None) -> None:
    """Weights adding up to 100 and unique names (ValueError otherwise)."""
    if not variants:
        return
    if sum(v.weight for v in variants) != 100:
        raise ValueError("the variants' weights must add up to 100")
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ValueError("variant names must be unique")


class FrequencyCap(Strict):
    """At most `max_messages` to one destination per `period_days` (a sliding window), counted across every
    campaign of the account with a cap of the same scope; a recipient over it is skipped with reason `capped`."""

    max_messages: int = Field(strict=False, ge=1, le=100, description="Messages allowed per destination per period.")
    period_days: int = Field(strict=False, ge=1, le=365, description="The sliding period, in days.")
    scope: Literal["account", "category"] = Field(
        "account",
        description="`account`: every capped campaign of the account counts; `category`: only those of the "
        "campaign's category (marketing or transactional). Campaigns sharing a scope should share the period.",
    )


class Recurrence(Strict):
    """A recurring campaign: an EventBridge Scheduler schedule starts a run of it at each occurrence. A run is
    a campaign of its own (its own counters, outcomes and list snapshot), listed under .../runs."""

    expression: str = Field(
        min_length=6,
        max_length=256,
        description="EventBridge Scheduler's `cron(minutes hours day-of-month month day-of-week year)` (`?` in "
        "one of the day fields; days of the week 1-7 = SUN-SAT or names; `L`, `W`, `#`) or `rate(n "
        "minute|minutes|hour|hours|day|days)`, e.g. `cron(0 9 ? * MON-FRI *)`.",
    )
    timezone: Annotated[str, AfterValidator(validate_zone)] = Field(
        "UTC", max_length=64, description="The IANA zone the expression is read in (DST-correct)."
    )
    start_date: AwareDatetime | None = Field(None, strict=False, description="No run before it.")
    end_date: AwareDatetime | None = Field(None, strict=False, description="No run after it; in the future.")
    overlap: Literal["skip", "queue"] = Field(
        "skip",
        description="When an occurrence finds the previous run still going: `skip` records it as skipped; "
        "`queue` starts it when that run finishes (one queued run at most; later ones are skipped).",
    )

    @field_validator("expression")
    @classmethod
    def _eventbridge_expression(cls, value: str) -> str:
        parse_expression(value)
        return value.strip()

    @model_validator(mode="after")
    def _dates_in_order(self) -> Recurrence:
        if self.end_date is not None and self.start_date is not None and self.end_date <= self.start_date:
            raise ValueError("end_date must be after start_date")
        return self


class CampaignCreate(Strict):
    # The message: `template` or `template_id` (one of them), or on WhatsApp `whatsapp`; `template_version`
    # only with `template_id`.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["template"]},
                {"required": ["template_id"]},
                {"required": ["whatsapp"]},
                {"required": ["voice"]},
                {"required": ["mms"]},
            ],
            "dependentRequired": {"template_version": ["template_id"]},
        }
    )

    name: str = Field(min_length=1, max_length=200)
    list_id: str = Field(min_length=1, max_length=64)
    channel: ChannelName = Field(
        "sms",
        description="`sms`, `mms`, `whatsapp`, `viber_service` and `messenger` (Vonage Messages API; WhatsApp "
        "sends the approved template given as `whatsapp`, or its `template` text as a session message, only to "
        "recipients who wrote to the sender, a number of the account, in the last 24 hours: the others are "
        "skipped as `no_session`; MMS the image of `mms` with the `template` as its caption; Viber a text, tagged "
        "`promotion` for a marketing campaign (`viber` sets its ttl); Messenger a text to each recipient's "
        "`messenger` destination (a page-scoped id) from the Facebook page id in `sender`, tagged as `messenger` "
        "says), `voice` "
        "(Vonage Voice API: a call, see `voice`), `email` (Amazon SES: give `email` too) or `http` (an HTTP "
        "action of the account: give `action_id`). The recipients' destinations of that channel's type are sent "
        "to (`http`: each recipient's first destination, whatever its type).",
    )
    sender: str = Field(
        min_length=1,
        max_length=MAX_SENDER,
        description="SMS: an alphanumeric sender id or a number (20 characters at most). MMS, WhatsApp, voice: a "
        "number (E.164). Viber: the business's Viber service id. Messenger: the Facebook page id. Email: the From "
        "address, an identity verified in SES (the address or its domain).",
    )
    email: EmailContent | None = Field(
        None, description="An email campaign's subject, HTML part and headers; required with channel `email`."
    )
    whatsapp: WhatsAppContent | None = Field(
        None,
        description="A WhatsApp campaign's approved template; with channel `whatsapp`, this or `template` (a "
        "session message, from a number registered by the account).",
    )
    voice: VoiceContent | None = Field(
        None,
        description="A voice campaign's call: its `template` is spoken, unless `voice.ncco` is given; required "
        "with channel `voice`.",
    )
    mms: MmsContent | None = Field(
        None,
        description="An MMS campaign's image; required with channel `mms` (its `template`, if any, is the caption).",
    )
    viber: ViberContent | None = Field(None, description="A Viber campaign's options (with channel `viber_service`).")
    messenger: MessengerContent | None = Field(
        None, description="How a Messenger campaign's messages are tagged (with channel `messenger`; default `update`)."
    )
    action_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="The HTTP action (POST /v1/actions) an `http` campaign calls for each recipient, copied in "
        "at creation; the campaign's rendered `template` is its `message` variable.",
    )
    template: str = Field(  # type: ignore[assignment]
        None,
        min_length=1,
        max_length=1600,
        description="Liquid template; recipient params are its variables. Give this or `template_id`.",
    )
    template_id: str = Field(  # type: ignore[assignment]
        None,
        min_length=1,
        max_length=64,
        description="A template of the account (POST /v1/templates) instead of `template`: its text and its "
        "locales, each recipient getting the one for its `locale` (pt-BR, then pt, then the default).",
    )
    template_version: int = Field(  # type: ignore[assignment]
        None,
        ge=1,
        le=MAX_TEMPLATE_VERSION,
        description="The template's version to send; omit for its latest (pinned at creation).",
    )
    data: TemplateData = Field(
        default_factory=dict,
        description="Global template data: every recipient's variables start from it, and each recipient's own "
        "attributes override it (Courier's rule). Typed and bounded as a recipient's attributes are.",
    )
    rate_per_second: float = Field(
        10, ge=0.01, le=1000, description="Messages per second for this campaign, 0.01 to 1000."
    )
    retry_policy: RetryPolicy | None = Field(None, description="Omit for no retries: one attempt each.")
    max_concurrent: int | None = Field(
        None,
        ge=1,
        le=MAX_CONCURRENT,
        description="At most this many attempts of the campaign under way at once, however many workers send it "
        "(VoIPBIN's service level: for calls, the agents available). Omit for no limit beyond the rate.",
    )
    start_at: AwareDatetime | None = Field(
        None,
        strict=False,
        description="When to start, ISO 8601 with an offset (e.g. 2026-12-01T09:00:00+01:00), in the future and "
        "within a year: the campaign is `scheduled` and an EventBridge Scheduler schedule starts it then. "
        "Omit for a draft started by POST .../start.",
    )
    category: Literal["marketing", "transactional"] = Field(
        "transactional",
        description="`marketing` campaigns get the 08:00-21:00 window in each recipient's local time (the TCPA's "
        "calling hours) unless they name one; `transactional` ones have no default window.",
    )
    window: SendWindow | None = Field(
        None,
        description="When recipients may be sent to, in each one's local time: the recipient's `timezone`, else the "
        "zones of its phone number (a number spanning several zones gets only the hours open in all), else the "
        "campaign's `timezone`. Out-of-window recipients wait, counted as queued, until it opens.",
    )
    timezone: Annotated[str, AfterValidator(validate_zone)] = Field(
        "UTC", max_length=64, description="The campaign's IANA time zone, for recipients the window cannot place."
    )
    frequency_cap: FrequencyCap | None = Field(None, description="Omit for no cap.")
    variants: list[Variant] = Field(
        default_factory=list,
        max_length=8,
        description="A/B test: up to 8 variants whose weights add up to 100; each recipient gets one, the same "
        "every time (a hash of the campaign and recipient ids). Counters per variant are on the campaign.",
    )
    holdout_percent: float = Field(
        0, strict=False, ge=0, le=50, description="Recipients held out (skipped with reason `held_out`), 0 to 50."
    )

    @field_validator("variants")
    @classmethod
    def _variants_add_up(cls, value: list[Variant]) -> list[Variant]:
        check_variants(value)
        return value

    segments: list[Segment] = Field(
        default_factory=list,
        max_length=MAX_SEGMENTS,
        description="Ordered segments (Vonage Bulk's conditions): each recipient gets the template and sender, or "
        "the channel and its content, of the first segment it matches; counters per segment are on the campaign. "
        "A/B variants apply on top.",
    )
    fallback: Fallback | None = Field(
        None,
        description="Another channel for recipients the campaign's channel did not reach (a refused message, no "
        "address for the channel): one more attempt there, after the retries and failover are spent.",
    )
    allow_missing_variables: bool = Field(
        False,
        description="Start even if some recipients of the list lack a variable the texts read (GET "
        ".../variables says which and how many; each such recipient fails unsent). Without it, the start is "
        "refused (422) naming them.",
    )
    no_segment: Literal["send", "skip"] = Field(
        "send",
        description="A recipient matching no segment: `send` it the campaign's own template, or `skip` it "
        "(skip_reason `no_segment`).",
    )
    segment_policy: Literal["first", "every"] = Field(
        "first",
        description="`first`: each recipient gets one message, its first matching segment's. `every`: one message "
        "per segment it matches, each on that segment's channel, sender and content, with its own delivery and "
        "outcome (GET .../recipients/{id} lists them under `messages`); `total` then counts messages. Needs "
        "segments.",
    )

    @field_validator("segments")
    @classmethod
    def _segment_names(cls, value: list[Segment]) -> list[Segment]:
        check_segments(value)
        return value

    recurrence: Recurrence | None = Field(
        None,
        description="Run the campaign on a schedule: it stays `scheduled` and each occurrence starts a run "
        "(GET .../runs). Not with `start_at`.",
    )
    expires_at: AwareDatetime | None = Field(
        None,
        strict=False,
        description="When the campaign expires, ISO 8601 with an offset: nothing is sent from then on, the "
        "recipients not reached are `expired` and so is the campaign. In the future, and after `start_at`.",
    )
    max_age_seconds: int | None = Field(
        None,
        ge=MIN_MAX_AGE_SECONDS,
        le=MAX_MAX_AGE_SECONDS,
        description="A maximum age: the campaign expires this long after it starts (its `expires_at` is set at "
        "the start, or kept if it comes earlier). Kept by a clone, unlike `expires_at`.",
    )
    next_campaign_id: str | None = Field(
        None,
        max_length=64,
        description="A draft or scheduled campaign of this account to start when this one completes (a chain; "
        "one that would lead back to this campaign is refused).",
    )
    end_handle: EndHandle = Field(
        EndHandle.STOP,
        strict=False,
        description="`stop`: the campaign sends to its list as it stood at the start and completes when every "
        "recipient of it is final (recipients added later are counted as `not_included`). `continue`: it stays "
        "running and sends to recipients added to the list later too, until PATCHed to `stop` (then it completes "
        "when every recipient it took is final). Not for a recurring campaign.",
    )
    exclusion_list_ids: list[str] = Field(
        default_factory=list,
        max_length=MAX_EXCLUSION_LISTS,
        description=(
            "Lists of this account whose recipients are not sent to: a recipient whose id, or any of whose "
            "destinations, is the id of an item of one of these lists is skipped with skip_reason `excluded`. "
            "(An item added without an id has its first destination as id, so a list of numbers or emails "
            "excludes those destinations.) At most 5."
        ),
    )

    @field_validator("template")
    @classmethod
    def _template_compiles(cls, value: str | None) -> str | None:
        return None if value is None else checked_template(value)


def copied_definition(campaign: dict[str, Any], name: str, left_out: frozenset[str]) -> dict[str, Any]:
    """A stored campaign's definition for a new campaign (a clone, a run) named `name`, without the fields
    `left_out`: checked as a creation would be, with what the creation adds to it (a pinned template's
    locales)."""
    fields = {
        field: campaign[field]
        for field in CampaignCreate.model_fields
        # None: the field's default; "": a WhatsApp campaign's template (it sends `whatsapp`)
        if field not in left_out and campaign.get(field) not in (None, "")
    }
    fields["name"] = name
    definition = CampaignCreate.model_validate(fields).model_dump(mode="json", exclude={"start_at", *left_out})
    definition["template_locales"] = campaign.get("template_locales")
    definition["template"] = definition.get("template") or campaign.get("template") or ""
    definition["email_locales"] = campaign.get("email_locales")
    definition["email_configuration_set"] = campaign.get("email_configuration_set")
    definition["email_brand"] = campaign.get("email_brand")
    definition["action"] = campaign.get("action")
    definition["whatsapp_locales"] = campaign.get("whatsapp_locales")
    definition["segment_extras"] = campaign.get("segment_extras")
    definition["fallback_extras"] = campaign.get("fallback_extras")
    return definition


class CampaignUpdate(Strict):
    """The fields to change; a field left out keeps its value. A draft takes any of them; a running or paused
    campaign `name`, `rate_per_second`, `expires_at`, `next_campaign_id`, `window`, `frequency_cap`,
    `end_handle` and `max_concurrent` only (the new rate paces what is released from then on, within a release
    window: 60 s on AWS). A finished campaign takes none."""

    name: str = Field(None, min_length=1, max_length=200)  # type: ignore[assignment]
    list_id: str = Field(None, min_length=1, max_length=64)  # type: ignore[assignment]
    sender: str = Field(None, min_length=1, max_length=MAX_SENDER)  # type: ignore[assignment]
    email: EmailContent = Field(None, description="An email campaign's new subject, HTML part and headers.")  # type: ignore[assignment]
    whatsapp: WhatsAppContent = Field(None, description="A WhatsApp campaign's new template.")  # type: ignore[assignment]
    voice: VoiceContent = Field(None, description="A voice campaign's new call.")  # type: ignore[assignment]
    mms: MmsContent = Field(None, description="An MMS campaign's new image.")  # type: ignore[assignment]
    viber: ViberContent | None = Field(None, description="A Viber campaign's options; null removes them.")
    messenger: MessengerContent = Field(None, description="A Messenger campaign's new tagging.")  # type: ignore[assignment]
    action_id: str = Field(None, min_length=1, max_length=64, description="Another HTTP action (copied in).")  # type: ignore[assignment]
    template: str = Field(None, min_length=1, max_length=1600)  # type: ignore[assignment]
    template_id: str = Field(  # type: ignore[assignment]
        None,
        min_length=1,
        max_length=64,
        description="Send this template of the account instead (its latest version, or "
        "`template_version`): replaces `template`.",
    )
    template_version: int = Field(None, ge=1, le=MAX_TEMPLATE_VERSION)  # type: ignore[assignment]
    data: TemplateData = Field(None, description="New global template data.")  # type: ignore[arg-type]

    rate_per_second: float = Field(None, ge=0.01, le=1000)  # type: ignore[assignment]
    retry_policy: RetryPolicy | None = Field(None, description="null removes retries: one attempt each.")
    max_concurrent: int | None = Field(
        None,
        ge=1,
        le=MAX_CONCURRENT,
        description="A new concurrency limit (also while running or paused: within a second); null removes it.",
    )
    start_at: AwareDatetime | None = Field(
        None,
        strict=False,
        description="A new start time (reschedules; the campaign becomes `scheduled`); null unschedules it.",
    )
    expires_at: AwareDatetime | None = Field(
        None,
        strict=False,
        description="A new expiry, in the future (also while running or paused); null removes it.",
    )
    max_age_seconds: int | None = Field(
        None, ge=MIN_MAX_AGE_SECONDS, le=MAX_MAX_AGE_SECONDS, description="A new maximum age; null removes it."
    )
    recurrence: Recurrence | None = Field(
        None, description="A new recurrence (draft or scheduled only); null makes a recurring campaign a draft."
    )
    category: Literal["marketing", "transactional"] = Field(None)  # type: ignore[arg-type]
    window: SendWindow | None = Field(
        None, description="A new window (also while running or paused: from the next dispatch); null removes it."
    )
    timezone: Annotated[str, AfterValidator(validate_zone)] = Field(None, max_length=64)  # type: ignore[assignment]
    frequency_cap: FrequencyCap | None = Field(
        None, description="A new cap (also while running or paused); null removes it."
    )
    variants: list[Variant] = Field(None, max_length=8)  # type: ignore[arg-type]
    holdout_percent: float = Field(None, strict=False, ge=0, le=50)  # type: ignore[assignment]
    segments: list[Segment] = Field(None, max_length=MAX_SEGMENTS)  # type: ignore[arg-type]
    no_segment: Literal["send", "skip"] = Field(None)  # type: ignore[arg-type]
    segment_policy: Literal["first", "every"] = Field(None)  # type: ignore[arg-type]
    fallback: Fallback | None = Field(None, description="Another channel; null removes it.")
    allow_missing_variables: bool = Field(None)  # type: ignore[assignment]

    @field_validator("segments")
    @classmethod
    def _segment_names(cls, value: list[Segment]) -> list[Segment]:
        check_segments(value)
        return value

    @field_validator("variants")
    @classmethod
    def _variants_add_up(cls, value: list[Variant]) -> list[Variant]:
        check_variants(value)
        return value

    next_campaign_id: str | None = Field(None, max_length=64, description="null ends the chain here.")
    end_handle: EndHandle = Field(  # type: ignore[assignment]
        None,
        strict=False,
        description="Also while running or paused: `stop` ends an evergreen campaign once what it took is final.",
    )
    exclusion_list_ids: list[str] = Field(None, max_length=MAX_EXCLUSION_LISTS)  # type: ignore[arg-type]

    @field_validator("template")
    @classmethod
    def _template_compiles(cls, value: str) -> str:
        return checked_template(value)


class VariableCheck(BaseModel):
    """The campaign's texts against its list, as the list stands now."""

    recipients: int = Field(description="The list's recipients.")
    counted: bool = Field(
        description="Whether the list counts its recipients' attributes (lists created before the counts were "
        "kept do not, until cleared): when false, `missing` is empty because it is unknown."
    )
    variables: list[str] = Field(description="The variables the texts read that each recipient must have.")
    missing: dict[str, int] = Field(description="For each variable some recipients lack: how many lack it.")


class CampaignClone(Strict):
    name: str = Field(None, min_length=1, max_length=200, description="Defaults to the original's name + ' (copy)'.")  # type: ignore[assignment]


class Counters(BaseModel):
    """total = queued + in_flight + succeeded + failed + unknown + skipped + expired, at every read."""

    total: int = Field(
        description="The audience: the list's recipients from creation (as the list stood then, or when `list_id` "
        "was changed), counted again at start, and exact once the whole list is released."
    )
    queued: int = Field(description="Not sent yet: waiting for release, for a retry, or parked by a pause.")
    in_flight: int = Field(description="Being sent now.")
    succeeded: int = Field(description="Accepted by the provider.")
    failed: int = Field(description="Failed for good: a permanent error, retries exhausted, or dead-lettered.")
    unknown: int = Field(
        description="The send may have happened but no answer came back (a timeout after sending, a worker "
        "that stopped); not resent, since the channel takes no idempotency key."
    )
    skipped: int = Field(0, description="Not sent on purpose, e.g. excluded by an exclusion list.")
    skipped_by_reason: dict[str, int] = Field(
        default_factory=dict,
        description="`skipped` by why: excluded, capped, held_out, no_segment, opted_out, no_session (a WhatsApp "
        "session message to someone who has not written in the last 24 hours); those seen so far.",
    )
    expired: int = Field(0, description="Not sent because the campaign expired first.")
    delivered: int = Field(
        0,
        description="Beside the outcomes, from the provider's receipts: messages the recipient's phone (or "
        "WhatsApp, or the recipient's mail server per SES) reported delivered, read ones included.",
    )
    read: int = Field(0, description="Messages reported read (WhatsApp; an email opened or clicked, per SES).")
    undelivered: int = Field(
        0, description="Accepted messages the receipts reported rejected or undeliverable (an email that bounced)."
    )
    replied: int = Field(
        0, description="Recipients who replied to the campaign's number (each once, however often they replied)."
    )
    clicked: int = Field(0, description="Recipients who followed a tracked link of the campaign at least once.")
    clicks: int = Field(0, description="Tracked links followed, every click counted (HEAD requests are not).")
    converted: int = Field(0, description="Recipients with at least one conversion reported.")
    conversions: int = Field(0, description="Conversions reported (POST /v1/campaigns/{id}/conversions).")
    not_included: int = Field(
        0,
        description="Outside `total`: recipients added to the list after the start of an `end_handle: stop` "
        "campaign, which it does not send to.",
    )


class Campaign(BaseModel):
    id: str
    name: str
    list_id: str
    channel: str
    sender: str
    template: str
    email: EmailContent | None = Field(None, description="An email campaign's subject, HTML part and headers.")
    whatsapp: WhatsAppContent | None = Field(None, description="A WhatsApp campaign's template.")
    voice: VoiceContent | None = Field(None, description="A voice campaign's call.")
    mms: MmsContent | None = Field(None, description="An MMS campaign's image.")
    viber: ViberContent | None = Field(None, description="A Viber campaign's options.")
    messenger: MessengerContent | None = Field(None, description="How a Messenger campaign's messages are tagged.")
    action_id: str | None = Field(None, description="The HTTP action an `http` campaign calls.")
    template_id: str | None = Field(None, description="The account's template it sends, if it names one.")
    template_version: int | None = Field(None, description="That template's version, pinned at creation.")
    template_locales: dict[str, str] = Field(
        default_factory=dict, description="The pinned version's localised texts, by BCP 47 tag."
    )
    data: dict[str, Any] = Field(default_factory=dict, description="Global template data.")
    rate_per_second: float
    retry_policy: RetryPolicy | None
    max_concurrent: int | None = Field(None, description="At most this many attempts under way at once.")
    category: Literal["marketing", "transactional"] = "transactional"
    window: SendWindow | None = Field(None, description="The window it names (a marketing one without: 08:00-21:00).")
    timezone: str = "UTC"
    frequency_cap: FrequencyCap | None = None
    variants: list[Variant] = Field(default_factory=list)
    holdout_percent: float = 0
    variant_counters: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="Per variant: in_flight, succeeded, failed, unknown, skipped, expired, waiting.",
    )
    segments: list[Segment] = Field(default_factory=list)
    no_segment: Literal["send", "skip"] = "send"
    segment_policy: Literal["first", "every"] = "first"
    recipients: int | None = Field(
        None,
        description="A `segment_policy: every` campaign's recipients (its list's count at the start), beside "
        "`counters.total`, which counts its messages (one per matching segment).",
    )
    fallback: Fallback | None = None
    allow_missing_variables: bool = False
    segment_counters: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="Per segment: in_flight, succeeded, failed, unknown, skipped, expired, waiting.",
    )
    exclusion_list_ids: list[str] = Field(default_factory=list)
    next_campaign_id: str | None = None
    end_handle: EndHandle = EndHandle.STOP
    next_problem: str | None = Field(None, description="Why the next campaign could not be started.")
    status: CampaignStatus
    pause_reason: str | None = Field(
        None, description="Why the service paused it (the provider refused the account); cleared on resume."
    )
    created_at: str
    start_at: str | None = Field(None, description="When its schedule starts it (scheduled campaigns).")
    expires_at: str | None = Field(None, description="When it expires: nothing is sent from then on.")
    max_age_seconds: int | None = Field(None, description="Its maximum age from the start, if it has one.")
    recurrence: Recurrence | None = None
    next_run_at: str | None = Field(None, description="A recurring campaign's next occurrence.")
    run_of: str | None = Field(None, description="A run: the recurring campaign it is a run of.")
    started_at: str | None = None
    started_late_seconds: float | None = Field(
        None, description="Set when the campaign started over a minute after its start_at (a missed schedule)."
    )
    start_problem: str | None = Field(
        None, description="Why its schedule could not start it (it is a draft again), e.g. an empty list."
    )
    finished_at: str | None = None
    counters: Counters


class Attempt(BaseModel):
    """One attempt at a recipient, as its delivery's history keeps it."""

    attempt: int = Field(description="The attempt's number for this recipient, 1 for the first.")
    destination_index: int = Field(description="Which of the recipient's destinations it went to (0 is the first).")
    destination: str
    try_number: int = Field(description="The try on this destination, 1 for the first.")
    channel: str
    provider_message_id: str | None = None
    outcome: Literal["succeeded", "failed", "unknown", "retry", "failover", "fallback", "throttled", "account"] = Field(
        description="`retry`: tried again on the same destination; `failover`: the next destination was tried; "
        "`fallback`: the campaign's fallback channel was tried next; `throttled`: the provider asked to slow down, "
        "the same try again later (not counted); `account`: the "
        "provider refused the account (credentials, balance), the campaign paused and the try waits for resume."
    )
    reason: OutcomeReason | None = Field(None, description="Why it did not succeed, as the retry policy sees it.")
    error: str | None = None
    started_at: str
    ended_at: str


class DeliveryMessage(BaseModel):
    """One message's outcome in a campaign: a recipient's delivery, or in a `segment_policy: every` campaign one
    of its messages (one per segment it matched)."""

    recipient_id: str
    destination_index: int | None = Field(
        None, description="Which of the recipient's destinations the last attempt used (0 is the first)."
    )
    destination: str | None = Field(None, description="The address the last attempt was sent to.")
    destination_try: int | None = Field(None, description="The last attempt's try on that destination.")
    state: DeliveryState | Literal["pending"]
    attempts: int
    history: list[Attempt] = Field(
        default_factory=list, description="Every attempt, oldest first (kept in the write that closed it)."
    )
    provider_message_id: str | None = None
    last_error: str | None = None
    skip_reason: SkipReason | None = Field(None, description="Why a skipped recipient was not sent to.")
    next_attempt_at: str | None = None
    receipt: Literal["submitted", "delivered", "rejected", "undeliverable", "read"] | None = Field(
        None, description="The furthest the provider's receipts for the last attempt say it got."
    )
    receipt_error: str | None = Field(None, description="Why the receipt says it was not delivered.")
    delivered_at: str | None = None
    read_at: str | None = None
    clicks: int = Field(0, description="How many times the recipient followed a tracked link of the message.")
    clicked_at: str | None = Field(None, description="When it first did.")
    conversions: int = Field(0, description="Conversions reported for the recipient.")
    converted_at: str | None = Field(None, description="When its first conversion happened.")
    conversion_goal: str | None = Field(None, description="The last conversion's goal.")
    segment: str | None = Field(
        None, description="The segment this message was for (in a `segment_policy: every` campaign)."
    )
    updated_at: str


class Delivery(DeliveryMessage):
    """A recipient's outcome in a campaign. Until the campaign has sent to a recipient of its audience (the
    list as it stood at the start), the recipient is listed as `pending`, with no attempt."""

    messages: list[DeliveryMessage] | None = Field(
        None,
        description="GET .../recipients/{id} of a `segment_policy: every` campaign: its messages to the recipient, "
        "one per segment it matched (or one with no segment), each with its own state and history; the fields "
        "above are the first one's. Listings show each message as a row of its own.",
    )


class ConversionCreate(BaseModel):
    """A goal a recipient of the campaign reached (a purchase, a sign-up), reported by you."""

    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=True)

    recipient_id: str = Field(
        min_length=1, max_length=128, description="The recipient's id in the campaign's list (as its deliveries show)."
    )
    goal: str = Field(min_length=1, max_length=64, description="The goal's name, e.g. purchase.")
    value: float | None = Field(
        None, ge=0, le=1e12, allow_inf_nan=False, description="What it was worth (your currency, your units)."
    )
    occurred_at: AwareDatetime | None = Field(
        None, strict=False, description="When it happened (ISO 8601 with offset; not in the future); default: now."
    )


class Conversion(BaseModel):
    """A conversion recorded: the recipient's totals after it."""

    campaign_id: str
    recipient_id: str
    goal: str
    value: float | None = None
    occurred_at: str
    conversions: int = Field(description="The recipient's conversions in this campaign, this one included.")
    converted_at: str = Field(description="When its first conversion happened.")


class Call(BaseModel):
    """A voice campaign's call to one recipient: its last attempt's call, as its events left it."""

    id: str = Field(description="The provider's call uuid.")
    campaign_id: str
    recipient_id: str
    to: str = Field(description="The number called.")
    attempt: int
    status: str = Field(
        description="The call's last event: started, ringing, answered, human, machine, completed, busy, timeout, "
        "unanswered, cancelled, rejected, failed; `unreported` when none ended it by its deadline."
    )
    outcome: DeliveryState = Field(
        description="The recipient's state: in_flight while the call is under way; succeeded (completed), queued "
        "(tried again per the retry policy), failed or unknown (never reported)."
    )
    reason: str | None = Field(None, description="Why the call did not succeed, as the retry policy sees it.")
    answered_by: Literal["human", "machine"] | None = Field(None, description="What machine detection said.")
    duration_seconds: int | None = Field(None, description="How long the answered call lasted.")
    price: str | None = Field(None, description="What the provider charged, as it says it.")
    recording_url: str | None = None
    transcript_url: str | None = None
    started_at: str | None = None
    ended_at: str | None = None


class CallEvent(BaseModel):
    """A Vonage Voice API call event, as posted to the call's `event_url` (signed: `Authorization: Bearer`,
    HS256 with the signature secret, the body's SHA-256 as `payload_hash`)."""

    model_config = ConfigDict(extra="allow")

    uuid: str = Field(max_length=100)
    status: str = Field(max_length=40)
    conversation_uuid: str | None = Field(None, max_length=100)
    timestamp: str | None = Field(None, max_length=40)
    duration: Annotated[str, StringConstraints(max_length=10)] | Annotated[int, Field(ge=0, le=86_400)] | None = None
    price: Annotated[str, StringConstraints(max_length=20)] | Annotated[float, Field(ge=0, le=1_000_000)] | None = None
    detail: str | None = Field(None, max_length=200)
    recording_url: str | None = Field(None, max_length=2000)


class CallRecordingEvent(BaseModel):
    """What Vonage posts to a `record` action's `eventUrl` when the recording is ready (signed like the call
    events); the event URL names the call (`event=recording`)."""

    model_config = ConfigDict(extra="allow")

    recording_url: str = Field(min_length=1, max_length=2000, pattern=r"^https?://\S+$")
    recording_uuid: str | None = Field(None, max_length=100)
    conversation_uuid: str | None = Field(None, max_length=100)
    start_time: str | None = Field(None, max_length=40)
    end_time: str | None = Field(None, max_length=40)
    size: int | None = Field(None, ge=0, le=10_000_000_000)
    timestamp: str | None = Field(None, max_length=40)


class CallTranscriptionEvent(BaseModel):
    """What Vonage posts to a recording's transcription `eventUrl` (`event=transcription`) when it is done."""

    model_config = ConfigDict(extra="allow")

    conversation_uuid: str | None = Field(None, max_length=100)
    type: str | None = Field(None, max_length=40)
    recording_uuid: str | None = Field(None, max_length=100)
    status: str | None = Field(None, max_length=40)
    transcription_url: str | None = Field(None, max_length=2000, pattern=r"^https?://\S+$")


class CallEventResult(BaseModel):
    result: Literal["noted", "ended", "ignored"] = Field(
        description="noted: a call under way changed; ended: the attempt's outcome was recorded; ignored: "
        "nothing to change (a repeat, or an earlier attempt's event)."
    )


INBOUND_NUMBER = re.compile(r"^\+?[0-9]{6,15}$")
INBOUND_VIBER_ID = re.compile(r"^[0-9A-Za-z]{1,50}$")


class InboundMessage(BaseModel):
    """A Vonage Messages API inbound message, as posted to the application's inbound URL (signed like the
    call events)."""

    model_config = ConfigDict(extra="allow")

    channel: Literal["sms", "mms", "whatsapp", "viber_service", "messenger"]
    message_uuid: str = Field(min_length=1, max_length=100)
    to: str = Field(
        min_length=1,
        max_length=50,
        pattern=r"^\+?[0-9A-Za-z]{1,50}$",
        description="The account's number (E.164, '+' optional); on `viber_service` its Viber service id, on "
        "`messenger` its Facebook page id.",
    )
    from_: str = Field(
        alias="from",
        min_length=1,
        max_length=50,
        pattern=r"^\+?[0-9]{1,50}$",
        description="Who wrote: a number (E.164, '+' optional); on `messenger` their page-scoped id (PSID).",
    )
    timestamp: str | None = Field(None, max_length=40)
    text: str | None = Field(None, max_length=5000)

    @field_validator("to", "from_")
    @classmethod
    def _a_number_where_the_channel_takes_one(cls, value: str, info: ValidationInfo) -> str:
        """On SMS, MMS and WhatsApp both ends are numbers; on Viber the account's end is its service id, on
        Messenger both ends are ids (the page's and the person's)."""
        channel = info.data.get("channel")
        if channel is None:
            return value  # no channel to read it by: the channel's own error says so
        if channel == "viber_service" and info.field_name == "to":
            expected, what = INBOUND_VIBER_ID, "the Viber service id: letters and digits"
        elif channel == "messenger":
            expected, what = MESSENGER_ID, "an id: digits without '+'"
        else:
            expected, what = INBOUND_NUMBER, "a number of 6 to 15 digits"
        if not expected.match(value):
            raise ValueError(f"on {channel}, {what}")
        return value


class InboundResult(BaseModel):
    result: Literal["opted_out", "opted_in", "helped", "noted"] = Field(
        description="opted_out: a STOP word, the sender is suppressed for the channel; opted_in: START lifted "
        "that; helped: HELP, the number's help text was sent back; noted: any other reply."
    )


class MessageStatus(BaseModel):
    """A Vonage Messages API message-status callback (a delivery receipt), signed like the call events."""

    model_config = ConfigDict(extra="allow")

    message_uuid: str = Field(min_length=1, max_length=100)
    status: Literal["submitted", "delivered", "rejected", "undeliverable", "read"]
    timestamp: str | None = Field(None, max_length=40)
    channel: str | None = Field(None, max_length=20)
    client_ref: str | None = Field(None, max_length=100)
    to: str | None = Field(None, max_length=50)
    error: dict[str, Any] | None = None


class ReceiptResult(BaseModel):
    result: Literal["applied", "ignored", "kept"] = Field(
        description="applied: the delivery moved forward; ignored: a repeat, a late receipt or another "
        "attempt's; kept: no delivery matches it (yet): it is kept, not dropped."
    )


class SuppressionCreate(Strict):
    """Suppress a destination: no campaign of the account sends to it on that channel until it is lifted."""

    destination: str = Field(
        min_length=3, max_length=254, description="A phone number in E.164 (+ and country code) or an email address."
    )
    channel: Literal["sms", "whatsapp", "viber_service", "messenger", "voice", "email", "all"] = Field(
        description="The channel it applies to, or `all`. On WhatsApp it applies to marketing and utility "
        "messages alike (an inbound STOP suppresses marketing ones only)."
    )
    reason: str | None = Field(None, max_length=200, description="Kept with it, e.g. where the request came from.")


class Suppression(BaseModel):
    destination: str | None = Field(
        description="The number or email address; null once the person was erased (decision 42): the "
        "suppression still holds, keyed by a keyed hash of the address, but the address is no longer kept."
    )
    scope: str = Field(
        description="sms, whatsapp.marketing, whatsapp.utility, viber, messenger, voice or email: a send is "
        "skipped (`opted_out`) when its destination is suppressed in the scope of its channel."
    )
    source: Literal["inbound", "api", "erasure", "bounce", "complaint", "import", "handler"] = Field(
        description="inbound: the recipient sent a STOP word; api: added through this API; erasure: added by "
        "an erasure (DELETE /v1/recipients); bounce: SES reported a permanent bounce of an email to it; "
        "complaint: its recipient marked an email as spam; import: a row of a suppression import "
        "(POST /v1/suppressions/imports); handler: a reply handler's `unsubscribe`."
    )
    reason: str | None = None
    created_at: str


class SuppressionResult(BaseModel):
    destination: str
    scopes: list[str] = Field(description="The scopes changed: where it was not yet suppressed, or was.")


# What an account registers to take inbound messages on: a number, a Viber service id, a Facebook page id.
NumberChannel = Literal["sms", "viber_service", "messenger"]


class NumberCreate(Strict):
    """A number the account sends from and takes replies on: inbound messages to it are the account's. A
    Viber service id or a Facebook page id is registered the same way, so that what people send to it
    (STOP above all) reaches the account."""

    number: str = Field(
        min_length=1,
        max_length=50,
        description="`sms` (the default): E.164, with + and the country code; it takes SMS, MMS and WhatsApp "
        "messages. `viber_service`: the Viber service id, `messenger`: the Facebook page id, digits as the "
        "campaign's `sender` gives them.",
    )
    channel: NumberChannel = Field(
        "sms", description="What `number` is: a phone number, a Viber service id or a Facebook page id."
    )
    help_text: str = Field(
        min_length=1,
        max_length=320,
        description="Sent back to a recipient who texts HELP (or INFO, AIDE, AYUDA) to the number: who you are "
        "and how to stop messages (carriers require it).",
    )


class Number(BaseModel):
    number: str
    channel: NumberChannel = "sms"
    help_text: str
    created_at: str


EventType = Literal[
    "delivery.succeeded",
    "delivery.failed",
    "delivery.unknown",
    "delivery.skipped",
    "delivery.expired",
    "delivery.retrying",
    "receipt.delivered",
    "receipt.read",
    "receipt.undelivered",
    "message.received",
    "recipient.opted_out",
    "recipient.opted_in",
    "recipient.replied",
    "recipient.clicked",
    "recipient.converted",
    "webhook.disabled",
]


class Event(BaseModel):
    """Something that happened to a recipient, or a message from one (the event log, and webhooks' `data`)."""

    id: str = Field(description="Stable: the same event is never logged or sent under another id.")
    type: EventType
    occurred_at: str
    campaign_id: str | None = None
    recipient_id: str | None = None
    data: dict[str, Any] = Field(
        description="The delivery as it became (state, attempt, destination, skip_reason, last_error, receipt, "
        "...), or the message (from, to, channel, text)."
    )


class WebhookCreate(Strict):
    """An endpoint of yours that gets the account's events, signed per Standard Webhooks."""

    url: str = Field(min_length=8, max_length=2000, pattern=r"^https?://\S+$", description="https (http only locally).")
    event_types: list[EventType] = Field(
        default_factory=list, max_length=20, description="The events it gets; empty: every one."
    )
    description: str | None = Field(None, max_length=500)


class Webhook(BaseModel):
    id: str
    url: str
    event_types: list[EventType]
    description: str | None = None
    enabled: bool
    disabled_reason: str | None = Field(None, description="Why it was disabled (every delivery failing for days).")
    failing_since: str | None = Field(None, description="Set while its deliveries fail; cleared by the next success.")
    created_at: str


class WebhookSecret(BaseModel):
    """The secret to verify signatures with (`whsec_...`, Standard Webhooks), shown when created or rotated."""

    webhook: Webhook
    secret: str = Field(description="Verify `webhook-signature` with it (e.g. the `standardwebhooks` package).")
    previous_secret_until: str | None = Field(
        None, description="After a rotation, the previous secret still signs (a second signature) until then."
    )


class WebhookDelivery(BaseModel):
    id: str = Field(description="Pass to .../deliveries/{delivery_id}/replay to send it again.")
    event_id: str
    event_type: EventType
    state: Literal["delivered", "retrying", "dead_lettered"]
    attempts: int
    last_answer: str = Field(description="The endpoint's last status and the start of its answer, or why none came.")
    updated_at: str


class StatsPoint(BaseModel):
    """One minute, hour or day of a campaign: what happened in it (from its events)."""

    at: str = Field(description="The start of the minute, hour or day (UTC).")
    sent: int = Field(0, description="Accepted by the provider.")
    delivered: int = Field(0, description="Reported delivered by a receipt.")
    read: int = Field(0, description="Reported read (WhatsApp).")
    undelivered: int = Field(0, description="Reported rejected or undeliverable by a receipt.")
    failed: int = 0
    unknown: int = 0
    skipped: int = 0
    opted_out: int = Field(0, description="Skipped because the destination opted out (of `skipped`).")
    replies: int = Field(0, description="Messages recipients sent back to the campaign's number.")
    expired: int = 0
    retried: int = Field(0, description="Attempts that failed and were queued to be tried again.")
    clicks: int = Field(0, description="Tracked links followed (every click; HEAD requests not counted).")
    conversions: int = Field(0, description="Conversions reported through POST /v1/campaigns/{id}/conversions.")
    variants: dict[str, dict[str, int]] = Field(default_factory=dict, description="The same, per A/B variant.")
    segments: dict[str, dict[str, int]] = Field(default_factory=dict, description="The same, per segment.")


class CampaignStats(BaseModel):
    campaign_id: str
    granularity: Literal["minute", "hour", "day"]
    series: list[StatsPoint] = Field(description="Oldest first; only the minutes, hours or days with events.")


class Recount(BaseModel):
    """Counters rebuilt from the deliveries themselves."""

    before: Counters = Field(description="The counters as they were.")
    after: Counters = Field(description="The counters as the deliveries say.")
    drift: dict[str, int] = Field(description="after - before, for each counter that differed.")
    applied: bool = Field(
        description="False when the campaign kept changing during the recount; `after` was then not stored."
    )


Item = TypeVar("Item", bound=BaseModel)


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    next_page_token: str | None = Field(None, description="Pass back as `page_token` for the next page.")


# --- templates ------------------------------------------------------------------------------

LocaleTag = Annotated[str, StringConstraints(pattern=LOCALE_PATTERN, max_length=35)]
MAX_LOCALES = 50


class TemplateContent(Strict):
    text: str | None = Field(
        None,
        min_length=1,
        max_length=1600,
        description="The SMS text, an email's text part or what a call speaks: Liquid, the recipient's variables. "
        "Required, but for WhatsApp templates.",
    )
    subject: str | None = Field(
        None, min_length=1, max_length=998, description="Email templates: the Subject line (required in `content`)."
    )
    html: str | None = Field(None, min_length=1, max_length=100_000, description="Email templates: the HTML part.")
    whatsapp: WhatsAppContent | None = Field(
        None, description="WhatsApp templates: the approved template's name, language and parameter mapping."
    )
    voice: VoiceContent | None = Field(
        None, description="Voice templates: the call's language and voice (or an NCCO), for a campaign giving none."
    )

    @field_validator("text", "subject", "html")
    @classmethod
    def _template_compiles(cls, value: str | None) -> str | None:
        return None if value is None else checked_template(value)


class TemplateVersionCreate(Strict):
    content: TemplateContent
    locales: dict[LocaleTag, TemplateContent] = Field(
        default_factory=dict,
        max_length=MAX_LOCALES,
        description="Localised content by BCP 47 tag (e.g. `pt-BR`, `pt`): a recipient whose `locale` is pt-BR "
        "gets `pt-BR`, else `pt`, else `content`. Tags match whatever their case.",
    )


class TemplateCreate(TemplateVersionCreate):
    name: str = Field(min_length=1, max_length=200)
    channel: Literal["sms", "mms", "viber_service", "messenger", "email", "whatsapp", "voice"] = Field(
        "sms",
        description="`sms`, `viber_service` and `messenger` templates are a `text`; `mms` ones the image's caption "
        "(the image is the campaign's `mms.image_url`); `email` templates have a `subject` (and may have `html`); "
        "`whatsapp` ones an approved `whatsapp` template (per locale: its language); `voice` ones the `text` "
        "spoken and may have `voice`. A campaign pins a template of its own channel.",
    )


class TemplateVersion(BaseModel):
    version: int
    content: TemplateContent
    locales: dict[str, TemplateContent] = Field(default_factory=dict)
    created_at: str


class Template(BaseModel):
    id: str
    name: str
    channel: str
    latest_version: int = Field(description="Versions are immutable: a change is a new version.")
    created_at: str
    latest: TemplateVersion


class TemplatePreviewRequest(Strict):
    data: dict[str, Any] = Field(
        default_factory=dict, description="A sample recipient's variables (its attributes, `id`, `phone`)."
    )
    locale: LocaleTag | None = Field(None, description="The sample recipient's locale.")
    version: int | None = Field(None, ge=1, le=MAX_TEMPLATE_VERSION, description="Omit for the latest.")


class TemplatePreview(BaseModel):
    version: int
    locale: str | None = Field(description="The localised content used (null: the default).")
    text: str
    subject: str | None = Field(None, description="Email templates: the rendered Subject line.")
    html: str | None = Field(None, description="Email templates: the rendered HTML part.")
    whatsapp: WhatsAppContent | None = Field(
        None, description="WhatsApp templates: the template and language used, its parameters rendered."
    )
    characters: int
    encoding: Literal["GSM-7", "UCS-2"] | None = Field(
        None, description="SMS: GSM-7 when every character is in the GSM alphabet (null for other channels)."
    )
    segments: int | None = Field(
        None, description="SMS: parts a handset receives, each billed as one message (null for email)."
    )
    warnings: list[str] = Field(default_factory=list)


# --- email brands ---------------------------------------------------------------------------

HEX_COLOUR = r"^#[0-9A-Fa-f]{6}$"


class BrandColours(Strict):
    primary: str = Field("#1A73E8", pattern=HEX_COLOUR, description="The header rule and the links.")
    background: str = Field("#FFFFFF", pattern=HEX_COLOUR)
    text: str = Field("#202124", pattern=HEX_COLOUR)


class BrandCreate(Strict):
    """An email brand (Courier's `brand`): a layout that wraps an email campaign's content, with a logo, the
    brand's colours and a footer holding the sender's postal address and the unsubscribe link (CAN-SPAM)."""

    name: str = Field(min_length=1, max_length=200)
    logo_url: str | None = Field(None, max_length=2000, pattern=r"^https://\S+$", description="An https image.")
    colours: BrandColours = Field(default_factory=BrandColours)
    postal_address: str = Field(
        min_length=5, max_length=300, description="The sender's postal address, in every email's footer."
    )
    footer_text: str | None = Field(None, min_length=1, max_length=500, description="A line above the address.")
    unsubscribe_text: str = Field("Unsubscribe", min_length=1, max_length=100)


class Brand(BaseModel):
    id: str
    name: str
    logo_url: str | None = None
    colours: BrandColours
    postal_address: str
    footer_text: str | None = None
    unsubscribe_text: str
    created_at: str


# --- HTTP actions ---------------------------------------------------------------------------

# Statuses retried by default: the request did not take, and may next time.
DEFAULT_RETRY_STATUSES = [408, 425, 429, 500, 502, 503, 504]
HeaderName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")]
# Headers the action may not set: the guard sets Host, the client the framing, the auth its own.
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection", "authorization"})


class ActionAuth(Strict):
    """How the action authenticates. The secret (`password`, `token`, or the HMAC key) is kept in AWS Secrets
    Manager and never returned: the API answers `secret_set` instead."""

    type: Literal["none", "basic", "bearer", "hmac"] = "none"
    username: str | None = Field(None, min_length=1, max_length=200, description="Basic auth's user name.")
    secret: str | None = Field(
        None,
        min_length=1,
        max_length=4096,
        description="Basic: the password; bearer: the token; hmac: the signing key. Write-only.",
    )
    signature_header: HeaderName = Field(
        "X-Signature",
        description="hmac: the header that carries `t=<unix time>,v1=<hex HMAC-SHA256 of '<t>.<body>'>`.",
    )

    @model_validator(mode="after")
    def _complete(self) -> ActionAuth:
        if self.type != "none" and self.secret is None:
            raise ValueError(f"{self.type} auth needs its secret")
        if self.type == "basic" and self.username is None:
            raise ValueError("basic auth needs a username")
        if self.type == "none" and (self.secret is not None or self.username is not None):
            raise ValueError("no secret or username without an auth type")
        return self


class ActionCreate(Strict):
    """An HTTP action (Vonage Bulk's actions): the request made for each recipient. `url`, header values and
    `body` are Liquid templates over the recipient's variables, plus `message` (the campaign's rendered
    template)."""

    name: str = Field(min_length=1, max_length=200)
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str = Field(
        min_length=9,
        max_length=2000,
        description="https (http only on the local stack); its host must resolve to public addresses only.",
    )
    headers: dict[HeaderName, Annotated[str, StringConstraints(max_length=1000)]] = Field(
        default_factory=dict, max_length=20, description="Extra headers (not Host, Authorization or framing)."
    )
    body: str | None = Field(None, min_length=1, max_length=100_000, description="The body template.")
    content_type: str = Field("application/json", min_length=3, max_length=100)
    auth: ActionAuth = Field(default_factory=ActionAuth)
    timeout_seconds: float = Field(10, strict=False, ge=1, le=30, description="Per request, 1 to 30 s.")
    success_statuses: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=list, max_length=50, description="Statuses that mean success; empty: any 2xx."
    )
    success_json_field: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$",
        description="A dotted path into the JSON answer (e.g. `result.status`) that must also equal "
        "`success_json_value` for success.",
    )
    success_json_value: str | Annotated[int, Field(ge=-(10**15), le=10**15)] | bool | None = Field(
        None, validate_default=True, description="What that field must be (compared as JSON values)."
    )
    retry_statuses: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=lambda: list(DEFAULT_RETRY_STATUSES),
        validate_default=True,
        max_length=50,
        description="Statuses retried under the campaign's retry policy; any other failure is permanent.",
    )

    @field_validator("url", "body")
    @classmethod
    def _template_compiles(cls, value: str | None) -> str | None:
        return None if value is None else checked_template(value)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, template in value.items():
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"{name} is set by the service, not by the action")
            checked_template(template)
        return value

    @field_validator("success_json_value")
    @classmethod
    def _with_its_field(cls, value: Any, info: ValidationInfo) -> Any:
        if (info.data.get("success_json_field") is None) != (value is None):
            raise ValueError("success_json_field and success_json_value go together")
        return value

    @field_validator("retry_statuses")
    @classmethod
    def _not_successes(cls, value: list[int], info: ValidationInfo) -> list[int]:
        if set(value) & set(info.data.get("success_statuses") or ()):
            raise ValueError("a status cannot both succeed and be retried")
        return value


class ActionAuthView(BaseModel):
    type: str
    username: str | None = None
    signature_header: str | None = None
    secret_set: bool = Field(description="Whether a secret is kept for it (never returned).")


class Action(BaseModel):
    id: str
    name: str
    method: str
    url: str
    headers: dict[str, str]
    body: str | None
    content_type: str
    auth: ActionAuthView
    timeout_seconds: float
    success_statuses: list[int]
    success_json_field: str | None
    success_json_value: str | int | bool | None
    retry_statuses: list[int]
    created_at: str


class ActionTestRequest(Strict):
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="A sample recipient's variables (its attributes, `id`, `phone`, `email`, `message`).",
    )


class ActionTestResult(BaseModel):
    request: dict[str, Any] = Field(description="What was sent: method, url, headers (secrets masked), body.")
    status: int | None = Field(description="The answer's status (null: no answer).")
    outcome: Literal["succeeded", "retried", "failed", "unknown"] = Field(
        description="What a campaign would make of it: `retried` under its retry policy, `unknown` if the "
        "request may have arrived but no answer came back."
    )
    error: str | None = None
    response_headers: dict[str, str] = Field(default_factory=dict)
    response_body: str = Field("", description="The first 4 KiB of the answer, as text.")
    elapsed_ms: int


# --- uploads --------------------------------------------------------------------------------


class UploadCreate(Strict):
    filename: str = Field(min_length=1, max_length=255, description="The file's name; its extension gives the format.")
    format: UploadFormat | None = Field(None, description="csv or xlsx; by default from the file name's extension.")
    size_bytes: int = Field(
        strict=False,  # 10047.0 is an integer to JSON Schema, and so to us
        ge=0,
        le=MAX_UPLOAD_BYTES,
        description="The file's size. Above 100 MB the upload is multipart; at most 10 GiB.",
    )
    mapping: ColumnMapping | None = Field(
        None, description="Which columns hold what; by default derived from the header's column names."
    )


class MultipartUpload(BaseModel):
    upload_id: str = Field(description="S3's id of the multipart upload.")
    part_size: int = Field(description="Bytes in every part but the last.")
    part_urls: list[str] = Field(description="PUT part N (from 1) to part_urls[N-1]; keep each answer's ETag.")
    complete_url: str = Field(description="POST {parts: [{part_number, etag}]} here once every part is in.")


class UploadCreated(BaseModel):
    id: str
    state: UploadState
    upload_url: str | None = Field(None, description="PUT the whole file here (files up to 100 MB).")
    multipart: MultipartUpload | None = Field(None, description="For files over 100 MB: upload in parts.")
    expires_at: str = Field(description="The URLs work until then (one hour).")


class UploadPart(Strict):
    part_number: int = Field(strict=False, ge=1, le=10_000)  # 3.0 is an integer to JSON Schema
    etag: str = Field(
        min_length=1,
        max_length=256,
        pattern=r'^"?[A-Za-z0-9_.:+/=-]{1,254}"?$',
        description="The ETag header S3 answered the part's PUT with (quoted or not). Only the characters S3's "
        "ETags have: anything else would not even reach S3 as well-formed XML.",
    )


class UploadComplete(Strict):
    parts: list[UploadPart] = Field(min_length=1, max_length=10_000)


class UploadError(BaseModel):
    code: str = Field(description="empty, no_header, not_text, not_utf8, bad_xlsx, bad_mapping, too_large, unreadable.")
    detail: str


class Upload(BaseModel):
    id: str
    list_id: str
    filename: str
    format: UploadFormat | None
    state: UploadState = Field(description="awaiting_file -> ingesting -> completed | failed.")
    rows_read: int = Field(description="Data rows read so far (= accepted + invalid + duplicates).")
    accepted: int = Field(description="Rows added to the list.")
    invalid: int = Field(description="Rows rejected; each is in the rejected rows file with its line number.")
    duplicates: int = Field(description="Rows whose id is already in the list (or earlier in the file).")
    segments: int | None = Field(
        None,
        description="A large CSV is cut into segments of whole records, ingested in parallel: how many are "
        "planned so far (null for a file read in one piece).",
    )
    segments_done: int | None = Field(None, description="Segments ingested to their end.")
    error: UploadError | None = Field(None, description="Why the whole file was refused (state failed).")
    rejected_rows_url: str | None = Field(
        None, description="Once completed with invalid rows: a CSV (line,reason,field,detail), link valid one hour."
    )
    created_at: str
    finished_at: str | None = None


class SuppressionImportCreate(Strict):
    """Suppress many destinations from a file: a `destination` column (or `address`, `email`, `phone`) and an
    optional `channel` column; the file is PUT to the answer's upload_url and ingested like a list's."""

    filename: str = Field(min_length=1, max_length=255, description="The file's name; its extension gives the format.")
    format: UploadFormat | None = Field(None, description="csv or xlsx; by default from the file name's extension.")
    size_bytes: int = Field(
        strict=False,
        ge=0,
        le=MULTIPART_FROM_BYTES,
        description="The file's size: at most 100 MB (one PUT; about 3 million addresses).",
    )
    channel: Literal["sms", "whatsapp", "viber_service", "messenger", "voice", "email", "all"] | None = Field(
        None, description="The channel of rows without a `channel` cell (a row with neither is rejected)."
    )


class SuppressionImport(BaseModel):
    id: str
    filename: str
    format: UploadFormat | None
    channel: str | None = Field(None, description="The channel of rows without their own.")
    state: UploadState = Field(description="awaiting_file -> ingesting -> completed | failed.")
    rows_read: int = Field(description="Data rows read so far (= accepted + invalid + duplicates).")
    accepted: int = Field(description="Rows that suppressed a destination not suppressed before.")
    invalid: int = Field(description="Rows rejected; each is in the rejected rows file with its line number.")
    duplicates: int = Field(description="Rows already suppressed (before, or earlier in the file).")
    error: UploadError | None = Field(None, description="Why the whole file was refused (state failed).")
    rejected_rows_url: str | None = Field(
        None, description="Once completed with invalid rows: a CSV (line,reason,field,detail), link valid one hour."
    )
    created_at: str
    finished_at: str | None = None


# --- list management ------------------------------------------------------------------------


class ListUpdate(Strict):
    name: str = Field(min_length=1, max_length=200)


class RecipientUpdate(BaseModel):
    """The fields to replace on one list item; a field left out keeps its value. The result is checked as
    an uploaded row is (addresses normalised, attributes bounded); the id is the path's."""

    model_config = ConfigDict(extra="forbid", strict=True)

    destinations: list[DestinationIn] | None = Field(
        None, min_length=1, max_length=MAX_DESTINATIONS, description="Replaces every destination; first preferred."
    )
    attributes: dict[str, Param] | None = Field(None, description="Replaces every attribute (at most 4 KB as JSON).")
    locale: str | None = Field(None, max_length=35, description="BCP 47 language tag; null removes it.")
    timezone: str | None = Field(None, max_length=64, description="IANA time zone; null removes it.")
    default_region: str | None = Field(
        None, pattern=r"^[A-Z]{2}$", description="ISO 3166 country code for national phone numbers, e.g. GB."
    )


# --- exports --------------------------------------------------------------------------------

ExportState = Literal["pending", "running", "completed", "failed"]

EXPORT_DESCRIPTION = (
    "A CSV file (UTF-8, CRLF) written by a worker. Every cell that starts with =, +, -, @, TAB or CR is "
    "prefixed with ' so that a spreadsheet does not read it as a formula: an E.164 number is exported as "
    "'+447700900123. A list export has the columns id, destination_N_type and destination_N_address for N "
    "1 to 5, locale, timezone, then attributes.<name> for each attribute name found in the list (sorted; "
    "past 200 names, the rest go to one more_attributes column as JSON). A campaign export has "
    "recipient_id, destination, destination_index, state, attempts, provider_message_id, last_error, "
    "updated_at: one row per recipient the campaign has tried to reach."
)


class Export(BaseModel):
    __doc__ = EXPORT_DESCRIPTION

    id: str
    state: ExportState = Field(description="pending -> running -> completed | failed.")
    rows: int = Field(description="Data rows written so far (the header is not counted).")
    download_url: str | None = Field(
        None, description="Once completed: a presigned S3 GET of the CSV, valid for one hour from this answer."
    )
    error: str | None = Field(None, description="Why the export failed.")
    created_at: str
    completed_at: str | None = None


class Run(BaseModel):
    """One occurrence of a recurring campaign."""

    id: str = Field(description="The run's campaign id (GET /v1/campaigns/{id}/recipients lists its outcomes).")
    occurrence_at: str = Field(description="The schedule's time for this occurrence.")
    outcome: Literal["started", "queued", "skipped"] = Field(
        description="`started`: it ran at its time; `queued`: it waited for the previous run; `skipped`: not run."
    )
    skip_reason: str | None = None
    status: CampaignStatus | None = Field(None, description="The run's status (none when skipped).")
    counters: Counters | None = None
    started_at: str | None = None
    finished_at: str | None = None


class LimitSet(Strict):
    rate_per_second: float = Field(
        ge=0.01,
        le=1000,
        description="Sends per second that every campaign of the account sending through this limit keeps "
        "between them (fractional: 0.2 is one every 5 s).",
    )


class Limit(BaseModel):
    """A sending limit shared by the account's campaigns: per sender (a number or sender id; a number
    without its `+`) or per destination country (ISO 3166-1 alpha-2, e.g. `US`)."""

    kind: Literal["sender", "country"]
    name: str
    rate_per_second: float
    updated_at: str


class Limits(BaseModel):
    items: list[Limit]


# --- reply handlers (decision 45) ---------------------------------------------------------------

ReactionType = Literal["unsubscribe", "add_to_list", "set_attribute", "start_campaign", "forward", "action"]


class ReplyCondition(Strict):
    """Which inbound messages the handler takes."""

    type: Literal["any", "keywords", "regex"] = Field(
        description="any: every message; keywords: the message is one of them (read as one word, as STOP is: "
        "case, accents, spaces and punctuation ignored); regex: the pattern is found in the text."
    )
    keywords: list[Annotated[str, Field(min_length=1, max_length=50)]] | None = Field(
        None, min_length=1, max_length=100, description="For `keywords`."
    )
    case_sensitive: bool = Field(False, description="For `regex`.")
    pattern: str | None = Field(
        None,
        min_length=1,
        max_length=500,
        description="For `regex` (Python syntax), searched in the text. It runs under a time limit; one that "
        "backtracks catastrophically is refused.",
    )

    @field_validator("keywords")
    @classmethod
    def _not_carriers_words(cls, keywords: list[str] | None) -> list[str] | None:
        from chalicelib.domain.responses import intent

        taken = [word for word in keywords or () if intent(word)]
        if taken:
            raise ValueError(
                f"{', '.join(taken)}: STOP, START and HELP words (YES is START) are answered before any handler"
            )
        return keywords

    @field_validator("pattern")
    @classmethod
    def _safe(cls, pattern: str | None, info: ValidationInfo) -> str | None:
        from chalicelib.domain.replies import PatternRefused, check_pattern

        if pattern is not None:
            try:
                check_pattern(pattern, bool(info.data.get("case_sensitive")))
            except PatternRefused as exc:
                raise ValueError(str(exc)) from None
        return pattern

    @model_validator(mode="after")
    def _complete(self) -> ReplyCondition:
        if self.type == "keywords" and not self.keywords:
            raise ValueError("a keywords condition gives its `keywords`")
        if self.type == "regex" and not self.pattern:
            raise ValueError("a regex condition gives its `pattern`")
        return self


class Reaction(Strict):
    """What the handler does with a message it takes (in the order given)."""

    type: ReactionType = Field(
        description="unsubscribe: suppress the sender on `channel` (default the message's); add_to_list: add "
        "the sender to `list_id` (with the campaign recipient's id when the reply answers a campaign); "
        "set_attribute: set `attribute` to `value` on the campaign's recipient the reply answers; "
        "start_campaign: add the sender to the list of `campaign_id` (a running campaign with `end_handle: "
        "continue`), which sends to them; forward: send the message to the webhook `webhook_id`; action: make "
        "the HTTP action `action_id`'s request, its templates given `message`, `from`, `to`, `channel`, "
        "`campaign_id`, `recipient_id` and the recipient's attributes (Vonage Bulk's actions as reactions)."
    )
    channel: Literal["sms", "whatsapp", "viber_service", "messenger", "voice", "email", "all"] | None = None
    list_id: str | None = Field(None, min_length=1, max_length=64)
    attribute: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    value: (
        Annotated[str, Field(max_length=500)]
        | Annotated[int, Field(ge=-(10**15), le=10**15)]
        | Annotated[float, Field(ge=-1e15, le=1e15)]
        | bool
        | None
    ) = Field(None, description="For `set_attribute`.")
    campaign_id: str | None = Field(None, min_length=1, max_length=64)
    webhook_id: str | None = Field(None, min_length=1, max_length=64)
    action_id: str | None = Field(None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _complete(self) -> Reaction:
        needed = {
            "add_to_list": ("list_id",),
            "set_attribute": ("attribute", "value"),
            "start_campaign": ("campaign_id",),
            "forward": ("webhook_id",),
            "action": ("action_id",),
        }.get(self.type, ())
        for name in needed:
            if getattr(self, name) is None:
                raise ValueError(f"a {self.type} reaction gives its `{name}`")
        return self


class ReplyHandlerCreate(Strict):
    """A rule for replies (Vonage Bulk's event handlers): when a message to one of the account's numbers meets
    the condition, the reactions run. STOP, START and HELP are handled before any handler, always."""

    name: str = Field(min_length=1, max_length=100)
    campaign_id: str | None = Field(
        None,
        min_length=1,
        max_length=64,
        description="Only replies that answer this campaign (the last message the sender got from that number "
        "was the campaign's); none: every reply to the account's numbers.",
    )
    channels: list[Literal["sms", "whatsapp", "viber_service", "messenger"]] = Field(
        default_factory=list, max_length=4, description="Only messages on these channels; empty: any."
    )
    condition: ReplyCondition
    reactions: list[Reaction] = Field(min_length=1, max_length=5)
    enabled: bool = True


class ReplyHandler(BaseModel):
    id: str
    name: str
    campaign_id: str | None = None
    channels: list[str]
    condition: ReplyCondition
    reactions: list[Reaction]
    enabled: bool
    matched: int = Field(0, description="Messages it took so far.")
    created_at: str


class ErasureScope(BaseModel):
    by: Literal["destination", "recipient_id"] = Field(description="What the request named the person by.")
    channel: str = Field(description="The channel the suppression was asked for (`all` unless named).")
    suppress: bool = Field(description="Whether the erasure adds a suppression of the person's addresses.")


class Erasure(BaseModel):
    """An erasure of a person (decision 42): their list items removed, their deliveries, events, webhook log
    and exports anonymised (counters unchanged), their suppressions kept without the address in clear, a
    suppression added unless `suppress=false`. Also the audit record: who asked, when, the scope and how many
    items and objects each part touched; never the address itself (`subject` is a keyed hash of it)."""

    id: str
    status: Literal["pending", "running", "waiting", "completed"] = Field(
        description="pending -> running -> completed; `waiting`: some of the person's sends were still under way "
        "(queued for a retry, in flight), or a campaign of the account was running: the job comes back."
    )
    scope: ErasureScope
    subject: str = Field(description="A keyed hash of the destination or recipient id named: no way back to it.")
    requested_by: str = Field(description="The API key that asked (`key:` and the start of its SHA-256).")
    counts: dict[str, int] = Field(
        description="Items and objects changed, by kind: list_items, deliveries, receipts, suppressions_added, "
        "suppressions_anonymised, caps, conversations, whatsapp_sessions, webhook_deliveries, event_objects, "
        "export_objects, rejected_row_objects, other_objects, upload_rejected_rows, upload_objects_removed."
    )
    waiting_for: int = Field(0, description="The person's deliveries still under way at the last run.")
    sending: bool = Field(
        False,
        description="A campaign of the account was running at the last run: a chunk released before the "
        "erasure could still reach the person, so the job passes again (every 5 minutes, up to an hour).",
    )
    runs: int = Field(description="How many times the job ran (a redelivered message adds a run, no counts).")
    created_at: str
    updated_at: str | None = None
    completed_at: str | None = None
