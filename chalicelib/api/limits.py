"""Sending limits shared by an account's campaigns: per sender and per destination country (decision 25).

`PUT /v1/limits/senders/{sender}` and `/v1/limits/countries/{country}` set one (created or changed),
`GET` reads it, `DELETE` removes it, `GET /v1/limits` lists them all. Each is one request to DynamoDB.
"""

from __future__ import annotations

from typing import Any

import phonenumbers
from chalice import Blueprint

from chalicelib.api.http import parse_body, route
from chalicelib.api.views import iso
from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.models import Limit, Limits, LimitSet
from chalicelib.operations.sending_limits import COUNTRY, SENDER, sender_name
from chalicelib.store import limits

bp = Blueprint(__name__)


def limit_view(item: dict[str, Any]) -> Limit:
    return Limit(
        kind=item["kind"],
        name=item["name"],
        rate_per_second=float(item["rate_per_second"]),
        updated_at=iso(item["updated_at"]) or "",
    )


def _country(country: str) -> str:
    if country not in phonenumbers.SUPPORTED_REGIONS:
        raise InvalidInput.on("country", f"{country!r} is not an ISO 3166-1 alpha-2 country code, e.g. US or GB")
    return country


@route(bp, "/limits", methods=["GET"])
def list_limits(account: str) -> Limits:
    return Limits(items=[limit_view(item) for item in limits.account_limits(account)])


@route(bp, "/limits/senders/{sender}", methods=["PUT"])
def set_sender_limit(account: str, sender: str) -> Limit:
    body = parse_body(bp.current_request, LimitSet)
    return limit_view(limits.put_limit(account, SENDER, sender_name(sender), body.rate_per_second))


@route(bp, "/limits/senders/{sender}", methods=["GET"])
def get_sender_limit(account: str, sender: str) -> Limit:
    return limit_view(limits.get_limit(account, SENDER, sender_name(sender)))


@route(bp, "/limits/senders/{sender}", methods=["DELETE"], status=204)
def delete_sender_limit(account: str, sender: str) -> None:
    limits.delete_limit(account, SENDER, sender_name(sender))


@route(bp, "/limits/countries/{country}", methods=["PUT"])
def set_country_limit(account: str, country: str) -> Limit:
    body = parse_body(bp.current_request, LimitSet)
    return limit_view(limits.put_limit(account, COUNTRY, _country(country), body.rate_per_second))


@route(bp, "/limits/countries/{country}", methods=["GET"])
def get_country_limit(account: str, country: str) -> Limit:
    return limit_view(limits.get_limit(account, COUNTRY, country))


@route(bp, "/limits/countries/{country}", methods=["DELETE"], status=204)
def delete_country_limit(account: str, country: str) -> None:
    limits.delete_limit(account, COUNTRY, country)
