"""Writes docs/openapi.json and docs/api.md from the OpenAPI document the API serves.

`make docs` runs it; a test fails when the committed files differ from what the models say.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from chalicelib.api.http import ID_PATTERN, MAX_BODY_BYTES
from chalicelib.api.openapi import OPERATIONS, openapi_document

ROOT = Path(__file__).resolve().parents[1]
MARKDOWN = ROOT / "docs" / "api.md"
OPENAPI = ROOT / "docs" / "openapi.json"


def render_markdown(document: dict[str, Any]) -> str:
    schemas = document["components"]["schemas"]
    lines = [
        "# API reference",
        "",
        "Generated from the pydantic models by `make docs` (`python -m infra.api_reference`); the same",
        "document is served as OpenAPI 3.1 at `GET /v1/openapi.json` and kept in `docs/openapi.json`.",
        "",
        "Every route but `/v1/openapi.json` needs `Authorization: Bearer <api key>` (account creation needs",
        "the operator's admin token). Every POST accepts `Idempotency-Key` (at most 256 characters): the same",
        "key and body within 24 hours return the first response; the same key with another body is a 422.",
        "Errors are `application/problem+json` (RFC 9457: `type`, `title`, `status`, `detail`) with",
        "`errors: [{field, reason}]`, the framework's own too (404 for an unknown route, 405 for a method a",
        'route does not have, 415 for a body that is not JSON). Lists answer `{"items": [...],',
        '"next_page_token": "..."}`; pass the token back as `page_token` (and `limit`, 1 to 1000) for the',
        "next page; a token this API did not issue for that resource is a 400 naming `page_token`.",
        "",
        "## Limits",
        "",
        f"- A request body is at most {MAX_BODY_BYTES:,} bytes (5 MB): a larger one is a 413.",
        "- Ids in paths are what the API issued (`" + ID_PATTERN + "`); anything else is a 404.",
        "- `rate_per_second` is 0.01 to 1000; the retry policy's numbers have the bounds below.",
        "- A recipient's `params` are at most 4 KB as JSON, with non-empty names and numbers DynamoDB can",
        "  hold (finite; 0 or 1e-130 to 9.99e125 in magnitude; at most 38 digits): a row that breaks this",
        "  is rejected as `invalid_row` with its index and a reason naming `params`; the other rows go in.",
        "",
        "## Operations",
        "",
        "| method | path | what it does | query | success |",
        "|---|---|---|---|---|",
    ]
    for op in OPERATIONS:
        operation = document["paths"][op.path][op.method]
        query = ", ".join(f"`{p['name']}`" for p in operation["parameters"] if p["in"] == "query")
        lines.append(
            f"| {op.method.upper()} | `{op.path}` | {op.summary} | {query} | {op.status} {_answer(op.response)} |"
        )
    lines += ["", "## Schemas", ""]
    for name in sorted(schemas):
        schema = schemas[name]
        lines += [f"### {name}", ""]
        if description := schema.get("description"):
            lines += [description.strip(), ""]
        if "enum" in schema:
            lines += ["One of: " + ", ".join(f"`{v}`" for v in schema["enum"]), ""]
            continue
        required = set(schema.get("required", []))
        lines += ["| field | type | required | description |", "|---|---|---|---|"]
        for field, spec in schema.get("properties", {}).items():
            detail = spec.get("description", "")
            limits = [f"{k} {spec[k]}" for k in ("minimum", "maximum", "exclusiveMinimum", "minLength", "maxLength",
                                                  "maxItems", "default") if k in spec]  # fmt: skip
            if limits:
                detail = (detail + " " if detail else "") + "(" + ", ".join(limits) + ")"
            yes = "yes" if field in required else ""
            lines.append(f"| `{field}` | {_type(spec)} | {yes} | {detail} |")
        lines.append("")
    return "\n".join(lines)


def _type(spec: dict[str, Any]) -> str:
    if "$ref" in spec:
        return spec["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in spec:
        return " or ".join(_type(s) for s in spec["anyOf"])
    if spec.get("type") == "array":
        return f"array of {_type(spec.get('items', {}))}"
    if not spec:
        return "any"
    if "const" in spec:
        return f"`{spec['const']}`"
    if "enum" in spec:
        return " / ".join(f"`{v}`" for v in spec["enum"])
    return str(spec.get("type", "any"))


def _answer(model: type | None) -> str:
    return f"`{model.__name__}`" if model is not None else "(no content)"


def rendered() -> dict[Path, str]:
    document = openapi_document()
    return {OPENAPI: json.dumps(document, indent=2) + "\n", MARKDOWN: render_markdown(document)}


def main() -> int:
    for path, text in rendered().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
