"""Recipient lists: create, read, add recipients in batches, page through them."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.http import paged, parse_body, route
from chalicelib.api.views import list_recipient_view, list_view
from chalicelib.domain.models import (
    ListCreate,
    ListRecipient,
    Page,
    RecipientList,
    RecipientsAdd,
    RecipientsAdded,
    RejectedRecipient,
)
from chalicelib.domain.recipients import RejectedRow, check_rows
from chalicelib.operations import late_recipients
from chalicelib.store import lists

bp = Blueprint(__name__)


@route(bp, "/lists", methods=["POST"], status=201)
def create_list(account: str) -> RecipientList:
    body = parse_body(bp.current_request, ListCreate)
    return list_view(lists.create_list(account, body.name))


@route(bp, "/lists/{list_id}", methods=["GET"])
def get_list(account: str, list_id: str) -> RecipientList:
    return list_view(lists.get_list(account, list_id))


@route(bp, "/lists/{list_id}/recipients", methods=["POST"])
def add_recipients(account: str, list_id: str) -> RecipientsAdded:
    body = parse_body(bp.current_request, RecipientsAdd)
    current = lists.get_list(account, list_id)
    batch = check_rows(body.recipients, body.default_region)
    count, listed = int(current["recipient_count"]), set[str]()
    if batch.valid:
        added = lists.put_recipients(account, list_id, [row.recipient for row in batch.valid])
        late_recipients.tell_campaigns(account, added)
        count, listed = added.count, added.listed
    rejected = batch.rejected + [
        RejectedRow(row.index, "duplicate", "already in the list", "id", row.id)
        for row in batch.valid
        if row.id in listed
    ]
    rejected.sort(key=lambda r: r.index)
    duplicates = sum(1 for r in rejected if r.reason == "duplicate")
    return RecipientsAdded(
        received=len(body.recipients),
        accepted=len(batch.valid) - len(listed),
        invalid=len(rejected) - duplicates,
        duplicates=duplicates,
        rejected=[RejectedRecipient.model_validate(r, from_attributes=True) for r in rejected],
        recipient_count=count,
    )


@route(bp, "/lists/{list_id}/recipients", methods=["GET"])
def list_recipients(account: str, list_id: str) -> Page[ListRecipient]:
    lists.get_list(account, list_id)
    items, token = paged(
        bp.current_request,
        f"{account}/lists/{list_id}",
        lambda after, limit: _positions_dropped(lists.recipients_page(account, list_id, after=after, limit=limit)),
    )
    return Page[ListRecipient](items=[list_recipient_view(i) for i in items], next_page_token=token)


def _positions_dropped(
    page: tuple[list[tuple[str, dict[str, Any]]], str | None],
) -> tuple[list[dict[str, Any]], str | None]:
    return [item for _, item in page[0]], page[1]
