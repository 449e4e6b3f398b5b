"""OpenAPI 3.1 document built from the pydantic models and the table of operations below."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from chalicelib.domain import models as m

# (method, path, summary, request model, success status, response model)
OPERATIONS: list[tuple[str, str, str, type[BaseModel] | None, int, type[BaseModel]]] = [
    (
        "post",
        "/v1/accounts",
        "Create an account (admin token) and its first API key",
        m.AccountCreate,
        201,
        m.AccountCreated,
    ),
    ("post", "/v1/lists", "Create a recipient list", m.ListCreate, 201, m.RecipientList),
    ("get", "/v1/lists/{list_id}", "Read a list", None, 200, m.RecipientList),
    (
        "post",
        "/v1/lists/{list_id}/recipients",
        "Add up to 10,000 recipients; bad rows are reported",
        m.RecipientsAdd,
        200,
        m.RecipientsAdded,
    ),
    ("get", "/v1/lists/{list_id}/recipients", "Page through a list's recipients", None, 200, m.Page[m.ListRecipient]),
    ("post", "/v1/campaigns", "Create a draft campaign", m.CampaignCreate, 201, m.Campaign),
    ("get", "/v1/campaigns/{campaign_id}", "Read a campaign with live counters", None, 200, m.Campaign),
    ("post", "/v1/campaigns/{campaign_id}/start", "Start a draft campaign", None, 200, m.Campaign),
    ("post", "/v1/campaigns/{campaign_id}/pause", "Pause a running campaign", None, 200, m.Campaign),
    ("post", "/v1/campaigns/{campaign_id}/resume", "Resume a paused campaign", None, 200, m.Campaign),
    ("post", "/v1/campaigns/{campaign_id}/cancel", "Cancel a campaign", None, 200, m.Campaign),
    (
        "get",
        "/v1/campaigns/{campaign_id}/recipients",
        "Per-recipient outcomes, with a cursor",
        None,
        200,
        m.Page[m.Delivery],
    ),
]

PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {"type": "object", "properties": {"field": {"type": "string"}, "reason": {"type": "string"}}},
        },
    },
}


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    used = {model for op in OPERATIONS for model in (op[3], op[5]) if model is not None}
    modes: list[tuple[type[BaseModel], JsonSchemaMode]] = [(model, "validation") for model in used]
    modes += [(model, "serialization") for model in used]
    refs, defs = models_json_schema(modes, ref_template="#/components/schemas/{model}")
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, request, status, response in OPERATIONS:
        operation: dict[str, Any] = {
            "summary": summary,
            "parameters": [
                {"name": name.strip("{}"), "in": "path", "required": True, "schema": {"type": "string"}}
                for name in path.split("/")
                if name.startswith("{")
            ],
            "responses": {
                str(status): {
                    "description": "OK",
                    "content": {"application/json": {"schema": refs[(response, "serialization")]}},
                },
                "default": {"description": "Problem", "content": {"application/problem+json": {"schema": PROBLEM}}},
            },
        }
        if method == "post":
            operation["parameters"].append(
                {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string"}}
            )
        if request is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(request, "validation")]}},
            }
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "Bulk Campaign API", "version": "1.0.0"},
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": paths,
    }
