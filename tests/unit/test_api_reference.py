from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib.api.http import PROBLEM_JSON
from infra.api_reference import rendered

pytestmark = pytest.mark.unit


def test_committed_api_reference_matches_the_models() -> None:
    for path, text in rendered().items():
        assert path.read_text() == text, f"{path.name} is stale: run `make docs`"


def test_every_operation_documents_problem_responses_and_post_idempotency() -> None:
    from chalicelib.api.openapi import openapi_document

    for path, operations in openapi_document()["paths"].items():
        for method, operation in operations.items():
            assert "application/problem+json" in operation["responses"]["default"]["content"], path
            headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
            assert ("Idempotency-Key" in headers) == (method == "post"), (method, path)


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _numbers(
    document: dict[str, Any], schema: dict[str, Any], where: str, seen: set[str]
) -> Iterator[tuple[str, dict]]:
    """Every number or integer schema reachable from `schema`, with where it is."""
    if "$ref" in schema:
        if schema["$ref"] in seen:
            return
        seen = seen | {schema["$ref"]}
        schema = _resolve(document, schema)
    if schema.get("type") in ("number", "integer"):
        yield where, schema
    for key in ("anyOf", "oneOf", "allOf"):
        for i, option in enumerate(schema.get(key, [])):
            yield from _numbers(document, option, f"{where}|{i}", seen)
    for name, sub in schema.get("properties", {}).items():
        yield from _numbers(document, sub, f"{where}.{name}", seen)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            yield from _numbers(document, schema[key], f"{where}[]", seen)


def test_every_number_a_request_may_carry_is_bounded_in_the_document() -> None:
    from chalicelib.api.openapi import openapi_document

    document = openapi_document()
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            sources = [(p["name"], p["schema"]) for p in operation["parameters"]]
            if body := operation.get("requestBody"):
                sources.append(("body", body["content"]["application/json"]["schema"]))
            for name, schema in sources:
                for where, number in _numbers(document, schema, f"{method} {path} {name}", set()):
                    found.append(where)
                    assert {"minimum", "exclusiveMinimum"} & number.keys(), where
                    assert {"maximum", "exclusiveMaximum"} & number.keys(), where
    assert any("rate_per_second" in w for w in found)
    assert any("params" in w for w in found), "recipient rows are described"
    assert any(w.endswith(" limit") for w in found)


def test_the_rate_bounds_and_the_body_limit_are_stated() -> None:
    from chalicelib.api.openapi import openapi_document

    document = openapi_document()
    rate = document["components"]["schemas"]["CampaignCreate"]["properties"]["rate_per_second"]
    assert (rate["minimum"], rate["maximum"]) == (0.01, 1000)
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                assert "5,242,880 bytes" in operation["requestBody"]["description"], (method, path)
                assert PROBLEM_JSON in operation["responses"]["413"]["content"], (method, path)


def test_paged_operations_document_page_token_and_limit() -> None:
    from chalicelib.api.openapi import openapi_document

    paths = openapi_document()["paths"]
    for path in ("/v1/lists/{list_id}/recipients", "/v1/campaigns/{campaign_id}/recipients"):
        query = {p["name"]: p["schema"] for p in paths[path]["get"]["parameters"] if p["in"] == "query"}
        assert query["page_token"]["type"] == "string"
        assert query["limit"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}


def test_links_name_real_operations_parameters_and_response_fields() -> None:
    from chalicelib.api.openapi import openapi_document

    document = openapi_document()
    by_id = {op["operationId"]: op for ops in document["paths"].values() for op in ops.values()}
    linked = set()
    for source in by_id.values():
        for response in source["responses"].values():
            for name, link in response.get("links", {}).items():
                target = by_id[link["operationId"]]
                linked.add(link["operationId"])
                names = {p["name"] for p in target["parameters"]}
                response_schema = _resolve(document, response["content"]["application/json"]["schema"])
                for parameter, expression in link.get("parameters", {}).items():
                    assert parameter in names, (source["operationId"], name, parameter)
                    if expression.startswith("$response.body#/"):
                        assert expression.split("/")[1] in response_schema["properties"], (name, expression)
                    elif expression.startswith("$request.path."):
                        assert expression.removeprefix("$request.path.") in {
                            p["name"] for p in source["parameters"] if p["in"] == "path"
                        }, (name, expression)
                for field in link.get("requestBody", {}):
                    body = _resolve(document, target["requestBody"]["content"]["application/json"]["schema"])
                    assert field in body["properties"], (name, field)
    # Every operation of an account that takes an id is reached from the one that creates it.
    takes_id = {
        op["operationId"]
        for op in by_id.values()
        if any(p["in"] == "path" for p in op["parameters"]) and "security" not in op  # not the operator's
    }
    assert takes_id <= linked
