"""Email brands (Courier's `brand`): `POST /v1/brands`, `GET /v1/brands` (cursor), `GET` and `DELETE
/v1/brands/{id}`. An email campaign names one in `email.brand_id`; its copy wraps every email it sends."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.http import paged, parse_body, route
from chalicelib.api.views import iso
from chalicelib.domain.models import Brand, BrandColours, BrandCreate, Page
from chalicelib.store import brands

bp = Blueprint(__name__)


def brand_view(item: dict[str, Any]) -> Brand:
    return Brand(
        id=item["id"],
        name=item["name"],
        logo_url=item.get("logo_url"),
        colours=BrandColours.model_validate(item["colours"]),
        postal_address=item["postal_address"],
        footer_text=item.get("footer_text"),
        unsubscribe_text=item["unsubscribe_text"],
        created_at=iso(item["created_at"]) or "",
    )


@route(bp, "/brands", methods=["POST"], status=201)
def create_brand(account: str) -> Brand:
    body = parse_body(bp.current_request, BrandCreate)
    return brand_view(brands.create_brand(account, body.model_dump(mode="json")))


@route(bp, "/brands", methods=["GET"])
def list_brands(account: str) -> Page[Brand]:
    items, token = paged(
        bp.current_request,
        f"{account}/brands",
        lambda after, limit: brands.brands_page(account, after=after, limit=limit),
    )
    return Page[Brand](items=[brand_view(item) for item in items], next_page_token=token)


@route(bp, "/brands/{brand_id}", methods=["GET"])
def get_brand(account: str, brand_id: str) -> Brand:
    return brand_view(brands.get_brand(account, brand_id))


@route(bp, "/brands/{brand_id}", methods=["DELETE"], status=204)
def delete_brand(account: str, brand_id: str) -> None:
    brands.delete_brand(account, brand_id)
