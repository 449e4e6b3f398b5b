"""Email through Amazon SES v2: SendEmail with a raw MIME message (text and HTML parts, List-Unsubscribe).

SES takes no idempotency key, so, as with Vonage, a request that may have reached it is ambiguous, never
resent: the client making sends has botocore's retries off (its standard mode would retry a read timeout,
which is a blind resend), and every error is mapped here. Each account sends through its own configuration
set (its SES events, reputation and suppression settings), created with the account's first email campaign,
with an EventBridge event destination: bounces, complaints, deliveries and opens come back (decision 44).
"""

from __future__ import annotations

import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from chalicelib.channels.base import OutgoingMessage
from chalicelib.domain.delivery import OutcomeReason, SendOutcome
from chalicelib.domain.email_events import EVENT_DESTINATION_NAME, MATCHING_EVENT_TYPES
from chalicelib.settings import get_settings
from chalicelib.store import aws

# SES refuses every send of the account until it is fixed: paused, with this as the reason.
ACCOUNT_ERRORS = frozenset(
    {"AccountSuspendedException", "SendingPausedException", "MailFromDomainNotVerifiedException", "NotFoundException"}
)
THROTTLING_ERRORS = frozenset({"TooManyRequestsException", "ThrottlingException", "Throttling"})
TRANSIENT_ERRORS = frozenset({"InternalFailure", "ServiceUnavailable", "InternalServerError"})
_SENDER_REFUSED = re.compile(r"not verified|not authori[sz]ed|did not have authority", re.IGNORECASE)
_ALREADY_EXISTS = frozenset({"AlreadyExistsException", "ConfigurationSetAlreadyExistsException"})
# An email tag's value: letters, digits, _ - . @ (SES); anything else in an id is replaced.
_TAG_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.@")


def configuration_set_name(account_id: str) -> str:
    s = get_settings()
    return f"{s.resource_prefix}-{s.stage}-{account_id}"[:64]


class SesEmail:
    CHANNELS = frozenset({"email"})
    honours_idempotency_key = False
    asynchronous_outcome = False
    max_text_chars: int | None = None  # SES's limit is on the whole message (40 MB), far above the templates'

    def __init__(self, client: Any) -> None:
        self._client = client

    def send(self, message: OutgoingMessage) -> SendOutcome:
        parts = message.email
        if parts is None:
            return SendOutcome.permanent("an email needs its subject (the campaign's `email`)")
        request: dict[str, Any] = {
            "FromEmailAddress": message.sender,
            "Destination": {"ToAddresses": [message.to]},
            "Content": {"Raw": {"Data": mime(message).as_bytes()}},
            "EmailTags": [{"Name": name, "Value": _tag(value)} for name, value in message.tags.items()],
        }
        if parts.configuration_set:
            request["ConfigurationSetName"] = parts.configuration_set
        try:
            answer = self._client.send_email(**request)
        except (EndpointConnectionError, ConnectTimeoutError) as exc:  # nothing reached SES
            return SendOutcome.transient(f"SES unreachable: {type(exc).__name__}", reason=OutcomeReason.UNREACHABLE)
        except (ReadTimeoutError, ConnectionClosedError) as exc:  # it may have been sent
            return SendOutcome.ambiguous(f"no answer from SES: {type(exc).__name__}")
        except ClientError as exc:
            return _refusal(exc)
        except BotoCoreError as exc:
            return SendOutcome.ambiguous(f"no answer from SES: {type(exc).__name__}")
        return SendOutcome.accepted(str(answer.get("MessageId") or "") or None)


def _refusal(exc: ClientError) -> SendOutcome:
    error = exc.response.get("Error", {})
    code = str(error.get("Code", ""))
    detail = f"SES answered {code}: {error.get('Message', '')}".strip()
    if code in THROTTLING_ERRORS:
        return SendOutcome.transient(detail, reason=OutcomeReason.THROTTLED)
    if code in TRANSIENT_ERRORS or int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)) >= 500:
        return SendOutcome.transient(detail, reason=OutcomeReason.PROVIDER_ERROR)
    # A From address SES will not send from is refused for every recipient alike: MessageRejected, "Email
    # address is not verified" (SES) or "Did not have authority to send from email" (moto; SES's sending
    # authorisation says "not authorized").
    if code in ACCOUNT_ERRORS or code == "LimitExceededException" or _SENDER_REFUSED.search(detail):
        return SendOutcome.account(detail)
    return SendOutcome.permanent(detail)


def mime(message: OutgoingMessage) -> EmailMessage:
    """The message as SES sends it: text part, HTML part if any, and the bulk sender's headers."""
    parts = message.email
    assert parts is not None
    mail = EmailMessage()
    mail["Subject"] = parts.subject
    mail["From"] = Address(display_name=parts.from_name or "", addr_spec=message.sender)
    mail["To"] = message.to
    if parts.reply_to:
        mail["Reply-To"] = parts.reply_to
    mail["Message-ID"] = make_msgid(domain=message.sender.rpartition("@")[2])
    unsubscribe = [f"<{parts.unsubscribe_url}>"] if parts.unsubscribe_url else []
    if parts.unsubscribe_mailto:
        unsubscribe.append(f"<mailto:{parts.unsubscribe_mailto}?subject=unsubscribe>")
    if unsubscribe:
        mail["List-Unsubscribe"] = ", ".join(unsubscribe)
    if parts.unsubscribe_url:
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058
    mail["X-Campaign-Ref"] = message.idempotency_key
    mail.set_content(message.text)
    if parts.html:
        mail.add_alternative(parts.html, subtype="html")
    return mail


def _tag(value: str) -> str:
    return "".join(c if c in _TAG_SAFE else "_" for c in value)[:256] or "_"


def ses_email() -> SesEmail:
    # One attempt per send: botocore's retries would resend after a read timeout (decision 32).
    return SesEmail(aws.single_attempt_client("sesv2", get_settings().provider_timeout_seconds))


def identity_verified(address: str) -> bool:
    """Whether SES may send from `address`: the address itself or its domain is a verified identity."""
    client = _control_client()
    for identity in (address, address.rpartition("@")[2]):
        try:
            found = client.get_email_identity(EmailIdentity=identity)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NotFoundException":
                continue
            raise
        if found.get("VerifiedForSendingStatus") or found.get("VerificationStatus") == "SUCCESS":
            return True
    return False


def ensure_configuration_set(account_id: str) -> str:
    """The account's configuration set, created if it is not there yet, with its EventBridge event
    destination (decision 44; AlreadyExists is success for either, so a set made before it gains one)."""
    name = configuration_set_name(account_id)
    client = _control_client()
    _unless_exists(lambda: client.create_configuration_set(ConfigurationSetName=name))
    bus = get_settings().ses_event_bus_arn
    if bus:
        destination = {
            "Enabled": True,
            "MatchingEventTypes": list(MATCHING_EVENT_TYPES),
            "EventBridgeDestination": {"EventBusArn": bus},
        }
        _unless_exists(
            lambda: client.create_configuration_set_event_destination(
                ConfigurationSetName=name, EventDestinationName=EVENT_DESTINATION_NAME, EventDestination=destination
            )
        )
    return name


def _unless_exists(create: Any) -> None:
    try:
        create()
    except ClientError as exc:
        # SES v2 answers AlreadyExistsException; moto answers with SES v1's name for it.
        if exc.response.get("Error", {}).get("Code") not in _ALREADY_EXISTS:
            raise


def _control_client() -> Any:
    return aws.client("sesv2")  # the store's client settings (retries on): these calls are safe to repeat
