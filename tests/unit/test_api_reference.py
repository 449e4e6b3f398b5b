import pytest

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
