"""Managing lists: page through them, rename, delete, clear, and read, replace or remove one recipient.

Each request does O(1) writes: a deleted or cleared list's items are removed by the purge worker.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.http import paged, parse_body, route
from chalicelib.api.views import list_recipient_view, list_view
from chalicelib.domain.errors import FieldError, InvalidInput
from chalicelib.domain.models import ListRecipient, ListUpdate, Page, RecipientList, RecipientUpdate
from chalicelib.domain.recipients import RowError, check_row
from chalicelib.operations.list_purge import queue_purge
from chalicelib.store import list_catalog, list_items, lists

bp = Blueprint(__name__)


@route(bp, "/lists", methods=["GET"])
def list_lists(account: str) -> Page[RecipientList]:
    items, token = paged(
        bp.current_request,
        f"{account}/lists",
        lambda after, limit: list_catalog.lists_page(account, after=after, limit=limit),
    )
    return Page[RecipientList](items=[list_view(i) for i in items], next_page_token=token)


@route(bp, "/lists/{list_id}", methods=["PATCH"])
def rename_list(account: str, list_id: str) -> RecipientList:
    body = parse_body(bp.current_request, ListUpdate)
    return list_view(list_catalog.rename_list(account, list_id, body.name))


@route(bp, "/lists/{list_id}", methods=["DELETE"], status=204)
def delete_list(account: str, list_id: str) -> None:
    lists.get_list(account, list_id)
    queue_purge(account, list_id, None)  # before the delete: a lost send cannot strand the items
    list_catalog.delete_list(account, list_id)


@route(bp, "/lists/{list_id}/clear", methods=["POST"], status=202)
def clear_list(account: str, list_id: str) -> RecipientList:
    current = lists.get_list(account, list_id)
    queue_purge(account, list_id, lists.generation_of(current) + 1)
    return list_view(list_catalog.clear_list(account, list_id))


@route(bp, "/lists/{list_id}/recipients/{recipient_id}", methods=["GET"])
def get_recipient(account: str, list_id: str, recipient_id: str) -> ListRecipient:
    generation = lists.generation_of(lists.get_list(account, list_id))
    return list_recipient_view(list_items.get_item(account, list_id, recipient_id, generation))


@route(bp, "/lists/{list_id}/recipients/{recipient_id}", methods=["PATCH"])
def update_recipient(account: str, list_id: str, recipient_id: str) -> ListRecipient:
    body = parse_body(bp.current_request, RecipientUpdate)
    generation = lists.generation_of(lists.get_list(account, list_id))
    current = list_items.get_item(account, list_id, recipient_id, generation)
    changes: dict[str, Any] = body.model_dump(mode="json", exclude_unset=True)
    region = changes.pop("default_region", None)
    if "attributes" in changes and changes["attributes"] is None:
        changes["attributes"] = {}
    row = {**lists.recipient_of(current).to_dict(), **changes, "id": recipient_id}
    try:
        recipient = check_row(row, region)
    except RowError as exc:
        raise InvalidInput(detail=exc.detail, errors=[FieldError(exc.field, exc.detail)]) from None
    return list_recipient_view(list_items.replace_item(account, list_id, current, recipient))


@route(bp, "/lists/{list_id}/recipients/{recipient_id}", methods=["DELETE"], status=204)
def delete_recipient(account: str, list_id: str, recipient_id: str) -> None:
    generation = lists.generation_of(lists.get_list(account, list_id))
    list_items.delete_item(account, list_id, recipient_id, generation)
