"""The HTTP API: one blueprint per resource, all under /v1."""

from __future__ import annotations

from chalice import Chalice

from chalicelib.api import accounts, campaigns, lists, meta


def register_api(app: Chalice) -> None:
    for blueprint in (accounts.bp, lists.bp, campaigns.bp, meta.bp):
        app.register_blueprint(blueprint, url_prefix="/v1")
