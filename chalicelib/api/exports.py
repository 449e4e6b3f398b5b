"""Exports of a list's recipients or a campaign's outcomes as CSV: the request queues a job (202), the
export worker writes the file, and reading the export gives a download link once it is completed."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.http import route
from chalicelib.api.views import export_view
from chalicelib.domain.errors import NotFound
from chalicelib.domain.models import Export
from chalicelib.store import campaigns, exports, lists

bp = Blueprint(__name__)


@route(bp, "/lists/{list_id}/exports", methods=["POST"], status=202)
def export_list(account: str, list_id: str) -> Export:
    lists.get_list(account, list_id)
    return export_view(exports.create_export(account, "list", list_id))


@route(bp, "/lists/{list_id}/exports/{export_id}", methods=["GET"])
def get_list_export(account: str, list_id: str, export_id: str) -> Export:
    lists.get_list(account, list_id)  # a deleted list's exports go with it (404)
    return export_view(_export_of(account, "list", list_id, export_id))


@route(bp, "/campaigns/{campaign_id}/exports", methods=["POST"], status=202)
def export_campaign(account: str, campaign_id: str) -> Export:
    campaigns.get_campaign(account, campaign_id)
    return export_view(exports.create_export(account, "campaign", campaign_id))


@route(bp, "/campaigns/{campaign_id}/exports/{export_id}", methods=["GET"])
def get_campaign_export(account: str, campaign_id: str, export_id: str) -> Export:
    campaigns.get_campaign(account, campaign_id)
    return export_view(_export_of(account, "campaign", campaign_id, export_id))


def _export_of(account: str, kind: str, source_id: str, export_id: str) -> dict[str, Any]:
    """The export, if it is of this list or campaign: another's export id is a 404 here."""
    item = exports.get_export(account, export_id)
    if item["kind"] != kind or item["source_id"] != source_id:
        raise NotFound(detail=f"export {export_id} does not exist")
    return item
