"""Vonage Call Control Objects (NCCO): what a voice campaign's call does once answered (decision 38).

The published Voice API description types an NCCO as a list of objects and no more, so the actions are
modelled here from Vonage's NCCO reference: each action's own fields, nothing else (a misspelt field is a
422 naming it at creation, not a call that fails at the provider). Every string is a Liquid template over
the recipient's variables, rendered per call (`render_ncco`).

Without an NCCO of its own, a campaign's call speaks its rendered `template` (`talk`, in the recipient's
language where it has one) and, given `connect`, then connects the answered call to a number, a SIP URI or
a websocket (an agent, or an AI agent answering on the socket).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Vonage's text-to-speech takes 1,500 characters per `talk`.
MAX_TALK_CHARS = 1500
MAX_ACTIONS = 20
# A text-to-speech language as Vonage names it: en-US, pt-BR, cmn-CN, ...
LANGUAGE_PATTERN = r"^[a-z]{2,3}-[A-Z]{2}$"

Text = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=r"^(https?|wss?)://\S+$")]


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PhoneEndpoint(_Action):
    type: Literal["phone"]
    number: Text = Field(description="E.164 digits (a Liquid template: `{{ attributes.agent }}`).")
    dtmfAnswer: str | None = Field(None, max_length=50)  # Vonage's field names


class SipEndpoint(_Action):
    type: Literal["sip"]
    uri: Text
    headers: dict[str, Text] | None = Field(None, max_length=20)


class WebsocketEndpoint(_Action):
    type: Literal["websocket"]
    uri: Url
    content_type: Literal["audio/l16;rate=8000", "audio/l16;rate=16000"] = Field(
        "audio/l16;rate=16000", alias="content-type"
    )
    headers: dict[str, Text] | None = Field(None, max_length=20)

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True, serialize_by_alias=True)


class AppEndpoint(_Action):
    type: Literal["app"]
    user: Text


Endpoint = Annotated[PhoneEndpoint | SipEndpoint | WebsocketEndpoint | AppEndpoint, Field(discriminator="type")]


class Talk(_Action):
    action: Literal["talk"]
    text: Annotated[str, StringConstraints(min_length=1, max_length=MAX_TALK_CHARS)]
    language: str | None = Field(None, pattern=LANGUAGE_PATTERN)
    style: int | None = Field(None, ge=0, le=20)
    premium: bool | None = None
    bargeIn: bool | None = None
    loop: int | None = Field(None, ge=0, le=10)
    level: float | None = Field(None, ge=-1, le=1, strict=False)


class Stream(_Action):
    action: Literal["stream"]
    streamUrl: list[Url] = Field(min_length=1, max_length=1)
    level: float | None = Field(None, ge=-1, le=1, strict=False)
    bargeIn: bool | None = None
    loop: int | None = Field(None, ge=0, le=10)


class Connect(_Action):
    action: Literal["connect"]
    endpoint: list[Endpoint] = Field(min_length=1, max_length=1)
    from_: str | None = Field(None, alias="from", max_length=32)
    timeout: int | None = Field(None, ge=3, le=120)
    limit: int | None = Field(None, ge=1, le=7200)
    machineDetection: Literal["continue", "hangup"] | None = None
    eventUrl: list[Url] | None = Field(None, max_length=1)
    ringbackTone: Url | None = None

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True, serialize_by_alias=True)


class Transcription(_Action):
    """A `record` action's transcription: Vonage posts its `transcription_url` to `eventUrl` when it is done."""

    language: str | None = Field(None, pattern=LANGUAGE_PATTERN)
    eventUrl: list[Url] | None = Field(None, max_length=1)
    eventMethod: Literal["POST", "GET"] | None = None
    sentimentAnalysis: bool | None = None


class Record(_Action):
    action: Literal["record"]
    format: Literal["mp3", "wav", "ogg"] | None = None
    split: Literal["conversation"] | None = None
    channels: int | None = Field(None, ge=1, le=32)
    endOnSilence: int | None = Field(None, ge=3, le=10)
    endOnKey: str | None = Field(None, pattern=r"^[0-9*#]$")
    timeOut: int | None = Field(None, ge=3, le=7200)
    beepStart: bool | None = None
    eventUrl: list[Url] | None = Field(None, max_length=1)
    eventMethod: Literal["POST", "GET"] | None = None
    transcription: Transcription | None = None


class Dtmf(_Action):
    timeOut: int | None = Field(None, ge=0, le=10)
    maxDigits: int | None = Field(None, ge=1, le=20)
    submitOnHash: bool | None = None


class Input(_Action):
    action: Literal["input"]
    type: list[Literal["dtmf", "speech"]] = Field(min_length=1, max_length=2)
    dtmf: Dtmf | None = None
    speech: dict[str, Any] | None = None
    eventUrl: list[Url] | None = Field(None, max_length=1)


class Notify(_Action):
    action: Literal["notify"]
    payload: dict[str, Any] = Field(max_length=50)
    eventUrl: list[Url] = Field(min_length=1, max_length=1)


class Conversation(_Action):
    action: Literal["conversation"]
    name: Text
    startOnEnter: bool | None = None
    endOnExit: bool | None = None
    record: bool | None = None


NccoAction = Annotated[Talk | Stream | Connect | Record | Input | Notify | Conversation, Field(discriminator="action")]


def strings_of(value: Any) -> list[str]:
    """Every string in an NCCO (the Liquid templates to check at creation)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings_of(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings_of(item)]
    return []


def render_ncco(ncco: list[dict[str, Any]], render: Callable[[str], str]) -> list[dict[str, Any]]:
    """The NCCO with each string rendered for one recipient, and the fields left unset dropped (TemplateError
    from `render` passes through)."""

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return render(value)
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items() if item is not None}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return value

    return [walk(action) for action in ncco]


def spoken_ncco(
    text: str, language: str, style: int | None, premium: bool, connect: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """The NCCO of a campaign without its own: the text spoken, then the answered call connected, if given."""
    talk: dict[str, Any] = {"action": "talk", "text": text, "language": language}
    if style is not None:
        talk["style"] = style
    if premium:
        talk["premium"] = True
    actions = [talk]
    if connect:
        actions.append({"action": "connect", "endpoint": [connect]})
    return actions


def recording(event_url: str, file_format: str, beep_start: bool, transcription_language: str | None) -> dict[str, Any]:
    """A `record` action that records the whole call (placed first, with no condition that ends it, it runs
    until the call ends), its recording posted to `event_url` with `event=recording`, and with a language its
    transcription with `event=transcription` (decision 48)."""
    action: dict[str, Any] = {"action": "record", "format": file_format, "eventUrl": [f"{event_url}&event=recording"]}
    if beep_start:
        action["beepStart"] = True
    if transcription_language:
        action["transcription"] = {
            "language": transcription_language,
            "eventUrl": [f"{event_url}&event=transcription"],
        }
    return action


def call_language(default: str, locale: str | None) -> str:
    """The text-to-speech language for a recipient: its locale where it names a region (pt-BR, en_GB), else
    the campaign's."""
    if locale:
        parts = locale.replace("_", "-").split("-")
        if len(parts) == 2 and 2 <= len(parts[0]) <= 3 and len(parts[1]) == 2:
            return f"{parts[0].lower()}-{parts[1].upper()}"
    return default
