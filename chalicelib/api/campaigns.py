"""Campaigns: create a draft, page through them, read one with live counters, change, clone or delete it,
start/pause/resume/cancel, list outcomes, recount.

No request does per-recipient work: start and resume change the status and queue one release job.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from chalice import Blueprint

from chalicelib.api.http import paged, parse_body, query_str, route
from chalicelib.api.views import campaign_view, counters_view, delivery_view, pending_view, run_view
from chalicelib.channels import ses
from chalicelib.domain import segments
from chalicelib.domain.campaign import (
    CHANGEABLE_WHEN_STARTED,
    DELETABLE,
    MAX_CHAIN,
    NOT_STARTED,
    STARTED,
    TERMINAL,
    CampaignAction,
    CampaignStatus,
    EndHandle,
    next_status,
)
from chalicelib.domain.erasure import is_erased_id
from chalicelib.domain.errors import Conflict, FieldError, InvalidInput, MalformedRequest, NotFound
from chalicelib.domain.models import (
    CHANNEL_CONTENT,
    RECEIPT_CHANNELS,
    Campaign,
    CampaignClone,
    CampaignCreate,
    CampaignUpdate,
    Delivery,
    DeliveryMessage,
    Page,
    Recount,
    Recurrence,
    Run,
    VariableCheck,
    VoiceContent,
    copied_definition,
    sender_problem,
)
from chalicelib.domain.recurrence import next_occurrence
from chalicelib.domain.responses import normal_address
from chalicelib.operations import recount, runs, start
from chalicelib.operations.completion import complete_if_done
from chalicelib.settings import get_settings
from chalicelib.store import (
    actions,
    brands,
    campaign_catalog,
    campaigns,
    deliveries,
    keys,
    lists,
    numbers,
    pages,
    schedules,
    templates,
)

MAX_SCHEDULE_AHEAD_SECONDS = 366 * 86400
CONTINUE_RECURS = "a recurring campaign's runs each send to the list as it stood at their start: use stop"

bp = Blueprint(__name__)


@route(bp, "/campaigns", methods=["POST"], status=201)
def create_campaign(account: str) -> Campaign:
    body = parse_body(bp.current_request, CampaignCreate)
    audience = _check_lists(account, body.list_id, body.exclusion_list_ids)
    if body.next_campaign_id is not None:
        _check_chain(account, None, body.next_campaign_id)
    if body.recurrence is not None and body.start_at is not None:
        raise InvalidInput.on("start_at", "a recurring campaign's runs start on its recurrence: give one or the other")
    if body.recurrence is not None and body.end_handle == EndHandle.CONTINUE:
        raise InvalidInput.on("end_handle", CONTINUE_RECURS)
    start_at = _start_time(body.start_at) if body.start_at is not None else None
    if body.recurrence is not None:
        _check_recurrence(body.recurrence)
    definition = body.model_dump(mode="json", exclude={"start_at"})
    _check_segment_policy(definition, "segment_policy")
    _check_condition_kinds(account, body.list_id, definition.get("segments"))
    definition.update(_channel_fields(account, definition))
    if _sends_text(definition):
        definition.update(_template_fields(account, body.template, body.template_id, body.template_version, definition))
    definition["expires_at"] = _expiry(body.expires_at, start_at)
    created = campaigns.create_campaign(account, definition, audience=audience or 0)
    if body.recurrence is not None:
        return campaign_view(_recur(created, body.recurrence))
    if start_at is None:
        return campaign_view(created)
    return campaign_view(_schedule(created, start_at))


def _check_segment_policy(definition: dict[str, Any], field: str) -> None:
    """`every` sends one message per matching segment: a campaign without segments has nothing to match."""
    if segments.is_every(definition) and not definition.get("segments"):
        raise InvalidInput.on(field, "segment_policy every sends one message per matching segment: give segments")


def _channel_fields(account: str, definition: dict[str, Any]) -> dict[str, Any]:
    """What the campaign's channel asks of its definition (422 on the field otherwise), and what it adds to
    it: an email campaign sends from identities verified in SES, through the account's configuration set."""
    channel = definition.get("channel") or "sms"
    variants = definition.get("variants") or []
    senders = {"sender": definition["sender"]}
    senders.update({f"variants.{i}.sender": v["sender"] for i, v in enumerate(variants) if v.get("sender")})
    parts = definition.get("segments") or []
    own = [(i, g) for i, g in enumerate(parts) if g.get("channel")]  # segments sending another channel
    senders.update(
        {f"segments.{i}.sender": g["sender"] for i, g in enumerate(parts) if g.get("sender") and not g.get("channel")}
    )
    for field, sender in senders.items():
        if problem := sender_problem(channel, sender):
            raise InvalidInput.on(field, problem)
    content = definition.get("email")
    if channel != "http" and definition.get("action_id"):
        raise InvalidInput.on("action_id", f"only for an http campaign; this one sends {channel}")
    if channel != "email" and content:
        raise InvalidInput.on("email", f"only for an email campaign; this one sends {channel}")
    if channel != "whatsapp" and definition.get("whatsapp"):
        raise InvalidInput.on("whatsapp", f"only for a WhatsApp campaign; this one sends {channel}")
    if channel != "voice" and definition.get("voice"):
        raise InvalidInput.on("voice", f"only for a voice campaign; this one sends {channel}")
    for field, its_channel, name in (
        ("mms", "mms", "an MMS"),
        ("viber", "viber_service", "a Viber"),
        ("messenger", "messenger", "a Messenger"),
    ):
        if channel != its_channel and definition.get(field):
            raise InvalidInput.on(field, f"only for {name} campaign; this one sends {channel}")
    for index, variant in enumerate(variants):
        if channel != "mms" and variant.get("mms"):
            raise InvalidInput.on(f"variants.{index}.mms", f"only for an MMS campaign; this one sends {channel}")
    extras: dict[str, Any] = {"segment_extras": _segment_fields(account, definition, own)} if own else {}
    if definition.get("fallback"):
        if definition["fallback"]["channel"] == channel:
            raise InvalidInput.on("fallback.channel", f"is the campaign's own channel ({channel}): give another")
        if "no_delivery" in (definition["fallback"].get("on") or []) and channel not in RECEIPT_CHANNELS:
            raise InvalidInput.on(
                "fallback.on", f"no_delivery waits for a delivery receipt, and the {channel} channel gets none"
            )
        extras["fallback_extras"] = _part_fields(account, definition, "fallback", definition["fallback"])
    if channel == "whatsapp":
        return {**_whatsapp_fields(account, definition), **extras}
    if channel == "voice":
        return {**_voice_fields(definition), **extras}
    if channel == "mms":
        return {**_mms_fields(definition), **extras}
    if channel == "messenger":
        messenger = definition.get("messenger") or {}
        if messenger.get("category") == "message_tag" and definition.get("category") == "marketing":
            raise InvalidInput.on(
                "messenger.category",
                "Facebook allows no promotional content in a tagged message: a marketing campaign reaches only "
                "those who wrote in the last 24 hours (`update`)",
            )
        return extras
    if channel == "http":
        return {"action": _action(account, definition.get("action_id")), **extras}
    if channel != "email":
        return extras
    content = content or {}
    if not content.get("subject") and not definition.get("template_id"):
        raise InvalidInput.on("email.subject", "an email campaign has a subject: give it, or an email `template_id`")
    if definition.get("category") == "marketing" and not content.get("unsubscribe_url"):
        raise InvalidInput.on(
            "email.unsubscribe_url", "a marketing email needs a one-click unsubscribe link (RFC 8058; Gmail, Yahoo)"
        )
    for field, sender in senders.items():
        if not ses.identity_verified(sender):
            raise InvalidInput.on(
                field, f"{sender} is not an identity verified in SES (the address or its domain): verify it first"
            )
    brand = _brand(account, content.get("brand_id"))
    return {"email_configuration_set": ses.ensure_configuration_set(account), "email_brand": brand, **extras}


def _brand(account: str, brand_id: str | None) -> dict[str, Any] | None:
    """The account's email brand an email campaign names, copied in (422 on `email.brand_id` otherwise)."""
    if not brand_id:
        return None
    try:
        return brands.get_brand(account, brand_id)
    except NotFound:
        raise InvalidInput.on("email.brand_id", "no brand of this account has this id") from None


def _segment_fields(
    account: str, definition: dict[str, Any], own: list[tuple[int, dict[str, Any]]]
) -> dict[str, dict[str, Any]]:
    """Each segment with a channel of its own checked as a campaign of that channel would be (422 on the
    segment's field), and what that adds (an action's copy, the SES configuration set), by segment name."""
    return {segment["name"]: _part_fields(account, definition, f"segments.{i}", segment) for i, segment in own}


def _part_fields(account: str, definition: dict[str, Any], prefix: str, part: dict[str, Any]) -> dict[str, Any]:
    """A segment's or the fallback's channel checked as a campaign of that channel would be (422 on the part's
    own field, under `prefix`); what its creation adds (an action's copy, the SES configuration set)."""
    alone = {
        "channel": part["channel"],
        "sender": part.get("sender") or definition["sender"],
        "template": part.get("template") or definition.get("template") or None,
        "template_id": None,
        "category": definition.get("category"),
        **{field: part.get(field) for field in CHANNEL_CONTENT},
    }
    if part["channel"] == "whatsapp" and not part.get("template"):
        alone["template"] = None  # it sends its `whatsapp` template, not the campaign's text
    try:
        added = _channel_fields(account, alone)
    except InvalidInput as exc:
        name = f"{prefix}.{exc.errors[0].field}" if exc.errors else prefix
        raise InvalidInput.on(name, exc.errors[0].reason if exc.errors else exc.detail) from None
    return {k: v for k, v in added.items() if k in ("action", "email_configuration_set", "email_brand")}


def _sends_text(definition: dict[str, Any]) -> bool:
    """Whether the campaign sends its `template` (WhatsApp its approved template, unless it sends session text;
    a call with an NCCO its NCCO)."""
    if definition["channel"] == "whatsapp":
        return not definition.get("whatsapp")
    if definition["channel"] == "mms":  # its text is the image's caption, which it may leave out
        return bool(definition.get("template") or definition.get("template_id"))
    return not (definition.get("voice") or {}).get("ncco")


def _whatsapp_fields(account: str, definition: dict[str, Any]) -> dict[str, Any]:
    """A WhatsApp campaign sends an approved template: its `whatsapp`, or a WhatsApp template resource of the
    account (`template_id`: each recipient gets the language of its locale); a template name the account's
    template resources know must be in one of their languages. Or it sends its `template` text as a session
    message (decision 46), which reaches only someone who wrote to the sending number in the last 24 hours:
    from a number the account registered (where replies come in), else no window could ever be open."""
    given, template_id = definition.get("whatsapp"), definition.get("template_id")
    if not given and not template_id and definition.get("template"):
        return _whatsapp_session_fields(account, definition)
    if not given and not template_id:
        raise InvalidInput.on(
            "whatsapp",
            "a WhatsApp campaign sends an approved template: give `whatsapp` or a WhatsApp `template_id`, or "
            "`template` text as a session message (it reaches only those who wrote in the last 24 hours)",
        )
    if given and template_id:
        raise InvalidInput.on("template_id", "give `whatsapp` or `template_id`, one of them")
    if definition.get("template"):
        raise InvalidInput.on(
            "template", "a WhatsApp campaign sends its `whatsapp` template, not text: give one of them"
        )
    for kind in ("variants", "segments"):
        for index, part in enumerate(definition.get(kind) or []):
            if part.get("template") and not part.get("channel"):
                raise InvalidInput.on(
                    f"{kind}.{index}.template", f"a WhatsApp campaign's {kind} change the sender only"
                )
    fields: dict[str, Any] = {"template": "", "template_locales": None}
    if template_id:
        pinned = _pinned(account, template_id, definition.get("template_version"), "whatsapp")
        fields["whatsapp"] = pinned["content"]["whatsapp"]
        fields["whatsapp_locales"] = {
            tag: content["whatsapp"]
            for tag, content in (pinned.get("locales") or {}).items()
            if content.get("whatsapp")
        } or None
        fields["template_version"] = int(pinned["version"])
        return fields
    given = dict(given or {})
    known = templates.whatsapp_languages(account).get(given["template_name"])
    if known and given["locale"] not in known:
        raise InvalidInput.on(
            "whatsapp.locale",
            f"the account's WhatsApp template {given['template_name']} is approved in {', '.join(sorted(known))}; "
            f"not {given['locale']}",
        )
    return {**fields, "template_id": None, "template_version": None, "whatsapp_locales": None}


def _whatsapp_session_fields(account: str, definition: dict[str, Any]) -> dict[str, Any]:
    """A WhatsApp campaign sending session text: each sender (the campaign's, its variants', its segments')
    must be a WhatsApp number the account registered (POST /v1/numbers): a person's 24-hour window opens only
    with their message to it, which reaches the account only through a registered number."""
    senders = {"sender": definition["sender"]}
    for kind in ("variants", "segments"):
        for index, part in enumerate(definition.get(kind) or []):
            if part.get("sender") and not part.get("channel"):
                senders[f"{kind}.{index}.sender"] = part["sender"]
    for field, sender in senders.items():
        number = normal_address(sender)
        registration = numbers.owner(number)
        if registration is None or registration.get("account") != account:
            raise InvalidInput.on(
                field,
                f"{number} is not a number of this account (POST /v1/numbers): a WhatsApp session message reaches "
                "only someone who wrote to it in the last 24 hours, so it must be sent from a number whose "
                "messages come to this account; or send an approved template (`whatsapp`)",
            )
    return {"whatsapp": None, "whatsapp_locales": None}


def _mms_fields(definition: dict[str, Any]) -> dict[str, Any]:
    """An MMS campaign sends the image of its `mms` (checked as a public https URL by the model), captioned
    with its `template` when it gives one."""
    if not definition.get("mms"):
        raise InvalidInput.on("mms", "an MMS campaign sends an image: give `mms` with its `image_url`")
    if definition.get("template") or definition.get("template_id"):
        return {}
    return {"template": "", "template_id": None, "template_version": None, "template_locales": None}


def _voice_fields(definition: dict[str, Any]) -> dict[str, Any]:
    """A voice campaign calls through the Vonage application configured for the service, its events coming
    back to this API; it speaks its `template`, unless its `voice.ncco` says what the call does."""
    settings = get_settings()
    for name, value in (
        ("VONAGE_APPLICATION_ID", settings.vonage_application_id),
        ("VONAGE_PRIVATE_KEY_SECRET", settings.vonage_private_key_secret),
        ("VONAGE_SIGNATURE_SECRET", settings.vonage_signature_secret),
        ("WEBHOOK_BASE_URL", settings.webhook_base_url),
    ):
        if not value:
            raise InvalidInput.on("channel", f"voice calls are not set up on this service: {name} is not configured")
    voice = definition.get("voice") or {}
    if not voice and not definition.get("template_id"):
        raise InvalidInput.on(
            "voice", "a voice campaign says how it calls: give `voice` (at least {}), or a voice template"
        )
    if voice.get("ncco"):
        for field in ("template", "template_id"):
            if definition.get(field):
                raise InvalidInput.on(field, "a voice campaign with `voice.ncco` says everything in its NCCO")
        return {"template": "", "template_id": None, "template_version": None, "template_locales": None}
    if not definition.get("template") and not definition.get("template_id"):
        raise InvalidInput.on("template", "the text the call speaks: give it, or `voice.ncco`")
    return {}


def _action(account: str, action_id: str | None) -> dict[str, Any]:
    """The account's action, copied into the campaign (its secret stays in Secrets Manager, by name)."""
    if not action_id:
        raise InvalidInput.on("action_id", "an http campaign calls an action: give `action_id`")
    try:
        action = actions.get_action(account, action_id)
    except NotFound:
        raise InvalidInput.on("action_id", "no action of this account has this id") from None
    return {k: v for k, v in action.items() if k not in ("pk", "sk", "created_at")}


def _template_fields(
    account: str,
    template: str | None,
    template_id: str | None,
    version: int | None,
    campaign: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The campaign's template: its own text, or a template of the account's copied in at a pinned version
    (versions never change, so the copy is the template), with its locales; an email template's subject and
    HTML part go into the campaign's `email` (over what it gave), per locale in `email_locales`."""
    channel = str((campaign or {}).get("channel") or "sms")
    if (template is None) == (template_id is None):
        raise InvalidInput.on("template", "give `template` or `template_id`, one of them")
    if template_id is None:
        if version is not None:
            raise InvalidInput.on("template_version", "only with template_id")
        return {"template_id": None, "template_version": None, "template_locales": None}
    pinned = _pinned(account, template_id, version, channel)
    locales = {tag: content["text"] for tag, content in (pinned.get("locales") or {}).items()}
    fields = {
        "template": pinned["content"]["text"],
        "template_version": int(pinned["version"]),
        "template_locales": locales or None,
    }
    if channel == "email":
        parts = ("subject", "html")
        given = dict((campaign or {}).get("email") or {})
        fields["email"] = {**given, **{part: pinned["content"].get(part) for part in parts}}
        fields["email_locales"] = {
            tag: {part: content[part] for part in parts if content.get(part)}
            for tag, content in (pinned.get("locales") or {}).items()
            if any(content.get(part) for part in parts)
        } or None
    if channel == "voice" and not (campaign or {}).get("voice"):  # the template's voice, for a campaign giving none
        fields["voice"] = VoiceContent.model_validate(pinned["content"].get("voice") or {}).model_dump(mode="json")
    return fields


def _pinned(account: str, template_id: str, version: int | None, channel: str) -> dict[str, Any]:
    """The version of the account's template a campaign of `channel` pins (422 on the field otherwise)."""
    try:
        found = templates.get_template(account, template_id)
    except NotFound:
        raise InvalidInput.on("template_id", "no template of this account has this id") from None
    if found["channel"] != channel:
        raise InvalidInput.on("template_id", f"is an {found['channel']} template; this campaign sends {channel}")
    try:
        return templates.get_version(account, template_id, version)
    except NotFound:
        raise InvalidInput.on("template_version", f"template {template_id} has no version {version}") from None


def _check_recurrence(recurrence: Recurrence) -> None:
    """A recurrence that will run: an end in the future with an occurrence before it (422 otherwise)."""
    now = datetime.now(UTC)
    if recurrence.end_date is not None and recurrence.end_date <= now:
        raise InvalidInput.on("recurrence.end_date", "must be in the future")
    start = recurrence.start_date or now
    upcoming = next_occurrence(
        recurrence.expression, recurrence.timezone, max(now, start - timedelta(seconds=1)), start
    )
    if upcoming is None or (recurrence.end_date is not None and upcoming > recurrence.end_date):
        raise InvalidInput.on("recurrence.expression", "has no occurrence between now and end_date")


def _recur(campaign: dict[str, Any], recurrence: Recurrence, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """Put the recurring campaign's schedule, then make it `scheduled` (no start time: its runs start)."""
    schedules.put_runs(
        campaign["id"],
        campaign["pk"],
        recurrence.expression,
        recurrence.timezone,
        recurrence.start_date.timestamp() if recurrence.start_date else None,
        recurrence.end_date.timestamp() if recurrence.end_date else None,
    )
    # Where Scheduler counts a rate from: the start date it was given, else the time the schedule was put.
    start_date = recurrence.start_date.timestamp() if recurrence.start_date else None
    anchor = start_date if start_date is not None and start_date > time.time() else time.time()
    fields = {**(changes or {}), "recurrence": recurrence.model_dump(mode="json"), "start_at": None}
    fields["recurrence_anchor"] = anchor
    fields.update(status=CampaignStatus.SCHEDULED.value, start_problem=None)
    return campaign_catalog.update_definition(campaign, fields, NOT_STARTED)


def _start_time(moment: datetime) -> int:
    """A start time as epoch seconds: in the future, within a year (422 naming start_at otherwise)."""
    at = int(moment.timestamp())
    now = time.time()
    if at <= now:
        raise InvalidInput.on("start_at", "must be in the future; to start now, POST .../start")
    if at > now + MAX_SCHEDULE_AHEAD_SECONDS:
        raise InvalidInput.on("start_at", "must be within a year")
    return at


def _expiry(moment: datetime | None, start_at: float | None) -> int | None:
    """An expiry as epoch seconds: in the future and after the start (422 naming expires_at otherwise)."""
    if moment is None:
        return None
    at = int(moment.timestamp())
    if at <= time.time():
        raise InvalidInput.on("expires_at", "must be in the future")
    if start_at is not None and at <= start_at:
        raise InvalidInput.on("expires_at", "must be after start_at")
    return at


def _start_reference(campaign: dict[str, Any], body: CampaignUpdate, changes: dict[str, Any]) -> float | None:
    """The start a new expiry must follow: the new start_at, else the scheduled one (None once started)."""
    if "start_at" in changes:
        return body.start_at.timestamp() if body.start_at else None
    scheduled = campaign["status"] == CampaignStatus.SCHEDULED and campaign.get("start_at")
    return float(campaign["start_at"]) if scheduled else None


def _schedule(campaign: dict[str, Any], start_at: int, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    """Put the campaign's start schedule, then make it `scheduled` for that time (with `changes`), if it is
    still not started. A schedule left behind by a campaign that started meanwhile fires, finds it not
    scheduled for that time, and does nothing."""
    schedules.put_start(campaign["id"], campaign["pk"], start_at)
    fields = {**(changes or {}), "start_at": start_at, "status": CampaignStatus.SCHEDULED.value}
    fields["start_problem"] = None  # a problem of an earlier schedule
    return campaign_catalog.update_definition(campaign, fields, NOT_STARTED)


def _check_chain(account: str, campaign_id: str | None, next_id: str) -> None:
    """`next_id` is a campaign of the account, and following the chain from it never comes back to
    `campaign_id` (422 naming next_campaign_id otherwise)."""
    seen: list[str] = []
    current: str | None = next_id
    while current is not None and len(seen) < MAX_CHAIN:
        if current == campaign_id:
            chain = " -> ".join([campaign_id, *seen, current])
            raise InvalidInput.on("next_campaign_id", f"would make a cycle: {chain}")
        try:
            found = campaigns.get_campaign(account, current)
        except NotFound:
            if current == next_id:
                raise InvalidInput.on("next_campaign_id", f"no campaign {next_id} in this account") from None
            return  # a campaign further down was deleted: the chain ends there
        seen.append(current)
        current = found.get("next_campaign_id")


def _check_condition_kinds(account: str, list_id: str, defined: list[dict[str, Any]] | None) -> None:
    """A segment condition that can never hold for the list (an operator on an attribute whose every value is
    of another kind) is a 422 on the condition."""
    if not defined:
        return
    field_counts = lists.get_list(account, list_id).get("field_counts") or {}
    for field, reason in segments.kind_problems(defined, field_counts):
        raise InvalidInput.on(field, reason)


def _check_lists(account: str, list_id: str | None, exclusion_list_ids: list[str] | None) -> int | None:
    """The lists a definition names exist in the account (422 naming the field otherwise); returns the
    audience: the recipients of `list_id` now (None when it names none)."""
    audience = None
    if list_id is not None:
        try:
            audience = int(lists.get_list(account, list_id)["recipient_count"])
        except NotFound:
            raise InvalidInput.on("list_id", f"no list {list_id} in this account") from None
    for i, excluded in enumerate(exclusion_list_ids or []):
        try:
            lists.get_list(account, excluded)
        except NotFound:
            raise InvalidInput.on(f"exclusion_list_ids[{i}]", f"no list {excluded} in this account") from None
    return audience


@route(bp, "/campaigns", methods=["GET"])
def list_campaigns(account: str) -> Page[Campaign]:
    request = bp.current_request
    statuses = _statuses(query_str(request, "status"))
    list_id = query_str(request, "list_id")
    created_from = _instant(query_str(request, "created_after"), "created_after")
    created_to = _instant(query_str(request, "created_before"), "created_before")
    # The token is bound to the filters: a page token of one query is a 400 in another.
    scope = f"{account}/campaigns?{','.join(sorted(statuses))}|{list_id}|{created_from}|{created_to}"
    items, token = paged(
        request,
        scope,
        lambda after, limit: campaign_catalog.campaigns_page(
            account,
            after=after,
            limit=limit,
            statuses=statuses,
            list_id=list_id,
            created_from_ms=created_from if created_from is not None else 0,
            created_to_ms=created_to if created_to is not None else keys.MAX_INDEX_MS,
        ),
    )
    return Page[Campaign](items=[campaign_view(i) for i in items], next_page_token=token)


def _statuses(raw: str | None) -> frozenset[str]:
    if raw is None:
        return frozenset()
    names = [part.strip() for part in raw.split(",")]
    known = {s.value for s in CampaignStatus}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InvalidInput.on("status", f"unknown status {unknown[0]!r}; one or more of {', '.join(sorted(known))}")
    return frozenset(names)


def _instant(raw: str | None, name: str) -> int | None:
    """An ISO 8601 date-time with its offset, as epoch milliseconds."""
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidInput.on(name, "must be an ISO 8601 date-time with an offset, e.g. 2026-11-25T09:00:00Z")
    return max(0, min(int(moment.timestamp() * 1000), keys.MAX_INDEX_MS))


@route(bp, "/campaigns/{campaign_id}", methods=["PATCH"])
def update_campaign(account: str, campaign_id: str) -> Campaign:
    campaign = campaigns.get_campaign(account, campaign_id)  # first: another account's id is a 404, whatever the body
    body = parse_body(bp.current_request, CampaignUpdate)
    changes: dict[str, Any] = body.model_dump(mode="json", exclude_unset=True)
    status = CampaignStatus(campaign["status"])
    if changes.get("next_campaign_id") is not None:
        _check_chain(account, campaign_id, changes["next_campaign_id"])
    if "expires_at" in changes:
        changes["expires_at"] = _expiry(body.expires_at, _start_reference(campaign, body, changes))
    channel_fields = {
        "sender",
        "email",
        "whatsapp",
        "voice",
        "mms",
        "viber",
        "messenger",
        "variants",
        "segments",
        "fallback",
        "category",
        "template",
        "template_id",
        "action_id",
    }
    if {"segments", "segment_policy"} & set(changes) and status in NOT_STARTED:
        _check_segment_policy({**campaign, **changes}, "segment_policy" if "segment_policy" in changes else "segments")
    if {"segments", "list_id"} & set(changes) and status in NOT_STARTED:
        merged = {**campaign, **changes}
        _check_condition_kinds(account, merged["list_id"], merged.get("segments"))
    if channel_fields & set(changes) and status in NOT_STARTED:
        changes.update(_channel_fields(account, {**campaign, **changes}))
    if {"template", "template_id", "template_version"} & set(changes) and _sends_text({**campaign, **changes}):
        template_id = changes.get("template_id") or (None if "template" in changes else campaign.get("template_id"))
        changes.update(
            _template_fields(
                account, changes.get("template"), template_id, changes.get("template_version"), {**campaign, **changes}
            )
        )
    if status in NOT_STARTED:
        allowed = NOT_STARTED
        audience = _check_lists(account, changes.get("list_id"), changes.get("exclusion_list_ids"))
        if audience is not None:  # the audience of the new list, until the start counts it again
            changes["total"] = audience
        if "rate_per_second" in changes:  # nothing is sent yet: the deliveries' spread follows the rate
            changes["buckets"] = keys.bucket_count(float(changes["rate_per_second"]))
        if "recurrence" in changes and body.recurrence is None and not campaign.get("recurrence"):
            changes.pop("recurrence")  # null on a campaign that does not recur: nothing to undo
        recurs = body.recurrence is not None if "recurrence" in changes else bool(campaign.get("recurrence"))
        if recurs and changes.get("end_handle", campaign.get("end_handle")) == EndHandle.CONTINUE:
            raise InvalidInput.on("end_handle", CONTINUE_RECURS)
        if "recurrence" in changes:
            if "start_at" in changes:
                raise InvalidInput.on("start_at", "give a start time or a recurrence, not both")
            changes.pop("recurrence")
            if body.recurrence is not None:
                _check_recurrence(body.recurrence)
                recurring = _recur(campaign, body.recurrence, changes)
                schedules.delete_start(campaign_id)  # a one-time start it had
                return campaign_view(recurring)
            changes.update(recurrence=None, status=CampaignStatus.DRAFT.value, start_at=None)
            unscheduled = campaign_catalog.update_definition(campaign, changes, allowed)
            schedules.delete_runs(campaign_id)
            return campaign_view(unscheduled)
        if "start_at" in changes:
            if campaign.get("recurrence"):
                raise InvalidInput.on("start_at", "the campaign recurs: PATCH recurrence to null first")
            changes.pop("start_at")
            if body.start_at is not None:
                return campaign_view(_schedule(campaign, _start_time(body.start_at), changes))
            changes["status"] = CampaignStatus.DRAFT.value
            changes["start_at"] = None
            unscheduled = campaign_catalog.update_definition(campaign, changes, allowed)
            schedules.delete_start(campaign_id)
            return campaign_view(unscheduled)
    elif status in STARTED:
        allowed = STARTED
        for name in changes:
            if name not in CHANGEABLE_WHEN_STARTED:
                raise Conflict(
                    detail=f"{name} can be changed only while the campaign is a draft; it is {status.value}",
                    errors=[FieldError(name, f"not changeable while {status.value}")],
                )
        if "rate_per_second" in changes:
            _check_started_rate(campaign, float(changes["rate_per_second"]))
    else:
        raise Conflict(
            detail=f"a {status.value} campaign cannot be changed; clone it to send again",
            errors=[FieldError("status", f"is {status.value}")],
        )
    if not changes:
        return campaign_view(campaign)
    updated = campaign_catalog.update_definition(campaign, changes, allowed)
    if changes.get("end_handle") == EndHandle.STOP and status in STARTED and complete_if_done(updated):
        updated = campaigns.get_campaign(account, campaign_id)  # stopped with nothing left to send
    if status == CampaignStatus.RUNNING and float(changes.get("rate_per_second", 0)) > float(
        campaign["rate_per_second"]
    ):
        _release_faster(updated)
    return campaign_view(updated)


def _release_faster(campaign: dict[str, Any]) -> None:
    """A running campaign's rate went up: the pacer releases at the new rate from now, beside the chunks it
    released ahead at the old one (up to a release window: 60 s on AWS), and at once. Dispatch's pacing
    ledger holds the sends to the new rate whatever arrives, so the new rate shows within a second; more is
    queued meanwhile, within the backpressure bound."""
    campaigns.set_fields(campaign["pk"], {"released_until": time.time()})
    start.release_soon(campaign["pk"])


def _check_started_rate(campaign: dict[str, Any], rate: float) -> None:
    """A started campaign's deliveries are spread over the buckets its rate had at creation (or its last
    change as a draft); a faster rate would put more writes on each partition key than they take."""
    buckets = int(campaign.get("buckets", 1))
    most = buckets * keys.RECIPIENTS_PER_BUCKET_PER_SECOND
    if keys.bucket_count(rate) > buckets:
        raise InvalidInput.on(
            "rate_per_second",
            f"at most {most:g} per second once started (its deliveries are spread for that rate); "
            "clone the campaign to send faster",
        )


@route(bp, "/campaigns/{campaign_id}", methods=["DELETE"], status=204)
def delete_campaign(account: str, campaign_id: str) -> None:
    campaign = campaigns.get_campaign(account, campaign_id)
    status = CampaignStatus(campaign["status"])
    if status not in DELETABLE:
        raise Conflict(
            detail=f"a {status.value} campaign cannot be deleted; cancel it first",
            errors=[FieldError("status", f"is {status.value}")],
        )
    campaign_catalog.delete_campaign(campaign, DELETABLE)
    if status == CampaignStatus.SCHEDULED:
        schedules.delete_start(campaign_id)
        schedules.delete_runs(campaign_id)


@route(bp, "/campaigns/{campaign_id}/clone", methods=["POST"], status=201)
def clone_campaign(account: str, campaign_id: str) -> Campaign:
    original = campaigns.get_campaign(account, campaign_id)
    request = bp.current_request
    body = parse_body(request, CampaignClone) if request.raw_body else CampaignClone()
    # A clone starts afresh: no start time, no expiry (the original's have passed or belong to it).
    name = body.name or f"{original['name']} (copy)"[:200]
    definition = copied_definition(original, name, frozenset({"start_at", "expires_at", "recurrence"}))
    try:
        audience = int(lists.get_list(account, definition["list_id"])["recipient_count"])
    except NotFound:  # its start will say so
        audience = 0
    return campaign_view(campaigns.create_campaign(account, definition, audience=audience))


@route(bp, "/campaigns/{campaign_id}", methods=["GET"])
def get_campaign(account: str, campaign_id: str) -> Campaign:
    return campaign_view(campaigns.get_campaign(account, campaign_id))


@route(bp, "/campaigns/{campaign_id}/variables", methods=["GET"])
def check_variables(account: str, campaign_id: str) -> VariableCheck:
    recipients, counted, needed, lacking = start.variable_check(account, campaigns.get_campaign(account, campaign_id))
    return VariableCheck(recipients=recipients, counted=counted, variables=sorted(needed), missing=lacking)


@route(bp, "/campaigns/{campaign_id}/start", methods=["POST"])
def start_campaign(account: str, campaign_id: str) -> Campaign:
    return campaign_view(start.start(campaigns.get_campaign(account, campaign_id)))


def _act(account: str, campaign_id: str, action: CampaignAction) -> Campaign:
    campaign = campaigns.get_campaign(account, campaign_id)
    current = CampaignStatus(campaign["status"])
    sets: dict[str, Any] = {"pause_reason": None}  # the customer acts: a reason the service paused for is old
    if action == CampaignAction.RESUME:
        # The pace restarts from now (no burst to catch up on the paused time), but never before what was
        # already released: chunks still waiting in the queue keep their place, and the rate is not doubled.
        sets["released_until"] = max(time.time(), float(campaign.get("released_until", 0)))
    changed = campaigns.change_status(campaign["pk"], current, next_status(action, current), sets=sets)
    if action == CampaignAction.RESUME:
        start.release_soon(changed["pk"])
    if current == CampaignStatus.SCHEDULED:  # cancelled before its time
        schedules.delete_start(campaign_id)
        schedules.delete_runs(campaign_id)
    if action == CampaignAction.CANCEL:
        runs.after_run(changed)  # a cancelled run lets the run queued behind it start
    return campaign_view(changed)


@route(bp, "/campaigns/{campaign_id}/runs", methods=["GET"])
def list_runs(account: str, campaign_id: str) -> Page[Run]:
    """A recurring campaign's occurrences, oldest first: each run's status and counters, or why it was skipped."""
    campaign = campaigns.get_campaign(account, campaign_id)
    items, token = paged(
        bp.current_request,
        f"{account}/campaigns/{campaign_id}/runs",
        lambda after, limit: runs.runs_page(campaign["pk"], after=after, limit=limit),
    )
    return Page[Run](items=[run_view(i) for i in items], next_page_token=token)


@route(bp, "/campaigns/{campaign_id}/runs/{run_id}", methods=["GET"])
def get_run(account: str, campaign_id: str, run_id: str) -> Run:
    campaign = campaigns.get_campaign(account, campaign_id)
    return run_view(runs.get_run(campaign["pk"], run_id))


@route(bp, "/campaigns/{campaign_id}/pause", methods=["POST"])
def pause_campaign(account: str, campaign_id: str) -> Campaign:
    return _act(account, campaign_id, CampaignAction.PAUSE)


@route(bp, "/campaigns/{campaign_id}/resume", methods=["POST"])
def resume_campaign(account: str, campaign_id: str) -> Campaign:
    return _act(account, campaign_id, CampaignAction.RESUME)


@route(bp, "/campaigns/{campaign_id}/cancel", methods=["POST"])
def cancel_campaign(account: str, campaign_id: str) -> Campaign:
    return _act(account, campaign_id, CampaignAction.CANCEL)


@route(bp, "/campaigns/{campaign_id}/recount", methods=["POST"])
def recount_campaign(account: str, campaign_id: str) -> Recount:
    return _recount(account, campaign_id)


@route(bp, "/accounts/{account_id}/campaigns/{campaign_id}/recount", methods=["POST"], auth="operator")
def recount_any_campaign(account_id: str, campaign_id: str) -> Recount:
    """The operator's recount of any account's campaign (admin token)."""
    return _recount(account_id, campaign_id)


def _recount(account: str, campaign_id: str) -> Recount:
    result = recount.recount(campaigns.get_campaign(account, campaign_id))
    return Recount(
        before=counters_view(result.before),
        after=counters_view(result.after),
        drift=result.drift,
        applied=result.applied,
    )


@route(bp, "/campaigns/{campaign_id}/recipients", methods=["GET"])
def list_outcomes(account: str, campaign_id: str) -> Page[Delivery]:
    """Until the campaign is finished, its audience in list order, each recipient with its delivery or as
    `pending` (one list Query and one BatchGetItem a page); once finished, its deliveries (its list may be
    gone by then)."""
    campaign = campaigns.get_campaign(account, campaign_id)
    audience_scope = f"{account}/campaigns/{campaign_id}/audience"
    # A client paging while the campaign finishes goes on as it began (its token names the audience).
    if CampaignStatus(campaign["status"]) in TERMINAL and not _token_of(audience_scope):
        buckets = int(campaign.get("buckets", 1))
        items, token = paged(
            bp.current_request,
            f"{account}/campaigns/{campaign_id}",
            lambda after, limit: deliveries.deliveries_page(campaign["pk"], buckets, after=after, limit=limit),
        )
        return Page[Delivery](items=[_view(campaign, i) for i in items], next_page_token=token)
    started_ms = campaign.get("started_at_ms")
    evergreen = campaign.get("end_handle") == EndHandle.CONTINUE
    audience, token = paged(
        bp.current_request,
        audience_scope,
        lambda after, limit: lists.recipients_page(
            account,
            campaign["list_id"],
            after=after,
            limit=limit,
            # A `continue` campaign's audience is the whole list: it takes recipients added after its start.
            added_before_ms=int(started_ms) if started_ms is not None and not evergreen else None,
        ),
    )
    ids = [item["sk"].removeprefix(keys.RECIPIENT_PREFIX) for _, item in audience]
    wanted = {rid: _keys_of(campaign, rid, item) for rid, (_, item) in zip(ids, audience, strict=True)}
    keyed = [key for some in wanted.values() for key in some]
    found = {d["sk"]: d for d in deliveries.deliveries_of(campaign["pk"], int(campaign.get("buckets", 1)), keyed)}
    views: list[Delivery] = []
    for rid, (_, item) in zip(ids, audience, strict=True):
        messages = [_view(campaign, found[key]) for key in wanted[rid] if key in found]
        views += messages or [pending_view(item)]  # an `every` campaign's recipient: a row per message
    return Page[Delivery](items=views, next_page_token=token)


def _keys_of(campaign: dict[str, Any], rid: str, item: dict[str, Any] | None) -> list[str]:
    """The keys of a recipient's deliveries: its id; in an `every` campaign one per segment it matches (as its
    list item matches now), or, without the item, one per segment it could match (decision 49)."""
    if not segments.is_every(campaign):
        return [rid]
    if item is not None:
        slots = segments.slots_of(campaign, lists.recipient_of(item), datetime.now(UTC))
    else:
        slots = [*(str(i) for i in range(len(campaign.get("segments") or []))), segments.NO_SLOT]
    return [segments.delivery_key(rid, slot) for slot in slots]


def _view(campaign: dict[str, Any], item: dict[str, Any]) -> Delivery:
    """A delivery as listed: an `every` campaign's message with its recipient's id and its segment."""
    if not segments.is_every(campaign):
        return delivery_view(item, _channel_of(campaign, item))
    rid, slot = segments.split_key(str(item["sk"]))
    segment = segments.slot_segment(campaign, slot)
    name = str(segment["name"]) if segment is not None else None
    return delivery_view(item, _channel_of(campaign, item), recipient_id=rid, segment=name)


def _token_of(scope: str) -> bool:
    """Whether the request's page token was issued for `scope`."""
    try:
        return pages.decode(scope, query_str(bp.current_request, "page_token")) is not None
    except MalformedRequest:
        return False


@route(bp, "/campaigns/{campaign_id}/recipients/{recipient_id}", methods=["GET"])
def get_outcome(account: str, campaign_id: str, recipient_id: str) -> Delivery:
    campaign = campaigns.get_campaign(account, campaign_id)
    if segments.is_every(campaign) and not is_erased_id(recipient_id):
        return _messages_of(campaign, campaign_id, recipient_id)
    pk = deliveries.pk_for(campaign["pk"], int(campaign.get("buckets", 1)), recipient_id)
    item = deliveries.get_delivery(pk, recipient_id)
    if item is None and is_erased_id(recipient_id):  # an erased copy stays in its original's bucket (decision 42)
        buckets = range(int(campaign.get("buckets", 1)))
        found = (deliveries.get_delivery(keys.delivery_pk(campaign["pk"], b), recipient_id) for b in buckets)
        item = next((one for one in found if one is not None), None)
    if item is None:
        raise NotFound(detail=f"recipient {recipient_id} has no delivery in campaign {campaign_id} (not released yet)")
    return delivery_view(item, _channel_of(campaign, item))


def _messages_of(campaign: dict[str, Any], campaign_id: str, recipient_id: str) -> Delivery:
    """An `every` campaign's recipient: each of its messages (one BatchGetItem of its possible keys, at most 21),
    in segment order; the first one's fields on top (decision 49)."""
    wanted = _keys_of(campaign, recipient_id, None)
    found = {d["sk"]: d for d in deliveries.deliveries_of(campaign["pk"], int(campaign.get("buckets", 1)), wanted)}
    messages = [_view(campaign, found[key]) for key in wanted if key in found]
    if not messages:
        raise NotFound(detail=f"recipient {recipient_id} has no delivery in campaign {campaign_id} (not released yet)")
    parts = [DeliveryMessage.model_validate(m.model_dump(exclude={"messages"})) for m in messages]
    return messages[0].model_copy(update={"messages": parts})


def _channel_of(campaign: dict[str, Any], delivery: dict[str, Any]) -> str:
    """The channel a delivery's last attempt went on: its segment's, or the fallback's (decision 39)."""
    step = int(delivery.get("channel_step", 0))
    return str(segments.effective(campaign, delivery.get("segment"), step)["channel"])
