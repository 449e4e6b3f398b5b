"""OpenAPI 3.1 document built from the pydantic models and the table of operations below."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple, get_args

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from chalicelib.api.http import (
    DEFAULT_PAGE,
    ID_PATTERN,
    MAX_BODY_BYTES,
    MAX_IDEMPOTENCY_KEY,
    MAX_PAGE,
    PROBLEM_JSON,
    RECIPIENT_ID_PATTERN,
)
from chalicelib.domain import models as m
from chalicelib.domain.recipients import ListItemIn, RecipientRow
from chalicelib.domain.responses import SUPPRESSION_CHANNELS
from chalicelib.operations.events import EVENT_TYPES
from chalicelib.store.pages import MAX_TOKEN_LENGTH


class Operation(NamedTuple):
    method: str
    path: str
    summary: str
    request: type[BaseModel] | None
    status: int
    response: type[BaseModel] | None  # None: an empty answer (204)
    operation_id: str
    paged: bool = False  # reads `page_token` and `limit` from the query string
    admin: bool = False  # needs the operator's admin token, not an account's key
    query: tuple[dict[str, Any], ...] = ()  # other query parameters it reads
    body_optional: bool = False  # its request body may be left out
    signed: bool = False  # a provider's signed callback, not a customer's call


def _query(name: str, description: str, schema: dict[str, Any], *, required: bool = False) -> dict[str, Any]:
    """A query parameter of an operation."""
    return {"name": name, "in": "query", "required": required, "description": description, "schema": schema}


def _text(longest: int) -> dict[str, Any]:
    return {"type": "string", "maxLength": longest}


OPERATIONS: list[Operation] = [
    Operation(
        "post",
        "/v1/accounts",
        "Create an account (admin token) and its first API key",
        m.AccountCreate,
        201,
        m.AccountCreated,
        "createAccount",
        admin=True,
    ),
    Operation("post", "/v1/lists", "Create a recipient list", m.ListCreate, 201, m.RecipientList, "createList"),
    Operation("get", "/v1/lists/{list_id}", "Read a list", None, 200, m.RecipientList, "getList"),
    Operation(
        "post",
        "/v1/lists/{list_id}/recipients",
        "Add up to 10,000 recipients; bad rows are reported",
        m.RecipientsAdd,
        200,
        m.RecipientsAdded,
        "addRecipients",
    ),
    Operation(
        "get",
        "/v1/lists/{list_id}/recipients",
        "Page through a list's recipients",
        None,
        200,
        m.Page[m.ListRecipient],
        "listRecipients",
        paged=True,
    ),
    Operation("post", "/v1/campaigns", "Create a draft campaign", m.CampaignCreate, 201, m.Campaign, "createCampaign"),
    Operation(
        "get",
        "/v1/campaigns",
        "Page through the account's campaigns, newest first, by status, list and creation time",
        None,
        200,
        m.Page[m.Campaign],
        "listCampaigns",
        paged=True,
        query=(
            _query(
                "status", "One or more statuses, comma-separated (e.g. running,paused); any other is a 422.", _text(200)
            ),
            _query("list_id", "Only campaigns sending to this list.", _text(64)),
            *(
                _query(
                    name,
                    f"Only campaigns created {word} this instant (ISO 8601 with offset).",
                    {"type": "string", "format": "date-time"},
                )
                for name, word in (("created_after", "at or after"), ("created_before", "at or before"))
            ),
        ),
    ),
    Operation(
        "patch",
        "/v1/campaigns/{campaign_id}",
        "Change a campaign: any field while draft, name and rate while running or paused (409 otherwise)",
        m.CampaignUpdate,
        200,
        m.Campaign,
        "updateCampaign",
    ),
    Operation(
        "delete",
        "/v1/campaigns/{campaign_id}",
        "Delete a draft or finished campaign (409 while running or paused)",
        None,
        204,
        None,
        "deleteCampaign",
    ),
    Operation(
        "post",
        "/v1/campaigns/{campaign_id}/clone",
        "A new draft with the same definition (body optional)",
        m.CampaignClone,
        201,
        m.Campaign,
        "cloneCampaign",
        body_optional=True,
    ),
    Operation(
        "get", "/v1/campaigns/{campaign_id}", "Read a campaign with live counters", None, 200, m.Campaign, "getCampaign"
    ),
    Operation(
        "post", "/v1/campaigns/{campaign_id}/start", "Start a draft campaign", None, 200, m.Campaign, "startCampaign"
    ),
    Operation(
        "post", "/v1/campaigns/{campaign_id}/pause", "Pause a running campaign", None, 200, m.Campaign, "pauseCampaign"
    ),
    Operation(
        "post",
        "/v1/campaigns/{campaign_id}/resume",
        "Resume a paused campaign",
        None,
        200,
        m.Campaign,
        "resumeCampaign",
    ),
    Operation(
        "post", "/v1/campaigns/{campaign_id}/cancel", "Cancel a campaign", None, 200, m.Campaign, "cancelCampaign"
    ),
    Operation(
        "get",
        "/v1/campaigns/{campaign_id}/variables",
        "The variables the campaign's texts read, and how many of its list's recipients lack each",
        None,
        200,
        m.VariableCheck,
        "checkCampaignVariables",
    ),
    Operation(
        "post",
        "/v1/campaigns/{campaign_id}/recount",
        "Rebuild a campaign's counters from its deliveries",
        None,
        200,
        m.Recount,
        "recountCampaign",
    ),
    Operation(
        "post",
        "/v1/accounts/{account_id}/campaigns/{campaign_id}/recount",
        "Recount any account's campaign (admin token)",
        None,
        200,
        m.Recount,
        "recountAnyCampaign",
        admin=True,
    ),
    Operation(
        "get",
        "/v1/campaigns/{campaign_id}/recipients",
        "Per-recipient outcomes, with a cursor",
        None,
        200,
        m.Page[m.Delivery],
        "listCampaignRecipients",
        paged=True,
    ),
    Operation(
        "get",
        "/v1/campaigns/{campaign_id}/runs",
        "A recurring campaign's runs, oldest first (each a campaign of its own), with a cursor",
        None,
        200,
        m.Page[m.Run],
        "listCampaignRuns",
        paged=True,
    ),
    Operation(
        "get",
        "/v1/campaigns/{campaign_id}/runs/{run_id}",
        "One run of a recurring campaign",
        None,
        200,
        m.Run,
        "getCampaignRun",
    ),
    Operation(
        "get",
        "/v1/campaigns/{campaign_id}/recipients/{recipient_id}",
        "One recipient's outcome with every attempt (destination, try, provider id, outcome, times)",
        None,
        200,
        m.Delivery,
        "getCampaignRecipient",
    ),
    Operation(
        "post",
        "/v1/lists/{list_id}/uploads",
        "Upload a CSV or XLSX file of recipients: get a presigned S3 URL (multipart above 100 MB)",
        m.UploadCreate,
        201,
        m.UploadCreated,
        "createUpload",
    ),
    Operation(
        "get",
        "/v1/lists/{list_id}/uploads/{upload_id}",
        "An upload's state, counters and rejected rows",
        None,
        200,
        m.Upload,
        "getUpload",
    ),
    Operation(
        "post",
        "/v1/lists/{list_id}/uploads/{upload_id}/complete",
        "Complete a multipart upload with its parts' ETags",
        m.UploadComplete,
        200,
        m.Upload,
        "completeUpload",
    ),
    Operation(
        "get",
        "/v1/lists",
        "Page through the account's lists, newest first",
        None,
        200,
        m.Page[m.RecipientList],
        "listLists",
        paged=True,
    ),
    Operation("patch", "/v1/lists/{list_id}", "Rename a list", m.ListUpdate, 200, m.RecipientList, "updateList"),
    Operation(
        "delete",
        "/v1/lists/{list_id}",
        "Delete a list (409 while a running or paused campaign uses it); its recipients are removed later",
        None,
        204,
        None,
        "deleteList",
    ),
    Operation(
        "post",
        "/v1/lists/{list_id}/clear",
        "Empty a list at once (409 while a running or paused campaign uses it); old items are removed later",
        None,
        202,
        m.RecipientList,
        "clearList",
    ),
    Operation(
        "get",
        "/v1/lists/{list_id}/recipients/{recipient_id}",
        "Read one recipient of a list",
        None,
        200,
        m.ListRecipient,
        "getListRecipient",
    ),
    Operation(
        "patch",
        "/v1/lists/{list_id}/recipients/{recipient_id}",
        "Replace a recipient's destinations, attributes, locale or time zone (checked as an upload's row)",
        m.RecipientUpdate,
        200,
        m.ListRecipient,
        "updateListRecipient",
    ),
    Operation(
        "delete",
        "/v1/lists/{list_id}/recipients/{recipient_id}",
        "Remove a recipient from a list (a second DELETE is a 404; the count goes down once)",
        None,
        204,
        None,
        "deleteListRecipient",
    ),
    Operation(
        "post",
        "/v1/lists/{list_id}/exports",
        "Export a list's recipients as CSV (formula cells neutralised with a leading ')",
        None,
        202,
        m.Export,
        "exportList",
    ),
    Operation(
        "get",
        "/v1/lists/{list_id}/exports/{export_id}",
        "A list export's state and, once completed, its download link",
        None,
        200,
        m.Export,
        "getListExport",
    ),
    Operation(
        "post",
        "/v1/campaigns/{campaign_id}/exports",
        "Export a campaign's per-recipient outcomes as CSV (formula cells neutralised with a leading ')",
        None,
        202,
        m.Export,
        "exportCampaign",
    ),
    Operation(
        "get",
        "/v1/campaigns/{campaign_id}/exports/{export_id}",
        "A campaign export's state and, once completed, its download link",
        None,
        200,
        m.Export,
        "getCampaignExport",
    ),
    Operation(
        "post",
        "/v1/templates",
        "Create a message template (version 1)",
        m.TemplateCreate,
        201,
        m.Template,
        "createTemplate",
    ),
    Operation(
        "get",
        "/v1/templates",
        "Page through the account's templates",
        None,
        200,
        m.Page[m.Template],
        "listTemplates",
        paged=True,
    ),
    Operation(
        "get", "/v1/templates/{template_id}", "A template and its latest version", None, 200, m.Template, "getTemplate"
    ),
    Operation(
        "delete",
        "/v1/templates/{template_id}",
        "Delete a template and its versions (campaigns keep the version they pinned)",
        None,
        204,
        None,
        "deleteTemplate",
    ),
    Operation(
        "post",
        "/v1/templates/{template_id}/versions",
        "Change a template: a new, immutable version",
        m.TemplateVersionCreate,
        201,
        m.TemplateVersion,
        "addTemplateVersion",
    ),
    Operation(
        "get",
        "/v1/templates/{template_id}/versions/{version}",
        "One version of a template",
        None,
        200,
        m.TemplateVersion,
        "getTemplateVersion",
    ),
    Operation(
        "post",
        "/v1/templates/{template_id}/preview",
        "Render a template for a sample recipient: the text, its SMS encoding and segment count",
        m.TemplatePreviewRequest,
        200,
        m.TemplatePreview,
        "previewTemplate",
    ),
    Operation(
        "post",
        "/v1/actions",
        "Create an HTTP action (its secret goes to Secrets Manager, never returned)",
        m.ActionCreate,
        201,
        m.Action,
        "createAction",
    ),
    Operation(
        "get",
        "/v1/actions",
        "Page through the account's HTTP actions",
        None,
        200,
        m.Page[m.Action],
        "listActions",
        paged=True,
    ),
    Operation("get", "/v1/actions/{action_id}", "An HTTP action", None, 200, m.Action, "getAction"),
    Operation(
        "delete",
        "/v1/actions/{action_id}",
        "Delete an HTTP action and its secret (campaigns calling it pause, refused, within 5 minutes)",
        None,
        204,
        None,
        "deleteAction",
    ),
    Operation(
        "post",
        "/v1/actions/{action_id}/test",
        "Render the action for a sample recipient, send it, and show what came back",
        m.ActionTestRequest,
        200,
        m.ActionTestResult,
        "testAction",
    ),
    Operation(
        "get",
        "/v1/calls",
        "Page through a voice campaign's calls: status, outcome, duration, recording",
        None,
        200,
        m.Page[m.Call],
        "listCalls",
        paged=True,
        query=(_query("campaign_id", "The voice campaign whose calls to list.", _text(64), required=True),),
    ),
    Operation(
        "post",
        "/v1/webhooks/vonage/voice",
        "A call's event, posted by Vonage to the call's event URL (signed; the URL names the attempt)",
        m.CallEvent,
        200,
        m.CallEventResult,
        "voiceEvent",
        signed=True,
        query=(
            *(
                _query(name, f"The call's {name}, as dispatch wrote it into the event URL.", _text(200), required=True)
                for name in ("account", "campaign", "recipient", "attempt")
            ),
            _query(
                "event",
                "`recording`: the body is a CallRecordingEvent (the call's `record` action's event URL); "
                "`transcription`: a CallTranscriptionEvent (its transcription's). Omitted: a CallEvent.",
                {"type": "string", "enum": ["recording", "transcription"]},
            ),
        ),
    ),
    Operation(
        "post",
        "/v1/webhooks/vonage/inbound",
        "A recipient's message to one of the account's numbers, posted by Vonage (signed): STOP, START, HELP",
        m.InboundMessage,
        200,
        m.InboundResult,
        "inboundMessage",
        signed=True,
    ),
    Operation(
        "post",
        "/v1/webhooks/vonage/status",
        "A message's delivery receipt, posted by Vonage (signed); its client_ref names the attempt",
        m.MessageStatus,
        200,
        m.ReceiptResult,
        "messageStatus",
        signed=True,
    ),
    Operation(
        "post",
        "/v1/suppressions",
        "Suppress a destination on a channel (or all): no campaign sends to it until it is lifted",
        m.SuppressionCreate,
        201,
        m.SuppressionResult,
        "addSuppression",
    ),
    Operation(
        "get",
        "/v1/suppressions",
        "Page through the account's suppressions, by channel, or where one destination is suppressed",
        None,
        200,
        m.Page[m.Suppression],
        "listSuppressions",
        paged=True,
        query=(
            _query(
                "channel",
                "sms, whatsapp, viber_service, messenger, voice, email, or all (the default).",
                {"type": "string", "enum": list(SUPPRESSION_CHANNELS)},
            ),
            _query("destination", "One number (E.164) or email address: the scopes it is suppressed in.", _text(254)),
        ),
    ),
    Operation(
        "post",
        "/v1/suppressions/imports",
        "Suppress many destinations from a CSV or XLSX file (destination, optional channel): get a presigned S3 URL",
        m.SuppressionImportCreate,
        201,
        m.UploadCreated,
        "createSuppressionImport",
    ),
    Operation(
        "get",
        "/v1/suppressions/imports/{import_id}",
        "A suppression import's state, counters and rejected rows (by line)",
        None,
        200,
        m.SuppressionImport,
        "getSuppressionImport",
    ),
    Operation(
        "delete",
        "/v1/suppressions",
        "Lift a destination's suppression on a channel (or all)",
        None,
        200,
        m.SuppressionResult,
        "liftSuppression",
        query=(
            _query("destination", "The number (E.164) or email address.", _text(254), required=True),
            _query(
                "channel",
                "The channel to lift it on, or all.",
                {"type": "string", "enum": list(SUPPRESSION_CHANNELS)},
                required=True,
            ),
        ),
    ),
    Operation(
        "delete",
        "/v1/recipients",
        "Erase a person from the account: lists, deliveries, events, webhook log and exports (counters kept), "
        "a suppression added unless suppress=false; accepted at once and carried out by a job",
        None,
        202,
        m.Erasure,
        "eraseRecipient",
        query=(
            _query(
                "destination",
                "The person's number (E.164) or email address (or name them by recipient_id, not both).",
                _text(254),
            ),
            _query("recipient_id", "The person's recipient id in the account's lists.", _text(128)),
            _query("suppress", "Add a suppression of their addresses (default true).", {"type": "boolean"}),
            _query(
                "channel",
                "The channel the suppression is for, or all (the default).",
                {"type": "string", "enum": list(SUPPRESSION_CHANNELS)},
            ),
        ),
    ),
    Operation(
        "get",
        "/v1/erasures",
        "Page through the account's erasures (the audit log)",
        None,
        200,
        m.Page[m.Erasure],
        "listErasures",
        paged=True,
    ),
    Operation(
        "get",
        "/v1/erasures/{erasure_id}",
        "An erasure's status and what it changed",
        None,
        200,
        m.Erasure,
        "getErasure",
    ),
    Operation(
        "post",
        "/v1/numbers",
        "Register a number (or a Viber service id, a Facebook page id) the account takes replies on, with its "
        "HELP answer",
        m.NumberCreate,
        201,
        m.Number,
        "registerNumber",
    ),
    Operation(
        "get",
        "/v1/numbers",
        "Page through the account's numbers",
        None,
        200,
        m.Page[m.Number],
        "listNumbers",
        paged=True,
    ),
    Operation(
        "delete",
        "/v1/numbers",
        "Give a number (or a Viber service id, a page id) up: replies to it are refused from then on",
        None,
        204,
        None,
        "releaseNumber",
        query=(
            _query("number", "The number (E.164), or the Viber service id or page id.", _text(50), required=True),
            _query(
                "channel",
                "What `number` is (as registered): `sms` when omitted.",
                {"type": "string", "enum": list(get_args(m.NumberChannel))},
            ),
        ),
    ),
    Operation(
        "get",
        "/v1/campaigns/{campaign_id}/stats",
        "What happened in each minute, hour or day of a campaign: sent, delivered, read, failed, opted out, "
        "clicks, conversions; per variant and segment",
        None,
        200,
        m.CampaignStats,
        "getCampaignStats",
        query=(
            _query(
                "granularity",
                "minute, hour (the default) or day.",
                {"type": "string", "enum": ["minute", "hour", "day"]},
            ),
            _query("since", "ISO 8601 with an offset; default the campaign's start.", _text(64)),
            _query("until", "ISO 8601 with an offset; default now. At most 1,500 points after `since`.", _text(64)),
        ),
    ),
    Operation(
        "post",
        "/v1/campaigns/{campaign_id}/conversions",
        "Report a goal a recipient of the campaign reached (counted per campaign, variant and segment; an event)",
        m.ConversionCreate,
        201,
        m.Conversion,
        "recordConversion",
    ),
    Operation(
        "get",
        "/v1/events",
        "Page through the event log, oldest first: deliveries, receipts, replies and opt-outs",
        None,
        200,
        m.Page[m.Event],
        "listEvents",
        paged=True,
        query=(
            *(
                _query(name, description, _text(128))
                for name, description in (
                    ("campaign_id", "Only this campaign's events."),
                    ("run_id", "Only this run's events (a recurring campaign's run: GET /v1/campaigns/{id}/runs)."),
                    ("recipient_id", "Only this recipient's events."),
                    ("since", "ISO 8601 with an offset; default 24 hours ago."),
                    ("until", "ISO 8601 with an offset; default now. At most 92 days after `since`."),
                )
            ),
            _query("type", "Only events of this type.", {"type": "string", "enum": list(EVENT_TYPES)}),
        ),
    ),
    Operation(
        "post",
        "/v1/webhooks",
        "Create a webhook: your endpoint gets the account's events, signed per Standard Webhooks",
        m.WebhookCreate,
        201,
        m.WebhookSecret,
        "createWebhook",
    ),
    Operation(
        "get",
        "/v1/webhooks",
        "Page through the account's webhooks",
        None,
        200,
        m.Page[m.Webhook],
        "listWebhooks",
        paged=True,
    ),
    Operation("get", "/v1/webhooks/{webhook_id}", "A webhook and its health", None, 200, m.Webhook, "getWebhook"),
    Operation("delete", "/v1/webhooks/{webhook_id}", "Delete a webhook", None, 204, None, "deleteWebhook"),
    Operation(
        "post",
        "/v1/webhooks/{webhook_id}/rotate",
        "A new signing secret; the previous one signs beside it for a day",
        None,
        200,
        m.WebhookSecret,
        "rotateWebhookSecret",
    ),
    Operation(
        "post", "/v1/webhooks/{webhook_id}/enable", "Enable a disabled webhook", None, 200, m.Webhook, "enableWebhook"
    ),
    Operation(
        "get",
        "/v1/webhooks/{webhook_id}/deliveries",
        "The webhook's deliveries of the last week: state, attempts, last answer",
        None,
        200,
        m.Page[m.WebhookDelivery],
        "listWebhookDeliveries",
        paged=True,
    ),
    Operation(
        "post",
        "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/replay",
        "Send a delivery's event again",
        None,
        202,
        m.WebhookDelivery,
        "replayWebhookDelivery",
    ),
    Operation(
        "post",
        "/v1/reply-handlers",
        "Create a reply handler: a condition on replies (keywords, regex, any) and the reactions to them",
        m.ReplyHandlerCreate,
        201,
        m.ReplyHandler,
        "createReplyHandler",
    ),
    Operation(
        "get",
        "/v1/reply-handlers",
        "Page through the account's reply handlers",
        None,
        200,
        m.Page[m.ReplyHandler],
        "listReplyHandlers",
        paged=True,
    ),
    Operation(
        "get", "/v1/reply-handlers/{handler_id}", "A reply handler", None, 200, m.ReplyHandler, "getReplyHandler"
    ),
    Operation(
        "delete", "/v1/reply-handlers/{handler_id}", "Delete a reply handler", None, 204, None, "deleteReplyHandler"
    ),
    Operation(
        "post",
        "/v1/brands",
        "Create an email brand: logo, colours, postal address and unsubscribe link around an email's content",
        m.BrandCreate,
        201,
        m.Brand,
        "createBrand",
    ),
    Operation(
        "get",
        "/v1/brands",
        "Page through the account's email brands",
        None,
        200,
        m.Page[m.Brand],
        "listBrands",
        paged=True,
    ),
    Operation("get", "/v1/brands/{brand_id}", "An email brand", None, 200, m.Brand, "getBrand"),
    Operation(
        "delete",
        "/v1/brands/{brand_id}",
        "Delete an email brand (campaigns keep the copy they took)",
        None,
        204,
        None,
        "deleteBrand",
    ),
    Operation("get", "/v1/limits", "The account's sender and country limits", None, 200, m.Limits, "listLimits"),
    *(
        operation
        for kind, param, noun in (("senders", "sender", "SenderLimit"), ("countries", "country", "CountryLimit"))
        for operation in (
            Operation(
                "put",
                f"/v1/limits/{kind}/{{{param}}}",
                f"Set a {param} limit: a rate every campaign of the account keeps between them",
                m.LimitSet,
                200,
                m.Limit,
                f"set{noun}",
            ),
            Operation(
                "get", f"/v1/limits/{kind}/{{{param}}}", f"Read a {param} limit", None, 200, m.Limit, f"get{noun}"
            ),
            Operation(
                "delete",
                f"/v1/limits/{kind}/{{{param}}}",
                f"Remove a {param} limit",
                None,
                204,
                None,
                f"delete{noun}",
            ),
        )
    ),
]

PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "reason"],
                "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
    },
}

PAGE_PARAMETERS = [
    _query(
        "page_token",
        "The `next_page_token` of the previous page; any other token is a 400 naming `page_token`.",
        _text(MAX_TOKEN_LENGTH),
    ),
    _query(
        "limit",
        f"Items per page, 1 to {MAX_PAGE}; a page may hold fewer even when more follow.",
        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE},
    ),
]

BODY_LIMIT = f"At most {MAX_BODY_BYTES:,} bytes (5 MB); a larger body is a 413."

# Which operations a response leads to: the ids it carries, as OpenAPI links (stateful clients and fuzzers
# follow them). Each entry: source operationId, status -> {link name: (target operationId, parameters, body)}.
_FROM_LIST_ID = {"list_id": "$response.body#/id"}
_FROM_CAMPAIGN_ID = {"campaign_id": "$response.body#/id"}
_LIST_IN_PATH = {"list_id": "$request.path.list_id"}
_CAMPAIGN_IN_PATH = {"campaign_id": "$request.path.campaign_id"}
_CAMPAIGN_ACTIONS = ("startCampaign", "pauseCampaign", "resumeCampaign", "cancelCampaign")

LinkSpec = tuple[str, dict[str, str], dict[str, str] | None]


def _list_links(ids: dict[str, str]) -> dict[str, LinkSpec]:
    return {
        "GetList": ("getList", ids, None),
        "AddRecipients": ("addRecipients", ids, None),
        "ListRecipients": ("listRecipients", ids, None),
        "CreateUpload": ("createUpload", ids, None),
        "CreateCampaign": ("createCampaign", {}, {"list_id": next(iter(ids.values()))}),
        "UpdateList": ("updateList", ids, None),
        "ClearList": ("clearList", ids, None),
        "ExportList": ("exportList", ids, None),
        "DeleteList": ("deleteList", ids, None),
    }


def _campaign_links(ids: dict[str, str]) -> dict[str, LinkSpec]:
    links: dict[str, LinkSpec] = {"GetCampaign": ("getCampaign", ids, None)}
    links.update({action[0].upper() + action[1:]: (action, ids, None) for action in _CAMPAIGN_ACTIONS})
    links["ListCampaignRecipients"] = ("listCampaignRecipients", ids, None)
    links["RecountCampaign"] = ("recountCampaign", ids, None)
    links["CheckCampaignVariables"] = ("checkCampaignVariables", ids, None)
    links["ExportCampaign"] = ("exportCampaign", ids, None)
    links["UpdateCampaign"] = ("updateCampaign", ids, None)
    links["CloneCampaign"] = ("cloneCampaign", ids, None)
    links["DeleteCampaign"] = ("deleteCampaign", ids, None)
    links["ListCampaignRuns"] = ("listCampaignRuns", ids, None)
    links["GetCampaignStats"] = ("getCampaignStats", ids, None)
    links["RecordConversion"] = ("recordConversion", ids, None)
    return links


LINKS: dict[str, dict[str, LinkSpec]] = {
    **{
        operation: {
            f"Get{noun}": (f"get{noun}", {param: "$response.body#/name"}, None),
            f"Set{noun}": (
                f"set{noun}",
                {param: "$response.body#/name"},
                {"rate_per_second": "$response.body#/rate_per_second"},
            ),
            f"Delete{noun}": (f"delete{noun}", {param: "$response.body#/name"}, None),
        }
        for param, noun in (("sender", "SenderLimit"), ("country", "CountryLimit"))
        for operation in (f"set{noun}", f"get{noun}")
    },
    "listLimits": {
        f"Get{noun}": (f"get{noun}", {param: "$response.body#/items/0/name"}, None)
        for param, noun in (("sender", "SenderLimit"), ("country", "CountryLimit"))
    },
    "createList": _list_links(_FROM_LIST_ID),
    "getList": _list_links(_FROM_LIST_ID),
    "addRecipients": {
        "GetList": ("getList", _LIST_IN_PATH, None),
        "ListRecipients": ("listRecipients", _LIST_IN_PATH, None),
        "CreateCampaign": ("createCampaign", {}, {"list_id": "$request.path.list_id"}),
    },
    "listRecipients": {
        "NextPage": ("listRecipients", {**_LIST_IN_PATH, "page_token": "$response.body#/next_page_token"}, None),
        "GetList": ("getList", _LIST_IN_PATH, None),
        **{
            name: (target, {**_LIST_IN_PATH, "recipient_id": "$response.body#/items/0/id"}, None)
            for name, target in (
                ("GetListRecipient", "getListRecipient"),
                ("UpdateListRecipient", "updateListRecipient"),
                ("DeleteListRecipient", "deleteListRecipient"),
            )
        },
    },
    "createCampaign": {
        **_campaign_links(_FROM_CAMPAIGN_ID),
        "GetList": ("getList", {"list_id": "$response.body#/list_id"}, None),
    },
    "getCampaign": _campaign_links(_FROM_CAMPAIGN_ID),
    "updateCampaign": _campaign_links(_FROM_CAMPAIGN_ID),
    "cloneCampaign": _campaign_links(_FROM_CAMPAIGN_ID),
    **{action: _campaign_links(_FROM_CAMPAIGN_ID) for action in _CAMPAIGN_ACTIONS},
    "listCampaignRecipients": {
        "NextPage": (
            "listCampaignRecipients",
            {**_CAMPAIGN_IN_PATH, "page_token": "$response.body#/next_page_token"},
            None,
        ),
        "GetCampaign": ("getCampaign", _CAMPAIGN_IN_PATH, None),
        "GetCampaignRecipient": (
            "getCampaignRecipient",
            {**_CAMPAIGN_IN_PATH, "recipient_id": "$response.body#/items/0/recipient_id"},
            None,
        ),
    },
    "listCampaignRuns": {
        "NextPage": (
            "listCampaignRuns",
            {**_CAMPAIGN_IN_PATH, "page_token": "$response.body#/next_page_token"},
            None,
        ),
        "GetCampaignRun": ("getCampaignRun", {**_CAMPAIGN_IN_PATH, "run_id": "$response.body#/items/0/id"}, None),
    },
    "createUpload": {
        "GetUpload": ("getUpload", {**_LIST_IN_PATH, "upload_id": "$response.body#/id"}, None),
        "CompleteUpload": ("completeUpload", {**_LIST_IN_PATH, "upload_id": "$response.body#/id"}, None),
    },
    "createSuppressionImport": {
        "GetSuppressionImport": ("getSuppressionImport", {"import_id": "$response.body#/id"}, None)
    },
    "exportList": {"GetListExport": ("getListExport", {**_LIST_IN_PATH, "export_id": "$response.body#/id"}, None)},
    "exportCampaign": {
        "GetCampaignExport": ("getCampaignExport", {**_CAMPAIGN_IN_PATH, "export_id": "$response.body#/id"}, None)
    },
    **{
        operation: {
            name: (target, {"template_id": "$response.body#/id"}, None)
            for name, target in (
                ("GetTemplate", "getTemplate"),
                ("AddTemplateVersion", "addTemplateVersion"),
                ("PreviewTemplate", "previewTemplate"),
                ("DeleteTemplate", "deleteTemplate"),
            )
        }
        for operation in ("createTemplate", "getTemplate")
    },
    "addTemplateVersion": {
        "GetTemplateVersion": (
            "getTemplateVersion",
            {"template_id": "$request.path.template_id", "version": "$response.body#/version"},
            None,
        )
    },
    **{
        operation: {
            name: (target, {"action_id": "$response.body#/id"}, None)
            for name, target in (
                ("GetAction", "getAction"),
                ("TestAction", "testAction"),
                ("DeleteAction", "deleteAction"),
            )
        }
        for operation in ("createAction", "getAction")
    },
    **{
        operation: {
            name: (target, {"brand_id": "$response.body#/id"}, None)
            for name, target in (("GetBrand", "getBrand"), ("DeleteBrand", "deleteBrand"))
        }
        for operation in ("createBrand", "getBrand")
    },
    "eraseRecipient": {"GetErasure": ("getErasure", {"erasure_id": "$response.body#/id"}, None)},
    "listErasures": {
        "NextPage": ("listErasures", {"page_token": "$response.body#/next_page_token"}, None),
        "GetErasure": ("getErasure", {"erasure_id": "$response.body#/items/0/id"}, None),
    },
    "listActions": {"NextPage": ("listActions", {"page_token": "$response.body#/next_page_token"}, None)},
    "listSuppressions": {
        "NextPage": (
            "listSuppressions",
            {"page_token": "$response.body#/next_page_token", "channel": "$request.query.channel"},
            None,
        )
    },
    **{
        operation: {
            name: (target, {"webhook_id": "$response.body#/webhook/id"}, None)
            for name, target in (
                ("GetWebhook", "getWebhook"),
                ("ListWebhookDeliveries", "listWebhookDeliveries"),
                ("RotateWebhookSecret", "rotateWebhookSecret"),
                ("EnableWebhook", "enableWebhook"),
                ("DeleteWebhook", "deleteWebhook"),
            )
        }
        for operation in ("createWebhook", "rotateWebhookSecret")
    },
    "listWebhookDeliveries": {
        "NextPage": (
            "listWebhookDeliveries",
            {"webhook_id": "$request.path.webhook_id", "page_token": "$response.body#/next_page_token"},
            None,
        ),
        "ReplayWebhookDelivery": (
            "replayWebhookDelivery",
            {"webhook_id": "$request.path.webhook_id", "delivery_id": "$response.body#/items/0/id"},
            None,
        ),
    },
    "listWebhooks": {"NextPage": ("listWebhooks", {"page_token": "$response.body#/next_page_token"}, None)},
    "createReplyHandler": {
        name: (target, {"handler_id": "$response.body#/id"}, None)
        for name, target in (("GetReplyHandler", "getReplyHandler"), ("DeleteReplyHandler", "deleteReplyHandler"))
    },
    "listReplyHandlers": {"NextPage": ("listReplyHandlers", {"page_token": "$response.body#/next_page_token"}, None)},
    "listEvents": {"NextPage": ("listEvents", {"page_token": "$response.body#/next_page_token"}, None)},
    "listNumbers": {"NextPage": ("listNumbers", {"page_token": "$response.body#/next_page_token"}, None)},
    "listBrands": {"NextPage": ("listBrands", {"page_token": "$response.body#/next_page_token"}, None)},
    "listCalls": {
        "NextPage": (
            "listCalls",
            {"page_token": "$response.body#/next_page_token", "campaign_id": "$request.query.campaign_id"},
            None,
        )
    },
    "listTemplates": {"NextPage": ("listTemplates", {"page_token": "$response.body#/next_page_token"}, None)},
    "listLists": {"NextPage": ("listLists", {"page_token": "$response.body#/next_page_token"}, None)},
    "listCampaigns": {"NextPage": ("listCampaigns", {"page_token": "$response.body#/next_page_token"}, None)},
}


def _links(operation_id: str) -> dict[str, Any]:
    links: dict[str, Any] = {}
    for name, (target, parameters, body) in LINKS.get(operation_id, {}).items():
        link: dict[str, Any] = {"operationId": target}
        if parameters:
            link["parameters"] = parameters
        if body:
            link["requestBody"] = body
        links[name] = link
    return links


# Path parameters other than the ids this API issues.
PATH_NAMES: dict[str, dict[str, Any]] = {
    "{recipient_id}": {
        "name": "recipient_id",
        "in": "path",
        "required": True,
        "description": "The recipient's id in the list (yours, or the E.164 number or email address it was "
        "derived from), URL-encoded: e.g. %2B447700900123 or +447700900123; no surrounding spaces.",
        "schema": {"type": "string", "pattern": RECIPIENT_ID_PATTERN},
    },
    "{sender}": {
        "name": "sender",
        "in": "path",
        "required": True,
        "description": "A number (without its +) or an alphanumeric sender id, as campaigns name it in `sender`.",
        "schema": {"type": "string", "pattern": ID_PATTERN},
    },
    "{version}": {
        "name": "version",
        "in": "path",
        "required": True,
        "description": "A template's version number, 1 or more.",
        "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,5}$"},
    },
    "{country}": {
        "name": "country",
        "in": "path",
        "required": True,
        "description": "An ISO 3166-1 alpha-2 country code (upper case), e.g. US.",
        "schema": {"type": "string", "pattern": "^[A-Z]{2}$"},
    },
}


@lru_cache(maxsize=1)
def _query_names() -> dict[tuple[str, str], frozenset[str]]:
    return {
        (op.method, op.path): frozenset(p["name"] for p in _parameters(op) if p["in"] == "query") for op in OPERATIONS
    }


def query_names(method: str, path: str) -> frozenset[str]:
    """The query parameters an operation takes (none for a route the document does not list)."""
    return _query_names().get((method, path), frozenset())


def _parameters(op: Operation) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = [
        PATH_NAMES.get(
            name,
            {
                "name": name.strip("{}"),
                "in": "path",
                "required": True,
                "description": "An id this API issued; any other value is a 404.",
                "schema": {"type": "string", "pattern": ID_PATTERN},
            },
        )
        for name in op.path.split("/")
        if name.startswith("{")
    ]
    if op.paged:
        parameters += PAGE_PARAMETERS
    parameters += op.query
    if op.method == "post":
        parameters.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "The same key and body within 24 hours return the first response; "
                "the same key with another body is a 422.",
                "schema": {"type": "string", "maxLength": MAX_IDEMPOTENCY_KEY},
            }
        )
    return parameters


def _say_stripped(schemas: dict[str, Any], models: set[type[BaseModel]]) -> None:
    """Models that strip whitespace from strings count a string's length after stripping: a required
    non-empty string must hold a character other than whitespace, which the document says with a pattern."""
    seen: set[type[BaseModel]] = set()
    todo = [m for m in models if m.model_config.get("str_strip_whitespace")]
    while todo:
        model = todo.pop()
        if model in seen or model.__name__ not in schemas:
            continue
        seen.add(model)
        for name, prop in schemas[model.__name__].get("properties", {}).items():
            for variant in [prop, *prop.get("anyOf", [])]:
                if variant.get("type") == "string" and variant.get("minLength", 0) >= 1 and "pattern" not in variant:
                    variant["pattern"] = r"\S"
            field = model.model_fields.get(name)
            annotation = getattr(field, "annotation", None)
            for inner in (*getattr(annotation, "__args__", ()), annotation):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    todo.append(inner)


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {PROBLEM_JSON: {"schema": PROBLEM}}}


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    used = {model for op in OPERATIONS for model in (op.request, op.response) if model is not None}
    modes: list[tuple[type[BaseModel], JsonSchemaMode]] = [(model, "validation") for model in used]
    modes += [(model, "serialization") for model in used]
    modes += [(ListItemIn, "validation"), (RecipientRow, "validation")]
    modes += [(m.CallRecordingEvent, "validation"), (m.CallTranscriptionEvent, "validation")]
    refs, defs = models_json_schema(modes, ref_template="#/components/schemas/{model}")
    schemas = defs.get("$defs", {})
    _say_stripped(schemas, used)
    # Rows are checked one by one (a bad row is reported, not fatal): any value is accepted as a row,
    # and a list item (or the {phone, params} shorthand) is what gets in.
    schemas["RecipientsAdd"]["properties"]["recipients"]["items"] = {
        "anyOf": [refs[(ListItemIn, "validation")], refs[(RecipientRow, "validation")], {}]
    }
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        responses: dict[str, Any] = {
            str(op.status): {
                "description": "OK",
                "content": {"application/json": {"schema": refs[(op.response, "serialization")]}},
            }
            if op.response is not None
            else {"description": "No content"},
        }
        operation: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "parameters": _parameters(op),
            "responses": responses,
        }
        if links := _links(op.operation_id):
            responses[str(op.status)]["links"] = links
        if op.request is not None:
            body = refs[(op.request, "validation")]
            if op.operation_id == "voiceEvent":  # a recorded call's links come to the same URL (`event`)
                others = (m.CallRecordingEvent, m.CallTranscriptionEvent)
                body = {"anyOf": [body, *(refs[(other, "validation")] for other in others)]}
            operation["requestBody"] = {
                "required": not op.body_optional,
                "description": BODY_LIMIT,
                "content": {"application/json": {"schema": body}},
            }
            responses["413"] = _problem(f"Payload too large: {BODY_LIMIT}")
        if op.admin:
            operation["security"] = [{"admin": []}]
        if op.signed:
            operation["security"] = [{"vonageSignature": []}]
        responses["default"] = _problem("Problem")
        paths.setdefault(op.path, {})[op.method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Bulk Campaign API", "version": "1.0.0"},
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "An account's API key."},
                "admin": {"type": "http", "scheme": "bearer", "description": "The operator's admin token."},
                "vonageSignature": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "Vonage's signed callback: HS256 with the signature secret, the body's SHA-256 "
                    "as `payload_hash`, issued within 5 minutes, each token once.",
                },
            },
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
