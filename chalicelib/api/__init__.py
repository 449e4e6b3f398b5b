"""The HTTP API: one blueprint per resource, all under /v1; every error answer is problem+json."""

from __future__ import annotations

from chalice import Chalice

from chalicelib.api import accounts, campaigns, exports, list_management, lists, meta, uploads
from chalicelib.api.http import register_problem_responses


def register_api(app: Chalice) -> None:
    for blueprint in (accounts.bp, lists.bp, list_management.bp, uploads.bp, campaigns.bp, exports.bp, meta.bp):
        app.register_blueprint(blueprint, url_prefix="/v1")
    register_problem_responses(app)
