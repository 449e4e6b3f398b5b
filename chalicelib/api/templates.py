"""Message templates (decision 30): `POST /v1/templates`, `GET /v1/templates` (cursor), `GET` and
`DELETE /v1/templates/{id}` (campaigns keep the version they pinned), `POST /v1/templates/{id}/versions`
(a change is a new, immutable version), `GET /v1/templates/{id}/versions/{version}` and `POST
/v1/templates/{id}/preview` (the rendered text for a sample recipient, its SMS encoding and segment
count)."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.http import paged, parse_body, route
from chalicelib.api.views import iso
from chalicelib.channels import channel_for, text_limit
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.models import (
    Page,
    Template,
    TemplateContent,
    TemplateCreate,
    TemplatePreview,
    TemplatePreviewRequest,
    TemplateVersion,
    TemplateVersionCreate,
    WhatsAppContent,
)
from chalicelib.domain.sms_text import sms_parts
from chalicelib.domain.template import TRACKER, TemplateError, localised, pick_locale, render
from chalicelib.operations import links
from chalicelib.store import templates

bp = Blueprint(__name__)


def version_view(item: dict[str, Any]) -> TemplateVersion:
    return TemplateVersion(
        version=int(item["version"]),
        content=TemplateContent.model_validate(item["content"]),
        locales={tag: TemplateContent.model_validate(c) for tag, c in (item.get("locales") or {}).items()},
        created_at=iso(item["created_at"]) or "",
    )


def template_view(item: dict[str, Any], latest: dict[str, Any]) -> Template:
    return Template(
        id=item["id"],
        name=item["name"],
        channel=item["channel"],
        latest_version=int(latest["version"]),
        created_at=iso(item["created_at"]) or "",
        latest=version_view(latest),
    )


def _contents(body: TemplateVersionCreate, channel: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The version's content and locales, as stored (None fields left out); 422 on what the channel has not
    (an SMS template's subject) or lacks (an email template's subject)."""
    content = body.content.model_dump(mode="json", exclude_none=True)
    locales = {tag: c.model_dump(mode="json", exclude_none=True) for tag, c in body.locales.items()}
    lowered = [tag.lower() for tag in locales]
    if len(set(lowered)) != len(lowered):
        raise InvalidInput.on("locales", "the same tag twice (tags match whatever their case)")
    if channel == "email" and "subject" not in content:
        raise InvalidInput.on("content.subject", "an email template has a subject")
    if channel == "whatsapp" and "whatsapp" not in content:
        raise InvalidInput.on("content.whatsapp", "a WhatsApp template names the approved template it sends")
    parts = [("content", content), *((f"locales.{tag}", c) for tag, c in locales.items())]
    for where, part in parts:
        for field, only in (("subject", "email"), ("html", "email"), ("whatsapp", "whatsapp"), ("voice", "voice")):
            if field in part and channel != only:
                raise InvalidInput.on(f"{where}.{field}", f"only for an {only} template; this one is {channel}")
        if channel != "whatsapp" and "text" not in part:
            raise InvalidInput.on(f"{where}.text", f"a {channel} template has a text")
        if channel == "whatsapp" and "text" in part:
            raise InvalidInput.on(f"{where}.text", "a WhatsApp template sends its approved template, not text")
    return content, locales


@route(bp, "/templates", methods=["POST"], status=201)
def create_template(account: str) -> Template:
    body = parse_body(bp.current_request, TemplateCreate)
    content, locales = _contents(body, body.channel)
    return template_view(*templates.create_template(account, body.name, body.channel, content, locales))


@route(bp, "/templates", methods=["GET"])
def list_templates(account: str) -> Page[Template]:
    items, token = paged(
        bp.current_request,
        f"{account}/templates",
        lambda after, limit: templates.templates_page(account, after=after, limit=limit),
    )
    views = [template_view(item, templates.get_version(account, item["id"])) for item in items]
    return Page[Template](items=views, next_page_token=token)


@route(bp, "/templates/{template_id}", methods=["GET"])
def get_template(account: str, template_id: str) -> Template:
    item = templates.get_template(account, template_id)
    return template_view(item, templates.get_version(account, template_id))


@route(bp, "/templates/{template_id}", methods=["DELETE"], status=204)
def delete_template(account: str, template_id: str) -> None:
    templates.delete_template(account, template_id)


@route(bp, "/templates/{template_id}/versions", methods=["POST"], status=201)
def add_version(account: str, template_id: str) -> TemplateVersion:
    item = templates.get_template(account, template_id)  # first: another account's id is a 404, whatever the body
    body = parse_body(bp.current_request, TemplateVersionCreate)
    content, locales = _contents(body, item["channel"])
    return version_view(templates.add_version(account, template_id, content, locales))


@route(bp, "/templates/{template_id}/versions/{version}", methods=["GET"])
def get_version(account: str, template_id: str, version: str) -> TemplateVersion:
    templates.get_template(account, template_id)
    if not version.isdigit() or not 1 <= int(version) <= 999_999:
        raise InvalidInput.on("version", "must be a version number, 1 or more")
    return version_view(templates.get_version(account, template_id, int(version)))


@route(bp, "/templates/{template_id}/preview", methods=["POST"])
def preview(account: str, template_id: str) -> TemplatePreview:
    item = templates.get_template(account, template_id)
    body = parse_body(bp.current_request, TemplatePreviewRequest)
    version = templates.get_version(account, template_id, body.version)
    # A tracked link shows as a recipient's would (decision 43): for the sample's `id`, else a sample number.
    sample = str(body.data.get("id") or body.data.get("phone") or "+447700900123")
    data = {**body.data, TRACKER: links.preview_tracker(account, sample)}
    if item["channel"] == "whatsapp":
        return _whatsapp_preview(version, body, data)
    source, used = localised(version["content"]["text"], _texts(version), body.locale)
    content = (version.get("locales") or {}).get(used) or version["content"] if used else version["content"]
    try:
        text = render(source, data)
        subject = _render_part(version, content, "subject", data)
        html = _render_part(version, content, "html", data)
    except TemplateError as exc:
        raise InvalidInput.on("data", f"the template does not render with this data: {exc}") from None
    if item["channel"] in ("email", "voice"):
        return TemplatePreview(
            version=int(version["version"]), locale=used, text=text, subject=subject, html=html, characters=len(text)
        )
    warnings = []
    limit = text_limit(channel_for(item["channel"]), item["channel"])
    if limit is not None and len(text) > limit:
        warnings.append(f"{len(text):,} characters, over the provider's limit of {limit:,}: sends would fail")
    if item["channel"] != "sms":  # MMS, Viber, Messenger: a text, not counted in SMS segments
        return TemplatePreview(
            version=int(version["version"]), locale=used, text=text, characters=len(text), warnings=warnings
        )
    parts = sms_parts(text)
    if parts.encoding == "UCS-2":
        warnings.append("characters outside the GSM alphabet: sent as UCS-2, 70 characters per segment")
    return TemplatePreview(
        version=int(version["version"]),
        locale=used,
        text=text,
        characters=len(text),
        encoding=parts.encoding,
        segments=parts.segments,
        warnings=warnings,
    )


def _whatsapp_preview(version: dict[str, Any], body: TemplatePreviewRequest, data: dict[str, Any]) -> TemplatePreview:
    """A WhatsApp template as a recipient of that locale gets it: the approved template in its language, its
    parameters rendered (each at most 1,024 characters, Meta's limit)."""
    localised_parts = {tag: c["whatsapp"] for tag, c in (version.get("locales") or {}).items() if c.get("whatsapp")}
    used = pick_locale(localised_parts, body.locale)
    chosen = localised_parts[used] if used else version["content"]["whatsapp"]
    try:
        parameters = [render(source, data) for source in chosen.get("parameters") or []]
    except TemplateError as exc:
        raise InvalidInput.on("data", f"the template does not render with this data: {exc}") from None
    warnings = [f"parameter {n + 1}: over 1,024 characters: sends would fail" for n, p in enumerate(parameters)
                if len(p) > 1024]  # fmt: skip
    rendered = WhatsAppContent.model_construct(**{**chosen, "parameters": parameters})
    return TemplatePreview(
        version=int(version["version"]),
        locale=used,
        text="",
        whatsapp=rendered,
        characters=sum(len(p) for p in parameters),
        warnings=warnings,
    )


def _render_part(version: dict[str, Any], content: dict[str, Any], field: str, data: dict[str, Any]) -> str | None:
    """An email part of the locale used, else of the default content (a locale may give only its text)."""
    source = content.get(field) or version["content"].get(field)
    return render(str(source), data) if source else None


def _texts(version: dict[str, Any]) -> dict[str, str]:
    return {tag: str(content["text"]) for tag, content in (version.get("locales") or {}).items() if content.get("text")}
