"""Accounts: created by the operator with the admin token; the answer carries the first API key."""

from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.http import parse_body, route
from chalicelib.domain.models import AccountCreate, AccountCreated
from chalicelib.store import accounts

bp = Blueprint(__name__)


@route(bp, "/accounts", methods=["POST"], status=201, auth="operator")
def create_account() -> AccountCreated:
    body = parse_body(bp.current_request, AccountCreate)
    account_id, api_key = accounts.create_account(body.name)
    return AccountCreated(id=account_id, name=body.name, api_key=api_key)
