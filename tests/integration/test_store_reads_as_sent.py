"""Item reads taken as DynamoDB sent them (decision 50) answer what botocore's parser would have: the same
items, keys and counts; an answer holding a binary value still goes through the parser."""

from __future__ import annotations

from typing import Any

import boto3

from chalicelib.store import aws


def _parsed_client() -> Any:
    """A client without the hook: botocore's parser reads every answer."""
    return boto3.client("dynamodb", region_name="us-east-1")


def test_query_get_and_batch_get_answer_what_the_parser_would(aws_env: dict[str, str]) -> None:
    table = aws_env["MAIN_TABLE"]
    items = [
        {
            "pk": {"S": "reads#1"},
            "sk": {"S": f"r{n:03d}"},
            "n": {"N": str(n * 7)},
            "f": {"N": "2.5"},
            "m": {"M": {"a": {"L": [{"S": "é ✓"}, {"BOOL": True}, {"NULL": True}]}}},
            "ss": {"SS": ["x", "y"]},
        }
        for n in range(25)
    ]
    plain = _parsed_client()
    for item in items:
        plain.put_item(TableName=table, Item=item)
    fast = aws.dynamodb()
    left_to_parse: list[bytes] = []  # what botocore's parser is given after the hook (registered before this)
    for operation in ("Query", "GetItem", "BatchGetItem"):
        fast.meta.events.register(f"before-parse.dynamodb.{operation}", lambda response_dict, **_: left_to_parse.append(
            response_dict["body"]))  # fmt: skip
    query = {"TableName": table, "KeyConditionExpression": "pk = :pk", "Limit": 10}
    query["ExpressionAttributeValues"] = {":pk": {"S": "reads#1"}}

    def without_metadata(answer: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in answer.items() if k != "ResponseMetadata"}

    first = fast.query(**query)
    assert without_metadata(first) == without_metadata(plain.query(**query))
    assert first["Count"] == 10 and first["LastEvaluatedKey"] == {"pk": items[9]["pk"], "sk": items[9]["sk"]}
    assert "ResponseMetadata" in first
    key = {"pk": items[3]["pk"], "sk": items[3]["sk"]}
    assert fast.get_item(TableName=table, Key=key)["Item"] == items[3]
    keys = {table: {"Keys": [key, {"pk": items[4]["pk"], "sk": items[4]["sk"]}]}}
    batch = fast.batch_get_item(RequestItems=keys)["Responses"][table]
    assert sorted(batch, key=lambda i: i["sk"]["S"]) == items[3:5]
    assert left_to_parse == [b"{}"] * 3  # the Query, GetItem and BatchGetItem were taken as sent
    assert aws.from_item(items[3])["m"] == {"a": ["é ✓", True, None]} and aws.from_item(items[3])["n"] == 21


def test_an_answer_with_a_binary_value_is_parsed_as_before(aws_env: dict[str, str]) -> None:
    table = aws_env["MAIN_TABLE"]
    key = {"pk": {"S": "reads#binary"}, "sk": {"S": "b"}}
    _parsed_client().put_item(TableName=table, Item={**key, "blob": {"B": b"\x00\xffbytes"}})
    assert aws.dynamodb().get_item(TableName=table, Key=key)["Item"]["blob"] == {"B": b"\x00\xffbytes"}


def test_an_error_is_parsed_as_before(aws_env: dict[str, str]) -> None:
    try:
        aws.dynamodb().query(TableName="no-such-table", KeyConditionExpression="pk = :pk",
                             ExpressionAttributeValues={":pk": {"S": "x"}})  # fmt: skip
    except aws.dynamodb().exceptions.ResourceNotFoundException as error:
        assert error.response["Error"]["Code"] == "ResourceNotFoundException"
    else:
        raise AssertionError("a Query of a missing table answered")
