"""The OpenAPI document, generated from the request and response models."""

from __future__ import annotations

from typing import Any

from chalice import Blueprint

from chalicelib.api.http import route
from chalicelib.api.openapi import openapi_document

bp = Blueprint(__name__)


@route(bp, "/openapi.json", methods=["GET"], auth="none")
def openapi() -> dict[str, Any]:
    return openapi_document()
