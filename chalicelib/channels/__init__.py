"""Channel adapters: each speaks one provider's public wire format; base URLs are configuration."""

from __future__ import annotations

from chalicelib.channels.base import (
    Channel,
    EmailParts,
    MessagesOptions,
    OutgoingMessage,
    VoiceCall,
    WhatsAppTemplate,
    text_limit,
)
from chalicelib.channels.http_action import HttpAction, http_action
from chalicelib.channels.ses import SesEmail, ses_email
from chalicelib.channels.vonage import VonageMessages, vonage_messages
from chalicelib.channels.vonage_voice import VonageVoice, vonage_voice

__all__ = [
    "Channel",
    "EmailParts",
    "MessagesOptions",
    "OutgoingMessage",
    "VoiceCall",
    "VonageMessages",
    "WhatsAppTemplate",
    "channel_for",
    "text_limit",
]


def channel_for(channel: str) -> Channel:
    if channel in VonageMessages.CHANNELS:
        return vonage_messages()
    if channel in VonageVoice.CHANNELS:
        return vonage_voice()
    if channel in SesEmail.CHANNELS:
        return ses_email()
    if channel in HttpAction.CHANNELS:
        return http_action()
    raise ValueError(f"no adapter for channel {channel!r}")
