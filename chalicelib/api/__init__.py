"""The HTTP API: one blueprint per resource, all under /v1 (but the tracked links' /l/{token}); every error
answer is problem+json."""

from __future__ import annotations

from chalice import Chalice

from chalicelib.api import (
    accounts,
    actions,
    brands,
    calls,
    campaign_stats,
    campaigns,
    erasures,
    events,
    exports,
    limits,
    links,
    list_management,
    lists,
    meta,
    provider_webhooks,
    reply_handlers,
    suppressions,
    templates,
    uploads,
    webhooks,
)
from chalicelib.api.http import register_problem_responses


def register_api(app: Chalice) -> None:
    for resource in (
        accounts,
        lists,
        list_management,
        uploads,
        templates,
        actions,
        brands,
        calls,
        campaigns,
        campaign_stats,
        links,
        exports,
        limits,
        suppressions,
        provider_webhooks,
        reply_handlers,
        webhooks,
        events,
        erasures,
        meta,
    ):
        app.register_blueprint(resource.bp, url_prefix="/v1")
    app.register_blueprint(links.public)  # /l/{token}: the tracked links recipients follow (decision 43)
    register_problem_responses(app)
